"""The package's shape: parts that import each other in one direction only, and modules of a readable size."""

import ast
from pathlib import Path

import compute_endpoint

PACKAGE = Path(compute_endpoint.__file__).parent
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def part_of(module: str) -> str:
    """The unit a module belongs to: its subpackage, or itself for a top-level module."""
    return ".".join(module.split(".")[:2])


def imports(module: str, path: Path) -> set[str]:
    is_package = path.name == "__init__.py"
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name.startswith("compute_endpoint")}


def part_graph() -> dict[str, set[str]]:
    known = modules()
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        source = part_of(module)
        for name in imports(module, path):
            while name not in known:
                name = name.rpartition(".")[0]
            target = part_of(name)
            if target not in (source, "compute_endpoint"):
                graph.setdefault(source, set()).add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_no_two_parts_of_the_package_import_each_other():
    assert cycles(part_graph()) == []


def test_the_sdk_stands_without_the_daemon_and_its_processes():
    reached, todo = set(), ["compute_endpoint.sdk"]
    graph = part_graph()
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in reached:
                reached.add(nxt)
                todo.append(nxt)
    daemon_side = {"compute_endpoint.endpoint", "compute_endpoint.interchange", "compute_endpoint.manager",
                   "compute_endpoint.worker", "compute_endpoint.providers", "compute_endpoint.cli",
                   "compute_endpoint.control"}
    assert reached & daemon_side == set()


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_no_module_is_over_the_size_a_reader_can_hold():
    sizes = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines()) for path in modules().values()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
