"""The package's architecture, checked: layers only import downward, and no import cycle exists.

Every ``import`` statement counts, at module top or inside a function: a
function-level import is still a dependency, it only runs later.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sertool"

#: Top-level module or subpackage -> layer. A module may import its own layer and the layers below.
LAYERS = {
    "sertool": 0, "errors": 0, "configs": 0, "metrics": 0,
    "io": 1, "runtime": 1,
    "features": 2, "store": 2,
    "corpora": 3, "extraction": 3,
    "models": 4,
    "inference": 5,
    "training": 6,
    "scoring": 7,
    "api": 8,
    "cli": 9, "__main__": 9,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _targets(node: ast.AST, name: str, is_package: bool, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        found = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        # ``from package import submodule`` depends on the submodule; ``from module import name`` on the module
        found = [f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module for alias in node.names]
    else:
        return []
    return [t for t in found if t in known and t != name]


def import_graph() -> dict[str, set[str]]:
    """Module -> the sertool modules it imports anywhere in its body."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges = set()
        for node in ast.walk(tree):
            edges.update(_targets(node, name, path.name == "__init__.py", set(modules)))
        graph[name] = edges
    return graph


def layer_of(module: str) -> int:
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    if key not in LAYERS:
        raise AssertionError(f"{module}: its top-level name {key!r} has no layer in LAYERS (add it, and to the README)")
    return LAYERS[key]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def test_every_module_has_a_layer():
    for module in _modules():
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{src} (layer {layer_of(src)}) imports {dst} (layer {layer_of(dst)})"
              for src, dsts in import_graph().items() for dst in sorted(dsts) if layer_of(dst) > layer_of(src)]
    assert upward == []


def test_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_no_cycle_between_packages():
    packages: dict[str, set[str]] = {}
    for src, dsts in import_graph().items():
        key = src.split(".")[1] if "." in src else src
        packages.setdefault(key, set()).update(d.split(".")[1] if "." in d else d for d in dsts)
    for key in packages:
        packages[key].discard(key)
    assert find_cycle(packages) is None


def test_checker_sees_function_level_imports_and_cycles(tmp_path):
    # The checker itself must be able to fail: a cycle through a function-level import is found.
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    tree = ast.parse("def f():\n    from sertool.api import train\n")
    node = tree.body[0].body[0]
    assert _targets(node, "sertool.io.audio", False, {"sertool.api"}) == ["sertool.api"]
    with pytest.raises(AssertionError, match="no layer"):
        layer_of("sertool.nowhere")


#: Size limits that keep every module and function readable in one sitting.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def test_no_module_is_over_the_size_limit():
    long = {name: n for name, path in _modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_no_function_is_over_the_size_limit():
    long = {}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{name}.{node.name}"] = lines
    assert long == {}


def _function_level_imports(tree: ast.Module) -> list[ast.stmt]:
    top = set()
    for node in tree.body:  # imports under a module-level ``if``/``try`` (TYPE_CHECKING, optional) count as top
        top.update(id(n) for n in ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else top.add(id(node))
    return [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in top]


def test_every_function_level_import_says_why():
    # Imports belong at the module top; one inside a function is there for a reason (a heavy library, a fast
    # path such as `sertool --help`), and a comment on it, on its last line or on the line above says which.
    silent = []
    for name, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in _function_level_imports(ast.parse("\n".join(lines))):
            nearby = (lines[node.lineno - 1], lines[node.end_lineno - 1], lines[node.lineno - 2])
            if not any("#" in line for line in nearby[:2]) and not nearby[2].strip().startswith("#"):
                silent.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert silent == []


def test_test_folders_mirror_the_package():
    tests = Path(__file__).resolve().parent
    folders = {p.name for p in tests.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders - packages == set(), "a test folder that names no sertool package"
