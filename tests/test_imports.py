"""The module map's promise (README, "Map of the modules"): imports flow one way, from the entry
points down, with no cycles; an entry point imports another only where the README says so."""

import ast

from conftest import ROOT

ENTRY_POINTS = {"train", "mlm", "predict", "export", "synth", "ensemble", "report", "reproduce", "bench"}
ENTRY_POINTS |= {"fetch_data", "gpu_check"}
ALLOWED = {("train", "predict"), ("bench", "train")}  # the README names both


def import_graph():
    """module -> the project's modules it imports (top-level modules only, as the project is flat)."""
    modules = {p.stem for p in ROOT.glob("*.py")}
    graph = {}
    for name in modules:
        found = set()
        for node in ast.walk(ast.parse((ROOT / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
        graph[name] = found & modules - {name}
    return graph


def cycles(graph):
    """Every import cycle met by a depth-first walk (each as the path that closes it)."""
    state, found = {}, []

    def visit(module, path):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                found.append(path[path.index(dep) :] + [module, dep])
            elif dep not in state:
                visit(dep, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})
    assert not cycles({"a": {"b", "c"}, "b": {"c"}, "c": set()})


def test_imports_flow_one_way_with_no_cycles():
    graph = import_graph()
    assert ENTRY_POINTS <= set(graph)
    assert cycles(graph) == []
    between = {(a, b) for a in ENTRY_POINTS for b in graph[a] if b in ENTRY_POINTS}
    assert between == ALLOWED
