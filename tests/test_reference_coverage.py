"""Every first-party method has a *reference check*: a test marked ``@pytest.mark.reference(family, name,
source=...)`` that compares the plugin with a value or property computed from its paper's equation or the
authors' released code, transcribed independently into the test, so that a wrong implementation fails.

The marks are read from the test files' syntax trees (no test is run here), so this test is fast and says
exactly which plugin lacks a check. ``PENDING`` lists the plugins whose check is still to be written: the list
may only shrink (a plugin in it that has a check is an error too, so the list stays true).
"""

from __future__ import annotations

import ast
from pathlib import Path

from dememo import plugins

FAMILIES = ("poisoner", "unlearner", "attack", "metric")
TESTS = Path(__file__).parent

# plugins without a reference check yet (issue 17): each entry is a known gap, not an exemption
PENDING: set[tuple[str, str]] = set()


def _is_reference_mark(node: ast.expr) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reference"
            and isinstance(node.func.value, ast.Attribute) and node.func.value.attr == "mark")


def reference_marks() -> dict[tuple[str, str], list[str]]:
    """(family, name) → the sources cited by the reference checks found in tests/."""
    found: dict[tuple[str, str], list[str]] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            marks = []
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                marks = node.decorator_list
            elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name) \
                    and node.targets[0].id == "pytestmark":
                marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            for mark in filter(_is_reference_mark, marks):
                args = [a.value for a in mark.args if isinstance(a, ast.Constant)]
                source = next((k.value.value for k in mark.keywords
                               if k.arg == "source" and isinstance(k.value, ast.Constant)), "")
                assert len(args) == 2 and source, f"{path.name}:{mark.lineno}: use reference(family, name, source=...)"
                found.setdefault((args[0], args[1]), []).append(source)
    return found


def first_party() -> set[tuple[str, str]]:
    registry = plugins.get_registry()
    return {(f, n) for f in FAMILIES for n in registry.names(f) if registry.info(f, n).distribution == "dememo"}


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
    unknown = sorted(set(reference_marks()) - first_party())
    assert not unknown, f"reference marks name plugins that are not first-party methods: {unknown}"
