"""A plugin's own tuning file (``dememo-bench tune`` writes it; ``tuning_record.write_local``): later runs of the
same suite use its values for that unlearner, and its rows say ``tuned`` with the file; the suite's own tuning
file keeps precedence for the unlearners it covers; a file tuned under another version of the suite is not
used, and the run says why."""

from __future__ import annotations

from importlib import resources

import pytest

from dememo import plugins
from dememo.planning.planner import Planner
from dememo.planning.suite import load_suite
from dememo.planning.tuning_record import load_local, local_path, write_local


@pytest.fixture(autouse=True)
def own_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMEMO_TUNING_DIR", str(tmp_path / "tuning"))


def record(suite: str, entries: list[tuple[str, str, dict]]) -> dict:
    return {"schema": "dememo.tuning/1", "suite": suite, "seeds": [1000],
            "entries": [{"dataset": d, "forget": f, "unlearner": "finetune", "chosen": chosen, "objective": 0.01,
                         "base_objective": 0.02, "trials": [{}, {}]} for d, f, chosen in entries]}


def finetune(suite, forget: str = "random-10%"):
    planner = Planner(plugins.get_registry(), suite)
    spec = next(f for f in suite.forget if f.label() == forget)
    [(configured, selection)] = planner.unlearners_for(suite.dataset("digits"), spec, "finetune")
    return configured, selection, planner


def test_runs_of_the_suite_use_the_file_and_say_tuned():
    suite = load_suite("smoke")
    configured, selection, _ = finetune(suite)
    assert selection == {"source": "default"}
    path = write_local(record("smoke", [("digits", "random-10%", {"lr": 0.03, "epochs": 5})]), suite, "finetune")
    assert path == local_path("smoke", "finetune")
    configured, selection, planner = finetune(suite)
    assert configured.obj.lr == 0.03 and configured.obj.epochs == 5 and configured.label == "finetune"
    assert selection["source"] == "tuned" and not planner.notes
    assert selection["tuning"] == "finetune.json (its own tuning file, dememo-bench tune)"  # no machine path
    assert finetune(suite, "class-0")[1] == {"source": "default"}  # tuned for random-10% only


def test_a_second_tuning_keeps_the_other_forget_sets_entries():
    suite = load_suite("smoke")
    write_local(record("smoke", [("digits", "random-10%", {"lr": 0.03, "epochs": 5})]), suite, "finetune")
    write_local(record("smoke", [("digits", "class-0", {"lr": 0.01, "epochs": 2})]), suite, "finetune")
    data, why = load_local(suite, "finetune")
    assert why is None and {(e["forget"], e["chosen"]["lr"]) for e in data["entries"]} == {("random-10%", 0.03),
                                                                                          ("class-0", 0.01)}


def test_the_suites_own_tuning_file_keeps_precedence():
    quick = load_suite("quick")  # its tuning file covers finetune
    shipped, selection, _ = finetune(quick)
    write_local(record("quick", [("digits", "random-10%", {"lr": 0.0123, "epochs": 7})]), quick, "finetune")
    again, selection_again, _ = finetune(quick)
    assert again.obj.params() == shipped.obj.params() and selection_again == selection
    assert selection["tuning"] == "quick.tuning.json"


def test_a_file_tuned_under_another_version_of_the_suite_is_not_used_and_the_run_says_why(tmp_path):
    path = tmp_path / "mine.toml"
    source = resources.files("dememo.suites").joinpath("smoke.toml").read_text()
    path.write_text(source.replace('name = "smoke"', 'name = "mine"'))
    write_local(record("mine", [("digits", "random-10%", {"lr": 0.03, "epochs": 5})]), load_suite(str(path)), "finetune")
    path.write_text(path.read_text().replace("epochs = 30", "epochs = 20", 1))
    configured, selection, planner = finetune(load_suite(str(path)))
    assert selection == {"source": "default"} and configured.obj.lr != 0.03
    assert len(planner.notes) == 1 and "tuned under another version of suite 'mine'" in planner.notes[0]
    assert "dememo-bench tune --suite mine --unlearner finetune" in planner.notes[0]


def test_verification_and_workers_plan_without_this_machines_files():
    suite = load_suite("smoke")
    write_local(record("smoke", [("digits", "random-10%", {"lr": 0.03, "epochs": 5})]), suite, "finetune")
    spec = suite.forget[0]
    verifier = Planner(plugins.get_registry(), suite, own_tuning=False)
    [(configured, selection)] = verifier.unlearners_for(suite.dataset("digits"), spec, "finetune")
    assert selection == {"source": "default"} and configured.obj.lr != 0.03
    driver = Planner(plugins.get_registry(), suite)
    [(tuned, _)] = driver.unlearners_for(suite.dataset("digits"), spec, "finetune")
    worker = Planner(plugins.get_registry(), suite, own_tuning=driver.tuning_records())
    [(again, selection)] = worker.unlearners_for(suite.dataset("digits"), spec, "finetune")
    assert again.spec() == tuned.spec() and selection["source"] == "tuned"


def test_a_suite_name_that_is_not_a_file_name_stays_inside_the_directory(tmp_path):
    path = local_path("../../etc", "finetune")
    assert path.parent.parent == tmp_path / "tuning" and path.parent.name.startswith("suite-")
