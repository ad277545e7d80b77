"""Unlearning in your own code: ``export`` → plain PyTorch → ``evaluate`` (``dememo-bench export`` / ``eval``)."""

from __future__ import annotations

import json

import pytest
import torch

import dememo
from dememo.errors import UserError

METRICS = ["unlearning-accuracy", "run-time"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from support import TINY_SUITE

    tmp = tmp_path_factory.mktemp("external")
    suite = tmp / "tiny.toml"
    suite.write_text(TINY_SUITE.replace('[[forget]]\nkind = "random"', '[[forget]]\nkind = "class"\nclasses = [0]\n\n'
                                        '[[forget]]\nkind = "random"', 1))
    out = dememo.export(tmp / "exp", suite=str(suite), dataset="digits", forget="class-0", seed=0,
                        cache_dir=tmp / "cache")
    return suite, tmp, out


def evaluate(tmp, model, name, **extra):
    options = dict(attacks="none", metrics=METRICS, cache_dir=tmp / "cache", out=tmp / f"eval-{name}", jobs=1,
                   progress=False)
    return dememo.evaluate(model, tmp / "exp", name, **{**options, **extra})


def test_export_holds_the_original_model_and_the_splits(exported):
    suite, tmp, out = exported
    info = json.loads((out / "export.json").read_text())
    assert info["dataset"] == "digits" and info["forget"] == "class-0" and info["seed"] == 0
    exp = dememo.load_export(out)
    (x, _), (xr, yr), (xf, yf) = exp.split("train"), exp.retain(), exp.forget()
    assert len(xr) + len(xf) == len(x) == info["sizes"]["train"] and set(yf.tolist()) == {0} and 0 not in yr.tolist()
    from dememo import plugins

    splits = plugins.get_registry().get("dataset", "digits")().load(tmp, False)
    assert torch.equal(x, splits.train.x) and torch.equal(exp.split("test")[0], splits.test.x)  # lossless
    # the model is the suite's original: its test accuracy is the original row's
    res = dememo.run(str(suite), datasets="digits", forget="class-0", unlearners="retrain", attacks="none",
                     metrics="unlearning-accuracy", seeds=1, cache_dir=tmp / "cache", out=tmp / "ref", jobs=1,
                     progress=False)
    original = next(c for c in res.cells if c.method == "original")
    model = exp.model().eval()
    with torch.no_grad():
        acc = (model(splits.test.x).argmax(1) == splits.test.y).float().mean().item()
    assert acc == pytest.approx(original.metrics["test_acc"], abs=1e-6)


def test_the_original_weights_evaluate_exactly_as_the_original_row(exported, tmp_path):
    _, tmp, out = exported
    torch.save(dememo.load_export(out).model().state_dict(), tmp_path / "same.pt")
    res = evaluate(tmp, tmp_path / "same.pt", "unchanged")
    mine = next(c for c in res.cells if c.method == "unchanged")
    original = next(c for c in res.cells if c.method == "original")
    assert mine.selection["source"] == "external" and mine.unlearner == "unchanged"
    for col in ("forget_acc", "retain_acc", "test_acc"):
        assert mine.metrics[col] == original.metrics[col], col
    assert mine.metrics["unlearn_seconds"] is None or mine.metrics["unlearn_seconds"] != mine.metrics["unlearn_seconds"]


def test_a_plain_pytorch_unlearning_is_a_row_between_original_and_retrain(exported, tmp_path):
    _, tmp, out = exported
    exp = dememo.load_export(out)
    model = exp.model()
    x, y = exp.retain()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.manual_seed(0)
    for _ in range(30):  # fine-tune on the retain set only: class 0 fades
        for i in torch.randperm(len(x)).split(128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i]), y[i]).backward()
            opt.step()
    torch.save({"state_dict": model.state_dict()}, tmp_path / "ft.pt")  # a wrapped checkpoint is read too
    res = evaluate(tmp, tmp_path / "ft.pt", "my-finetune")
    rows = {c.method: c.metrics for c in res.cells}
    assert rows["my-finetune"]["forget_acc"] < rows["original"]["forget_acc"]
    assert rows["my-finetune"]["retain_acc"] > 0.8
    assert "my-finetune" in str(res)  # printed like any method's row
    # evaluated again: every stage from the cache, the same numbers
    again = evaluate(tmp, tmp_path / "ft.pt", "my-finetune")
    assert {c.key: c.metrics for c in again.cells} == {c.key: c.metrics for c in res.cells}


def test_workers_evaluate_the_external_row_too(exported, tmp_path):
    _, tmp, out = exported
    torch.save(dememo.load_export(out).model().state_dict(), tmp_path / "w.pt")
    one = evaluate(tmp, tmp_path / "w.pt", "w", cache_dir=tmp_path / "c1")
    two = evaluate(tmp, tmp_path / "w.pt", "w", jobs=2, cache_dir=tmp_path / "c2")
    assert {c.key: c.metrics["forget_acc"] for c in one.cells} == {c.key: c.metrics["forget_acc"] for c in two.cells}


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop(next(iter(s))), "does not fit the export's architecture: missing"),
    (lambda s: s.update({"extra.weight": torch.zeros(1)}), "unexpected 'extra.weight'"),
    (lambda s: s.update({k: torch.zeros(3, 3) for k in list(s)[:1]}), "has shape (3, 3), the export's architecture has"),
    (lambda s: s.update({k: v.clone().fill_(float("nan")) for k, v in list(s.items())[:1]}), "holds NaN or infinite"),
])
def test_a_model_that_does_not_fit_is_one_line(exported, tmp_path, damage, message):
    _, tmp, out = exported
    state = dememo.load_export(out).model().state_dict()
    damage(state)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(tmp, tmp_path / "bad.pt", "bad")


def test_files_that_are_not_state_dicts_are_one_line(exported, tmp_path):
    _, tmp, _ = exported
    (tmp_path / "noise.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(UserError, match="is not a torch state dict that loads safely"):
        evaluate(tmp, tmp_path / "noise.pt", "x")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UserError, match="holds list, not a state dict of tensors"):
        evaluate(tmp, tmp_path / "list.pt", "x")
    with pytest.raises(UserError, match="no such file"):
        evaluate(tmp, tmp_path / "missing.pt", "x")


def test_a_changed_export_or_suite_or_name_clash_is_one_line(exported, tmp_path):
    suite, tmp, out = exported
    torch.save(dememo.load_export(out).model().state_dict(), tmp_path / "m.pt")
    for taken in ("retrain", "finetune", "scrub"):  # an installed method's name, in this run or not
        with pytest.raises(UserError, match="is the name of an installed method"):
            evaluate(tmp, tmp_path / "m.pt", taken)
    for odd in ("a/b", "..", "x;rm", "-x", "a\u202eb", ""):
        with pytest.raises(UserError, match="use letters, digits"):
            evaluate(tmp, tmp_path / "m.pt", odd)
    with pytest.raises(UserError, match=r"no split 'Train' \(did you mean 'train'\?\)"):
        dememo.load_export(out).split("Train")
    with pytest.raises(UserError, match="holds an export already; give another --out, or --force"):
        dememo.export(out, suite=str(suite), dataset="digits", forget="class-0", cache_dir=tmp / "cache")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is a file; give a directory"):
        dememo.export(tmp_path / "file", suite=str(suite), dataset="digits", forget="class-0")
    with pytest.raises(UserError, match="no export.json; make one with 'dememo-bench export'"):
        dememo.evaluate(tmp_path / "m.pt", tmp_path, "x")
    info = json.loads((out / "export.json").read_text())
    tampered = tmp_path / "exp"
    tampered.mkdir()
    for f in ("original.pt", "data.npz", "splits.npz"):
        (tampered / f).write_bytes((out / f).read_bytes())
    (tampered / "export.json").write_text(json.dumps({**info, "data_fingerprint": "0" * 64}))
    with pytest.raises(UserError, match="loads differently from the one exported"):
        dememo.evaluate(tmp_path / "m.pt", tampered, "x", cache_dir=tmp / "cache", out=tmp_path / "o", progress=False)
    (tampered / "export.json").write_text(json.dumps({**info, "suite_fingerprint": "0" * 64}))
    with pytest.raises(UserError, match="changed since the export"):
        dememo.evaluate(tmp_path / "m.pt", tampered, "x", cache_dir=tmp / "cache", out=tmp_path / "o", progress=False)


def test_export_refuses_what_the_suite_does_not_plan(exported, tmp_path):
    suite, tmp, _ = exported
    with pytest.raises(UserError, match=r"--forget 'class-9' \(did you mean 'class-0'\?\)"):
        dememo.export(tmp_path / "e", suite=str(suite), dataset="digits", forget="class-9", cache_dir=tmp / "cache")
    with pytest.raises(UserError, match=r"--seed must be a whole number"):
        dememo.export(tmp_path / "e", suite=str(suite), dataset="digits", forget="class-0", seed=-1)


def test_an_external_row_leaves_out_the_metrics_that_replay_the_unlearner(tmp_path):
    from dememo import plugins
    from dememo.engine.external import external_cells
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite

    weights = tmp_path / "w.pt"
    weights.write_bytes(b"any bytes: only their digest is read while planning")
    planner = Planner(plugins.get_registry(), load_suite("quick"))
    filters = Filters(dataset=("digits",), forget=("random-10%",), unlearner=("retrain",), track=("unlearning",))
    mine = external_cells(planner, {"path": str(weights), "name": "mine", "seed": 0}, filters, 1)
    theirs = [c for c in planner.cells(filters, seeds=1) if c.unlearner.name == "retrain"]
    replaying = {m.name for c in theirs for m in c.metrics if type(m.obj).replays}
    assert replaying >= {"u-lira"}  # the suite runs them for installed unlearners
    assert mine and not any(type(m.obj).replays for c in mine for m in c.metrics)
    assert {m.name for c in mine for m in c.metrics} == {m.name for c in theirs for m in c.metrics} - replaying


def test_an_export_made_with_set_values_is_evaluated_with_them(exported, tmp_path):
    suite, tmp, _ = exported
    out = dememo.export(tmp_path / "exp", suite=str(suite), dataset="digits", forget="class-0",
                        cache_dir=tmp / "cache", sets={"recipe.epochs": 2})
    assert json.loads((out / "export.json").read_text())["sets"] == {"recipe": {"epochs": 2}}
    torch.save(dememo.load_export(out).model().state_dict(), tmp_path / "m.pt")
    res = dememo.evaluate(tmp_path / "m.pt", out, "two-epochs", attacks="none", metrics="unlearning-accuracy",
                          cache_dir=tmp / "cache", out=tmp_path / "o", jobs=1, progress=False)
    rows = {c.method: c.metrics for c in res.cells}
    assert rows["two-epochs"]["test_acc"] == rows["original"]["test_acc"]  # the 2-epoch original, not the suite's
    info = json.loads((out / "export.json").read_text())
    (out / "export.json").write_text(json.dumps({**info, "original_key": "f" * 64}))
    with pytest.raises(UserError, match="the original model this run would train differs from the one exported"):
        dememo.evaluate(tmp_path / "m.pt", out, "x", cache_dir=tmp / "cache", out=tmp_path / "o2", progress=False)
    with pytest.raises(UserError, match="'sets' comes from the export"):
        dememo.evaluate(tmp_path / "m.pt", out, "x", sets={"recipe.epochs": 3})
