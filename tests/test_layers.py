"""The house's layers point one way, and no module imports itself back through others.

Bottom to top: ``payroute`` (shared vocabulary) → ``envs`` (the world, environments, every non-learning
policy) → ``policies`` (bundles, logs, review) and ``agents`` (learners), which never import each other →
``experiments`` (what a user runs). Every import counts: module level, inside functions, and type-only ones.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "payroute": "payroute",
    "envs": "envs",
    "policies": "policies",
    "agents": "agents",
    "experiments": "experiments",
}
ALLOWED = {
    "payroute": {"payroute"},
    "envs": {"payroute", "envs"},
    "policies": {"payroute", "envs", "policies"},
    "agents": {"payroute", "envs", "agents"},
    "experiments": {"payroute", "envs", "policies", "agents", "experiments"},
    "benchmarks": {"payroute", "envs", "policies", "agents", "experiments", "benchmarks"},
}
NO_TRAINING_STACK = ("envs", "policies")
TRAINING_STACK = ("ray", "torch", "stable_baselines3", "sb3_contrib")


def _modules() -> dict[str, Path]:
    out = {}
    for folder, layer in LAYERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            prefix = ["payroute"] if layer == "payroute" else ["payroute", layer]
            out[".".join(prefix + parts)] = path
    return out


MODULES = _modules()


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED and parts[1] != "payroute" else "payroute"


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    found = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            found += [(node.lineno, f"{name}.{a.name}") for a in node.names if f"{name}.{a.name}" in MODULES]
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for _, name in _imports(path, module):
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != module:
                graph[module].add(name)
    return graph


def test_imports_point_down_the_layers():
    wrong = []
    for module, path in MODULES.items():
        for line, name in _imports(path, module):
            if name.startswith("payroute") and _layer(name) not in ALLOWED[_layer(module)]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "imports that point up or across the layers:\n" + "\n".join(wrong)


def test_the_simulator_and_the_reviewer_layers_never_import_the_training_stack():
    wrong = []
    for module, path in MODULES.items():
        if _layer(module) in NO_TRAINING_STACK:
            for line, name in _imports(path, module):
                if name.split(".")[0] in TRAINING_STACK:
                    wrong.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_module_is_longer_than_600_lines():
    lengths = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in MODULES.values()}
    long = {rel: n for rel, n in lengths.items() if n > 600}
    assert not long, f"modules over 600 lines: {long}"
