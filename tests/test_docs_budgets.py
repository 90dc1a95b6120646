"""The documentation stays short and whole: its pages keep to their size budgets, cite few tests
by name, and docs/OPERATIONS.md's table lists every environment variable the code reads, once."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "OPERATIONS.md"
TABLE_HEADING = "## Environment variables"

KB = 1000
BUDGETS = {"README.md": 10 * KB, "BENCHMARKS.md": 25 * KB}
ALL_PAGES_BUDGET = 180 * KB
TEST_NAMES_BUDGET = 60

ALL_CAPS = re.compile(r"[A-Z][A-Z0-9_]*")
# Where the variables are read: the settings, and the production code beside them.
CODE = ("config", "eventstore", "httpapi", "orders", "inventory", "payments", "notifications")
CODE += ("webhooks", "demo")


def pages() -> list[Path]:
    """Every Markdown page of the project (its own, not its dependencies')."""
    return sorted([*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md")])


def dotted(node: ast.expr) -> str:
    """`os.environ.get` for that expression, "" for anything but names and attributes."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def variables_read(source: str) -> set[str]:
    """The environment variables a module reads by name: `os.environ.get("X")`,
    `os.environ["X"]`, `os.getenv("X")`, `os.environ.setdefault("X", ...)`, or a call of a
    function named env... (`env_int("X", 5)`, `env.flag("X")`) with an ALL_CAPS name first."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and dotted(node.value).endswith("environ"):
            name = literal(node.slice)
        elif isinstance(node, ast.Call) and node.args:
            name = read_by_call(dotted(node.func), literal(node.args[0]))
        else:
            name = None
        if name:
            found.add(name)
    return found


def read_by_call(function: str, name: str | None) -> str | None:
    """The variable a call of `function` with `name` first reads, if it reads one."""
    if function.endswith(("environ.get", "environ.setdefault", "getenv")):
        return name
    named_env = any(part.startswith("env") for part in function.split("."))
    return name if named_env and name and ALL_CAPS.fullmatch(name) else None


def code_variables() -> dict[str, str]:
    """Every variable the project's code reads, with the first module reading it."""
    found: dict[str, str] = {}
    modules = [ROOT / "manage.py"]
    modules += [module for package in CODE for module in sorted((ROOT / package).rglob("*.py"))]
    for module in modules:
        for name in sorted(variables_read(module.read_text(encoding="utf-8"))):
            found.setdefault(name, str(module.relative_to(ROOT)))
    return found


def table_rows() -> list[str]:
    """The variable of each row of OPERATIONS.md's table, in order (repeats kept)."""
    text = OPERATIONS.read_text(encoding="utf-8")
    assert TABLE_HEADING in text, f"docs/OPERATIONS.md has no '{TABLE_HEADING}' section"
    section = text.split(TABLE_HEADING, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", row).group(1) for row in rows]


def test_the_parser_finds_every_way_the_settings_read_a_variable():
    source = """
import os
a = os.environ.get("A_GET", "x")
b = os.environ["B_ITEM"]
c = os.getenv("C_GETENV")
os.environ.setdefault("D_DEFAULT", "1")
e = env_flag("E_FLAG")
f = env.flag("F_FLAG", default=True)
g = env_int("G_INT", 5) + settings.env.rate("H_RATE")
h = f"{os.environ['I_FSTRING']!r}"
not_a_variable = env_flag(name) or env_int("lower_case", 1) or parse("J_NOT_ENV")
"""
    expected = {"A_GET", "B_ITEM", "C_GETENV", "D_DEFAULT", "E_FLAG", "F_FLAG", "G_INT"}
    assert variables_read(source) == expected | {"H_RATE", "I_FSTRING"}


def test_the_operations_table_lists_every_variable_the_code_reads_once():
    rows = table_rows()
    read = code_variables()
    missing = [f"{name} ({module})" for name, module in sorted(read.items()) if name not in rows]
    twice = sorted({name for name in rows if rows.count(name) > 1})
    assert "CONN_MAX_AGE" in read  # the parser still sees the settings
    assert not missing, f"docs/OPERATIONS.md's table misses {', '.join(missing)}"
    assert not twice, f"docs/OPERATIONS.md's table lists {', '.join(twice)} more than once"


def test_the_pages_keep_to_their_size_budgets():
    sizes = {str(page.relative_to(ROOT)): len(page.read_bytes()) for page in pages()}
    over = [
        f"{name}: {sizes[name]} bytes, budget {budget}"
        for name, budget in BUDGETS.items()
        if sizes[name] >= budget
    ]
    assert not over, "; ".join(over)
    total = sum(sizes.values())
    assert total < ALL_PAGES_BUDGET, (
        f"the Markdown pages hold {total} bytes, budget {ALL_PAGES_BUDGET}"
    )


def test_the_pages_name_few_tests():
    names = {name for page in pages() for name in re.findall(r"`(test_\w+)`", page.read_text())}
    assert len(names) < TEST_NAMES_BUDGET, (
        f"the docs name {len(names)} tests (budget {TEST_NAMES_BUDGET}): cite the module instead"
    )
