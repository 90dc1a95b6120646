"""The peers' virtual environment: the libraries the `peers` workload measures the project against,
installed apart from the project's own.

It is created on first use under `.bench/peers-venv` (git-ignored) and reused while the pins
it was made with are the ones below; otherwise it is made anew. eventsourcing-django 0.6 asks
for Django < 5.2 on Python 3.11 and eventsourcing < 9.5, so it is installed without its
dependencies, beside the Django the project runs on and the current eventsourcing: its
recorders take from eventsourcing only the StoredEvent and Notification types and the error
classes, and the workload's runs check that they write, conflict and read back.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".bench" / "peers-venv"
# What `pip install` gets, every version pinned (the ones the latest BENCHMARKS.md run used).
REQUIREMENTS = (
    "eventsourcing[postgres]==9.5.6",
    "psycopg[binary,pool]==3.3.9",
    "psycopg-pool==3.3.3",
    "Django==5.2.19",
    "asgiref==3.13.0",
    "sqlparse==0.6.1",
    "typing_extensions==4.16.0",
)
# What `pip install --no-deps` gets afterwards.
WITHOUT_DEPENDENCIES = ("eventsourcing-django==0.6",)
# The pins an environment was made with, written once it was complete.
STAMP = "bench-pins.txt"


def pins() -> str:
    """The text of the stamp a complete environment with today's pins holds."""
    lines = [*REQUIREMENTS, *(f"--no-deps {pin}" for pin in WITHOUT_DEPENDENCIES)]
    return "\n".join(lines) + "\n"


def _name(requirement: str) -> str:
    """A requirement's distribution name, normalized: "Django==5.2" -> "django"."""
    name = requirement.split("==")[0].split("[")[0]
    return name.strip().lower().replace("_", "-")


def pinned_version(name: str) -> str | None:
    """The version pinned for the distribution `name` (None when it is not pinned here)."""
    for requirement in (*REQUIREMENTS, *WITHOUT_DEPENDENCIES):
        if _name(requirement) == _name(name):
            return requirement.split("==")[1]
    return None


def python(venv: Path = VENV) -> Path:
    return venv / "bin" / "python"


def is_current(venv: Path = VENV, wanted: str | None = None) -> bool:
    """Whether `venv` is complete and was made with the pins `wanted` (today's by default)."""
    stamp = venv / STAMP
    if not python(venv).exists() or not stamp.exists():
        return False
    return stamp.read_text() == (pins() if wanted is None else wanted)


def ensure(venv: Path = VENV, progress: Callable[[str], None] = print) -> Path:
    """The environment's python, after creating the environment if it is missing or stale."""
    if is_current(venv):
        return python(venv)
    if venv.exists():
        progress(f"peers: {venv} was made with other pins; making it anew")
        shutil.rmtree(venv)
    progress(f"peers: creating a virtual environment in {venv} (once; reused afterwards)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    progress(f"peers: installing {', '.join(REQUIREMENTS)}")
    _pip(venv, *REQUIREMENTS)
    progress(f"peers: installing {', '.join(WITHOUT_DEPENDENCIES)} without its dependencies")
    _pip(venv, "--no-deps", *WITHOUT_DEPENDENCIES)
    (venv / STAMP).write_text(pins())
    progress("peers: virtual environment ready")
    return python(venv)


def _pip(venv: Path, *arguments: str) -> None:
    command = [str(python(venv)), "-m", "pip", "install", "--progress-bar", "off"]
    # To stderr: a worker's standard output carries its figures.
    subprocess.run([*command, *arguments], check=True, stdout=sys.stderr)
