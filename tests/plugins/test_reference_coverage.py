"""Every first-party method has a *reference check*: a test marked ``@pytest.mark.reference(family, name,
source=...)`` that compares the plugin with a value or property computed from its paper's equation or the
authors' released code, transcribed independently into the test, so that a wrong implementation fails.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from dememo import plugins

from support import ROOT

FAMILIES = ("poisoner", "unlearner", "attack", "metric")
#: families whose plugins may carry reference checks too (a dataset against its source's loader, an architecture
#: against the papers' network), required only for the method families above
ALSO_CHECKED = ("dataset", "architecture")
TESTS = ROOT / "tests"

# plugins without a reference check yet (issue 17): each entry is a known gap, not an exemption
PENDING: set[tuple[str, str]] = set()


SOURCE = re.compile(r"^([\w.-]+/[\w.-]+:\S.*|paper: .+)$")
SKIPS = {"skip", "skipif", "xfail"}


def _mark_name(node: ast.expr) -> str | None:
    """``reference`` for ``@pytest.mark.reference(...)``, ``skip`` for ``@pytest.mark.skip``, …"""
    func = node.func if isinstance(node, ast.Call) else node
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Attribute) and func.value.attr == "mark":
        return func.attr
    return None


def _tests(tree: ast.Module):
    """Top-level ``test_*`` functions and ``test_*`` methods of top-level ``Test*`` classes, with the marks
    that apply to them (their own, their class's and the module's ``pytestmark``)."""
    module_marks: list[ast.expr] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            module_marks = list(node.value.elts) if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
            yield node, module_marks + node.decorator_list
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name.startswith("test_"):
                    yield item, module_marks + node.decorator_list + item.decorator_list


def reference_marks(tests: Path = TESTS) -> dict[tuple[str, str], list[str]]:
    """(family, name) → the sources cited by the reference checks found in test_*.py files under tests/ (recursively). A mark counts only
    on a test pytest collects and runs: a top-level test function or a test method of a ``Test*`` class, not
    skipped or expected to fail; its family and name are string literals and its source names a repository
    file (``owner/repo:path``) or a paper (``paper: …``)."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(tests.rglob("test_*.py")):
        for test, marks in _tests(ast.parse(path.read_text(encoding="utf-8"))):
            names = {_mark_name(m) for m in marks}
            for mark in (m for m in marks if _mark_name(m) == "reference"):
                where = f"{path.name}:{mark.lineno}"
                assert isinstance(mark, ast.Call) and len(mark.args) == 2 and all(
                    isinstance(a, ast.Constant) and isinstance(a.value, str) for a in mark.args), \
                    f"{where}: use reference(\"family\", \"name\", source=\"...\") with string literals"
                keywords = {k.arg: k.value for k in mark.keywords}
                source = keywords.get("source")
                assert set(keywords) == {"source"} and isinstance(source, ast.Constant) and isinstance(
                    source.value, str) and SOURCE.match(source.value.strip()), \
                    f"{where}: source must be a literal 'owner/repo:path' or 'paper: title, eq. N'"
                assert not names & SKIPS, f"{where}: a skipped or xfail test is not a reference check ({test.name})"
                found.setdefault((mark.args[0].value, mark.args[1].value), []).append(source.value)
    return found


def first_party(families: tuple[str, ...] = FAMILIES) -> set[tuple[str, str]]:
    registry = plugins.get_registry()
    return {(f, n) for f in families for n in registry.names(f) if registry.info(f, n).distribution == "dememo"}


def test_every_first_party_method_has_a_reference_check():
    checked = set(reference_marks())
    missing = sorted(first_party() - checked - PENDING)
    assert not missing, f"no reference check (add @pytest.mark.reference to a test): {missing}"


def test_pending_list_is_true():
    stale = sorted(PENDING & set(reference_marks()))
    assert not stale, f"these have reference checks now; remove them from PENDING: {stale}"
    unknown = sorted(PENDING - first_party())
    assert not unknown, f"PENDING names plugins that do not exist: {unknown}"


def test_marks_name_real_plugins():
    unknown = sorted(set(reference_marks()) - first_party(FAMILIES + ALSO_CHECKED))
    assert not unknown, f"reference marks name plugins that are not first-party methods: {unknown}"


def _write(tmp_path: Path, body: str) -> Path:
    (tmp_path / "test_x.py").write_text("import pytest\n\n" + body, encoding="utf-8")
    return tmp_path


def test_only_collected_running_tests_count(tmp_path):
    mark = '@pytest.mark.reference("poisoner", "ops", source="paper: OPS, eq. 1")\n'
    body = (mark + "def helper():\n    pass\n\n"
            "def test_outer():\n    " + mark.replace("\n", "\n    ") + "def test_inner():\n        pass\n\n"
            + mark + "def test_real():\n    pass\n")
    assert reference_marks(_write(tmp_path, body)) == {("poisoner", "ops"): ["paper: OPS, eq. 1"]}
    (tmp_path / "conftest.py").write_text("import pytest\n\n" + mark + "def test_c():\n    pass\n")
    assert len(reference_marks(tmp_path)[("poisoner", "ops")]) == 1  # only test_*.py files


@pytest.mark.parametrize("decorators, message", [
    ('@pytest.mark.skip\n@pytest.mark.reference("poisoner", "ops", source="paper: OPS")\n', "skipped or xfail"),
    ('@pytest.mark.reference(FAMILY, "ops", source="paper: OPS")\n', "string literals"),
    ('@pytest.mark.reference("poisoner", "ops", source=" ")\n', "source must be"),
    ('@pytest.mark.reference("poisoner", "ops")\n', "source must be"),
])
def test_malformed_or_skipped_marks_are_refused(tmp_path, decorators, message):
    with pytest.raises(AssertionError, match=message):
        reference_marks(_write(tmp_path, decorators + "def test_a():\n    pass\n"))
