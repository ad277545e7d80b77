"""The core's layout is a contract (issue 19): imports run one way, cli → api → board → engine → results → planning →
the plugin API at the top of ``dememo``, with no cycles; plugins use only the public surface; and the core
names no first-party plugin."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import dememo

CORE = Path(dememo.__file__).parent
PLUGINS = CORE.parents[1] / "plugins" / "dememo_plugins"

#: a module may import its own package's modules and those of the layers below it (higher number = higher)
LAYERS = {"plugin API": 0, "planning": 1, "results": 2, "engine": 3, "board": 4, "api": 5, "cli": 6, "testing": 5}


def module_name(path: Path, root: Path = CORE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in LAYERS else "plugin API"


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(path: Path, root: Path = CORE) -> set[str]:
    """Every module of the ``dememo`` package that ``path`` imports at run time, at module level or inside a
    function (imports under ``if TYPE_CHECKING:`` are annotations and never run)."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in child.names)  # `from dememo import files` is a module
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    modules = {module_name(p) for p in CORE.rglob("*.py")}
    return {m for m in out if m in modules and m not in (me, "dememo")}  # importing a submodule runs the package first


def core_graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in CORE.rglob("*.py")}


def test_imports_run_one_way():
    wrong = []
    for module, deps in core_graph().items():
        for dep in deps:
            if dep == "dememo" or module == "dememo":
                continue  # the package itself re-exports the API; plugins/API modules import it for hookimpl
            if LAYERS[layer(dep)] > LAYERS[layer(module)] or (
                    LAYERS[layer(dep)] == LAYERS[layer(module)] and layer(dep) != layer(module)):
                wrong.append(f"{module} ({layer(module)}) imports {dep} ({layer(dep)})")
    assert not wrong, "imports against the layering cli → api → board → engine → results → planning → plugin API:\n" + "\n".join(sorted(wrong))


def test_no_import_cycles():
    graph = core_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    assert not cycles, f"import cycles among core modules: {cycles}"


def test_the_graph_sees_imports_inside_functions(tmp_path):
    # the checks above would pass vacuously if lazy imports were missed: the CLI imports its subcommands lazily
    assert "dememo.board.report" in imports(CORE / "cli" / "report.py")
    assert "dememo.engine.executors" in imports(CORE / "engine" / "session.py")
    assert "dememo.files" in imports(CORE / "results" / "io.py")


def test_plugins_use_only_the_public_surface():
    allowed = {"dememo", *(f"dememo.{m}" for m in dememo.PUBLIC_MODULES)}
    wrong = []
    for path in PLUGINS.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for name in names:
                top = ".".join(name.split(".")[:2])
                if name.startswith("dememo.") or name == "dememo":
                    if top not in allowed:
                        wrong.append(f"{path.relative_to(PLUGINS)} imports {name}")
    assert not wrong, "plugins may import only dememo and its public modules (dememo.PUBLIC_MODULES):\n" + "\n".join(wrong)


def test_the_public_surface_is_importable_from_the_package():
    for name in dememo.__all__:
        assert getattr(dememo, name) is not None
    for module in dememo.PUBLIC_MODULES:  # all but the contract kit (it needs pytest) come with the package
        if module != "testing":
            assert getattr(dememo, module).__name__ == f"dememo.{module}"
        assert importlib.import_module(f"dememo.{module}").__name__ == f"dememo.{module}"


#: words of the suite format and of torch that are also first-party plugin names: a forget-set kind
#: ("memorization", whose scorer plugin is another name), a forget selection rule named after its paper ("rum"),
#: a device type ("cuda")
VOCABULARY = {"memorization", "rum", "cuda", "owner-share"}  # owner-share: the interplay track's data subset
#: a default of the suite format that names a plugin: a memorization forget set's scorer (the shipped suites
#: name it explicitly)
DEFAULTS = {("dememo.planning.suite", "confidence")}


def strings_in_code(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module's code, docstrings left out (they may give examples)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings]


def test_core_names_no_first_party_plugin():
    """The core knows plugins only through their declarations (columns, figures, tuning roles): a
    first-party plugin's name (or one of its column names, which contain it) as a key or label in core code
    means core holds method knowledge."""
    import dememo.plugins

    registry = dememo.plugins.get_registry()
    first_party = {i.cls.name for i in registry.all() if i.distribution == "dememo"}
    assert len(first_party) > 40  # the check is only as good as this list
    generic = {"none", "original", "retrain"} | VOCABULARY  # reference rows, which suites name and core tells apart
    names = first_party - generic
    found = []
    for path in CORE.rglob("*.py"):
        if path.parts[-2] == "testing":
            continue
        for line, text in strings_in_code(path):
            if re.search(r"\s", text):
                continue  # prose (a message, a help text) may mention a method; keys, names and labels may not
            for word in re.findall(r"[a-z0-9][a-z0-9-]*", text):
                if word in names and (module_name(path), word) not in DEFAULTS:
                    found.append(f"{module_name(path)}:{line}: {word!r}")
    assert not found, "core names first-party plugins (declare it on the plugin instead):\n" + "\n".join(found)
