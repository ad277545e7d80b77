"""``dememo-bench new FAMILY NAME`` (``dememo.api.scaffold.new``): what it writes, and the one-line errors of a bad
family, name or directory. tests/system/test_new_plugin.py installs what it writes for every family and takes
it through its tests, a smoke run, submit, verify and a board."""

from __future__ import annotations

import ast
import tomllib

import pytest

from dememo.api.scaffold import FAMILIES, names, new
from dememo.errors import UserError
from support import cli


@pytest.mark.parametrize("family", FAMILIES)
def test_new_writes_a_distribution_with_the_entry_point_docstring_sections_and_contract_tests(tmp_path, family):
    made = new(family, f"my-{family}", tmp_path)
    root = tmp_path / f"dememo-plugin-my-{family}"
    assert made.root == root and (root / "README.md").is_file()
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    module = names(family, f"my-{family}")["module"]
    assert meta["project"]["entry-points"]["dememo"] == {f"dememo-plugin-my-{family}": module}  # unique across families
    assert meta["project"]["name"] == f"dememo-plugin-my-{family}" and meta["project"]["dependencies"] == ["dememo"]
    code = (root / "src" / module / "__init__.py").read_text()
    tests = (root / "tests" / f"test_my_{family.replace('-', '_')}.py").read_text()
    for text in (code, tests, (root / "README.md").read_text()):
        assert "${" not in text and "$name" not in text
    doc = ast.get_docstring(ast.parse(code))
    assert all(section in doc for section in ("Paper:", "Equation:", "Choices and deviations:", "PLACEHOLDER"))
    assert f'name: ClassVar[str] = "my-{family}"' in code and "@dememo.hookimpl" in code
    assert "Contract)" in tests and "check_entry_point = INSTALLED" in tests
    ast.parse(tests)
    assert (root / "smoke.toml").exists() == (family in ("dataset", "architecture"))
    assert "dememo-bench " + made.smoke in made.next_steps()


@pytest.mark.parametrize("family, name, message", [
    ("unlerner", "x", r"unknown family 'unlerner'; families: poisoner, unlearner"),
    ("unlearner", "My_Method", r"'My_Method' is not a plugin name; use lower-case kebab-case"),
    ("unlearner", "9lives", r"is not a plugin name"),
    ("unlearner", "scrub", r"unlearner 'scrub' is installed already \(from dememo\); choose another name"),
])
def test_a_bad_family_or_name_is_one_line(tmp_path, family, name, message):
    with pytest.raises(UserError, match=message):
        new(family, name, tmp_path)


def test_an_existing_directory_with_files_is_refused_and_kept(tmp_path):
    (tmp_path / "dememo-plugin-mine").mkdir()
    (tmp_path / "dememo-plugin-mine" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="exists and is not an empty directory; give another --dir"):
        new("unlearner", "mine", tmp_path)
    assert (tmp_path / "dememo-plugin-mine" / "keep.txt").read_text() == "mine"


def test_the_command_line_prints_the_next_steps(tmp_path):
    proc = cli("new", "metric", "forget-conf", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "pip install -e ." in proc.stdout and "dememo-bench --smoke --metric forget-conf" in proc.stdout
    bad = cli("new", "metric", "Forget Conf", "--dir", str(tmp_path))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
