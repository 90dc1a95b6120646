"""The workloads, in the order the report lists them."""

from __future__ import annotations

import importlib

from tests.bench.core import Workload

# name -> "module:attribute", imported only when asked for (they import the project's models).
_WORKLOADS = {
    "append-one": "append:APPEND_ONE",
    "append-ten": "append:APPEND_TEN",
    "append-concurrent": "concurrent:APPEND_CONCURRENT",
    "load": "load:LOAD",
    "replay": "replay:REPLAY",
    "rebuild-online": "rebuild_online:REBUILD_ONLINE",
    "in-process": "inprocess:IN_PROCESS",
    "order-cost": "order_cost:ORDER_COST",
    "http": "http:HTTP",
    "http-latency": "http_latency:HTTP_LATENCY",
    "http-foreign": "http_foreign:HTTP_FOREIGN",
    "scale": "scale:SCALE",
    "overload": "overload:OVERLOAD",
    "peers": "peers:PEERS_WORKLOAD",
}

NAMES = tuple(_WORKLOADS)


def get_workload(name: str) -> Workload:
    """The workload called `name` (KeyError for an unknown name)."""
    module, attribute = _WORKLOADS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
