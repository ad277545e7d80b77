"""The README's side-by-side table: each published direction on noisy-shapes, 8×8 digits (`quick`) and real
MNIST digits (`real`), read from two results.json files (mean over seeds; accuracies in %).

    python tools/directions_table.py leaderboard/results.json leaderboard/real/results.json

A figure the run does not hold (a grid the suite leaves out) prints as "—". depth's radii are censored (a
model not recovered within the grid reads cap + 1): they are summarised by the median over seeds, printed
"> 4" / "> 0.1" when the median is censored; every other figure is the mean. A figure over fewer seeds than
its run has is named on stderr.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from dememo_plugins.metrics.depth import ETA_CAP, SIGMA_CAP

DATASETS = (("quick", "noisy-shapes"), ("quick", "digits"), ("real", "mnist-10k"))
#: depth's censored columns and their caps (the metric writes cap + 1 for "not within the grid")
CENSORED = {"depth_eta": ETA_CAP, "depth_eta_control": ETA_CAP, "depth_sigma": SIGMA_CAP}


class Runs:
    def __init__(self, quick: dict, real: dict):
        self.results = {"quick": quick, "real": real}

    def mean(self, suite: str, dataset: str, track: str, method: str, column: str, attack: str = "none",
             forget: str | None = None) -> float | None:
        """Mean over seeds (median for depth's censored radii); None when no cell holds the figure."""
        vals = [c["metrics"][column] for c in self.results[suite]["cells"]
                if c["dataset"] == dataset and c["track"] == track and c["method"] == method and c["attack"] == attack
                and c["status"] == "ok" and (forget is None or c.get("forget") == forget)
                and c["metrics"].get(column) is not None]
        if not vals:
            return None
        seeds = self.results[suite]["suite"]["seeds"] if "suite" in self.results[suite] else len(vals)
        if len(vals) < seeds:
            print(f"note: {suite}/{dataset} {method}@{attack} {column}: {len(vals)} of {seeds} seeds", file=sys.stderr)
        return statistics.median(vals) if column in CENSORED else statistics.fmean(vals)


def _or(v: float | None, default: float) -> float:
    return default if v is None else v


def pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.1f}"


def num(v: float | None, column: str = "", nd: int = 2) -> str:
    if v is None:
        return "—"
    cap = CENSORED.get(column)
    return f"> {cap:g}" if cap is not None and v > cap else f"{v:.{nd}f}"


def rows(r: Runs):
    """(direction, figure per dataset) in README order."""

    def each(fn):
        return [fn(suite, ds) for suite, ds in DATASETS]

    def ta(s, d, m, attack="none"):
        return r.mean(s, d, "unlearnability", m, "test_acc", attack)

    def ul(s, d, m, column, attack="none", forget="class-0"):
        return r.mean(s, d, "unlearning", m, column, attack, forget)

    yield ("EM hides clean accuracy: TA, clean → sample-wise / class-wise EM",
           each(lambda s, d: f"{pct(ta(s, d, 'none'))} → {pct(ta(s, d, 'em(mode=sample)'))} / {pct(ta(s, d, 'em(mode=class)'))}"))
    yield ("Error-maximizing poisons hide it: TA after TAP / SEP",
           each(lambda s, d: f"{pct(ta(s, d, 'tap'))} / {pct(ta(s, d, 'sep'))}"))

    def at(s, d, poison):
        after = ta(s, d, f"{poison} + adversarial-training")
        return "—" if after is None else f"{pct(ta(s, d, poison))} → {pct(after)}"

    yield ("AT recovers EM: TA of sample-wise / class-wise EM → with AT",
           each(lambda s, d: f"{at(s, d, 'em(mode=sample)')} / {at(s, d, 'em(mode=class)')}"))
    yield ("AT does not recover OPS: TA of OPS → with AT", each(lambda s, d: at(s, d, "ops")))
    ud = lambda s, d, m: num(r.mean(s, d, "unlearnability", m, "ud"))  # noqa: E731
    yield ("UD < 1 for EM (sample-wise / class-wise); random noise ≈ 1",
           each(lambda s, d: f"{ud(s, d, 'em(mode=sample)')} / {ud(s, d, 'em(mode=class)')}; "
                             f"{ud(s, d, 'random-noise(mode=sample)')}"))
    yield ("UD > 1 for TAP", each(lambda s, d: ud(s, d, "tap")))

    def hidden(s, d):  # the EM that hides most on this dataset
        m = min(("em(mode=sample)", "em(mode=class)"), key=lambda m: _or(ta(s, d, m), 1.0))
        return m, f"{m.split('=')[1][:-1]}-wise"

    def directed(s, d):
        m, label = hidden(s, d)
        return (f"{label} EM {pct(ta(s, d, m))} → {pct(ta(s, d, m, 'weight-recovery'))}; TAP {pct(ta(s, d, 'tap'))} → "
                f"{pct(ta(s, d, 'tap', 'weight-recovery'))}; clean {pct(ta(s, d, 'none'))} → {pct(ta(s, d, 'none', 'weight-recovery'))}")

    yield ("Unlearnability is shallow under directed weight recovery: TA → after recovery at η = 1", each(directed))

    def gaussian(s, d):
        m, label = hidden(s, d)
        sigma = num(r.mean(s, d, "unlearnability", m, "depth_sigma"), "depth_sigma")
        return f"{label} EM: σ* {sigma}, TA at σ = 0.1: {pct(ta(s, d, m, 'weight-noise(sigma=0.1)'))}"

    yield ("… but not under Gaussian weight noise: depth σ* (median), TA under σ = 0.1", each(gaussian))

    def approximate(s, d):
        """Unlearners that forget class 0 (forget acc ≤ 10 %), other than the references."""
        names = {c["method"] for c in r.results[s]["cells"] if c["dataset"] == d and c["track"] == "unlearning"}
        return sorted(m for m in names - {"original", "retrain"} if _or(ul(s, d, m, "forget_acc"), 1.0) <= 0.1)

    def class_depth(s, d):
        bound = min(_or(ul(s, d, "retrain", "depth_eta"), 5.0), _or(ul(s, d, "retrain", "depth_eta_control"), 5.0))
        shallow = [m for m in approximate(s, d) if _or(ul(s, d, m, "depth_eta"), 5.0) < bound]
        return (f"retrain η* {num(ul(s, d, 'retrain', 'depth_eta'), 'depth_eta')}, fresh-init control "
                f"{num(ul(s, d, 'retrain', 'depth_eta_control'), 'depth_eta')}; below both: {len(shallow)} of "
                f"{len(approximate(s, d))} forgetting methods")

    yield ("Class forgetting is shallow under directed recovery: depth η* on class 0 (medians)", each(class_depth))

    def relearn(s, d):
        attack = "prototype-relearn(alpha=0.5)"
        back = [m for m in approximate(s, d) if _or(ul(s, d, m, "forget_acc", attack), 0.0) >= 0.25]
        return (f"retrain {pct(ul(s, d, 'retrain', 'forget_acc', attack))}; ≥ 25 % for {len(back)} of "
                f"{len(approximate(s, d))} forgetting methods")

    yield ("Relearning brings a forgotten class back after approximate unlearning, not after retraining: class-0 "
           "forget acc after a five-shot prototype (α = 0.5)", each(relearn))

    def over(s, d):
        known = [m for m in ("spotter", "ssd", "eu-k") if ul(s, d, m, "ou_pgd") is not None]
        return (f"retrain {num(ul(s, d, 'retrain', 'ou_pgd'))}; " +
                ", ".join(f"{m} {num(ul(s, d, m, 'ou_pgd'))}" for m in known) +
                f"; original {num(ul(s, d, 'original', 'ou_pgd'))}")

    yield ("Over-unlearning is low for class-level methods: OU@ε (PGD) on class 0", each(over))

    def interplay(s, d, poison):
        share = "owner-50% (poisoned, forgotten)"
        methods = {c["method"] for c in r.results[s]["cells"] if c["dataset"] == d and c["track"] == "interplay"
                   and c["method"].startswith(f"{poison} → ")}
        gains = [r.mean(s, d, "interplay", m, "share_clean_gain", forget=share)
                 for m in methods - {f"{poison} → original", f"{poison} → retrain"}]
        gains = [g for g in gains if g is not None]
        mixed = r.mean(s, d, "interplay", f"{poison} → original", "share_clean_acc", forget=share)
        never = r.mean(s, d, "interplay", f"{poison} → retrain", "share_clean_acc", forget=share)
        if not gains:
            return "—"
        return f"share acc {pct(mixed)} (never seen {pct(never)}); largest gain {100 * max(gains):+.1f}"

    yield ("Unlearning does not give back what a poison hid (class-wise EM owner share): clean-share accuracy of "
           "the mixture model, largest gain of an unlearner", each(lambda s, d: interplay(s, d, "em(mode=class)")))

    def reverse(s, d):
        clean = "clean-10% (owner-50% poisoned)"
        out = []
        for m in ("ssd", "certified-newton", "rurk", "random-label"):
            a = r.mean(s, d, "interplay", f"none → {m}", "avg_gap", forget=clean)
            b = r.mean(s, d, "interplay", f"em(mode=class) → {m}", "avg_gap", forget=clean)
            if a is not None and b is not None:
                out.append(f"{m} {100 * a:.1f} → {100 * b:.1f}")
        return "; ".join(out) or "—"

    yield ("A poisoned half raises the Avg Gap (%) of SSD, certified Newton, RURK and random labelling forgetting "
           "a clean 10 % (clean → class-wise EM)", each(reverse))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("quick", type=Path, help="results.json of a quick run")
    p.add_argument("real", type=Path, help="results.json of a real run")
    a = p.parse_args()
    runs = Runs(json.loads(a.quick.read_text()), json.loads(a.real.read_text()))
    print("| Published direction | noisy-shapes (small CNN) | 8×8 digits (MLP) | mnist-10k (LeNet-5) |")
    print("|---|---|---|---|")
    for direction, figures in rows(runs):
        print(f"| {direction} | " + " | ".join(figures) + " |")


if __name__ == "__main__":
    main()
