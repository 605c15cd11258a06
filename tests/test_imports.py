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


# The names every entry point defines for itself, one meaning each: the CLI's (main, get_parser,
# parse_args, check_args) and what loop.train_epochs calls on train.py and mlm.py alike.
PROTOCOL = {"main", "get_parser", "parse_args", "check_args", "setup", "train_step", "evaluate", "end_epoch", "finish"}
# One concept in two places: train.py's "running" flag group is cli.py's shared one plus its own three.
SAME_CONCEPT = {"add_running_flags"}


def defined_in_several(root):
    """{name: [modules]} of the module-level functions and classes that more than one module defines."""
    where = {}
    for path in sorted(root.glob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                where.setdefault(node.name, []).append(path.stem)
    return {name: modules for name, modules in where.items() if len(modules) > 1}


def test_the_name_scan_finds_a_name_defined_twice(tmp_path):
    (tmp_path / "a.py").write_text("def read(path):\n    pass\n\nclass Run:\n    pass\n")
    (tmp_path / "b.py").write_text("def read(folder, task):\n    pass\n\ndef write():\n    pass\n")
    assert defined_in_several(tmp_path) == {"read": ["a", "b"]}


def test_one_name_one_meaning():
    """ARCHITECTURE's "never one name for two things", for the modules' top-level names."""
    assert set(defined_in_several(ROOT)) <= PROTOCOL | SAME_CONCEPT
