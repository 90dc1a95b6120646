"""No import circle anywhere in the project: following imports (at module level, inside
functions, under TYPE_CHECKING alike) from any first-party module never leads back to it.
Inside each package the import-linter contract "No import circle" in pyproject.toml holds the
same of its subpackages; this test also covers the imports between the top-level packages."""

import grimp

PACKAGES = [
    "config",
    "eventstore",
    "httpapi",
    "orders",
    "inventory",
    "payments",
    "notifications",
    "webhooks",
    "demo",
    "tests",
]


def circles(imports: dict[str, set[str]]) -> list[list[str]]:
    """The modules that import one another in a circle, one sorted list per circle (Tarjan's
    strongly connected components, without recursion)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(imports):
        if root in index:
            continue
        work = [(root, iter(sorted(imports[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            following = next(imported, None)
            if following is not None:
                if following not in index:
                    index[following] = low[following] = len(index)
                    stack.append(following)
                    on_stack.add(following)
                    work.append((following, iter(sorted(imports[following]))))
                elif following in on_stack:
                    low[module] = min(low[module], index[following])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[module])
            if low[module] == index[module]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == module:
                        break
                if len(component) > 1 or module in imports[module]:
                    found.append(sorted(component))
    return found


def test_circles_finds_a_circle_and_only_it():
    imports = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "d"}, "e": {"d"}}

    assert sorted(circles(imports)) == [["a", "b", "c"], ["d"]]


def test_no_module_of_the_project_imports_itself_back():
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)  # read afresh, never a stale cache
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}

    assert len(imports) > 300, "the whole project is in the graph"
    assert circles(imports) == []
