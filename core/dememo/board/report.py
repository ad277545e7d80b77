"""``dememo-bench report``: a finished run's results as figures (PNG and SVG) and one self-contained HTML page.

The renderer only reads ``results.json`` (schema ``dememo.results/1``); it runs no method. Figures, one per
(track, dataset, forget set) group, methods as lines (mean over seeds, a band of ± one standard deviation),
reference rows (``suite.references``: none, original, retrain) dashed grey:

- ``recovery-eta_…``: the hidden accuracy recovered by bounded weight-space recovery at each ℓ2 radius η
  (series ``depth_eta_curve``), with the depth target (``depth_target``) as a dashed line;
- ``noise-sigma_…``: the same under Gaussian weight noise of standard deviation σ (``depth_sigma_curve``);
- ``sweep-<attack>-<param>-<column>_…``: a metric column along an attack-strength sweep run as attack
  variants (the suite's ``curves``, and always weight recovery over η on test accuracy), the unattacked model
  being strength 0;
- ``residual-knowledge_…``: residual knowledge r_τ against τ, one panel per generator (``rk_*_curve``);
- ``interplay-<column>_<dataset>_<target>_<forget>``: the interplay track's poisoner × unlearner matrix as a
  heat map, one per (dataset, forget set, ``interplay_target``) and column (``share_clean_gain``, ``test_acc``,
  ``avg_gap``).
- ``weight-noise_…``: accuracy under the ``weight-noise`` attack's σ variants (test accuracy on the
  unlearnability track, forget-set accuracy on the unlearning track), the unattacked model being σ = 0;
- ``forgetting-utility_unlearning_…``: one point per unlearner, forgetting (|forget acc − retrain's|, or Avg
  Gap) against utility (test accuracy), per forget set.

The aggregation over seeds (:func:`aggregate`, :func:`series_by_method`, :func:`sweep_by_method`,
:func:`interplay_matrix`) is kept apart from the plotting, so it can be checked numerically. matplotlib is
imported inside the functions that draw (start-up time of ``dememo-bench``), through its object API with the
Agg canvas (no pyplot, no global figure state). Output is deterministic: the same results give byte-identical
PNG, SVG and HTML files (no dates or software versions in the files, a fixed SVG id salt).
"""

from __future__ import annotations

import base64
import html
import math
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dememo.board.leaderboard import reference_rows, sorted_groups, without_param
from dememo.errors import UserError
from dememo.numbers import finite

#: the depth series, their x axis and what the recovered accuracy is on each track
DEPTH = {"depth_eta_curve": ("recovery-eta", "ℓ2 radius η"), "depth_sigma_curve": ("noise-sigma", "weight-noise σ")}
HIDDEN = {
    "unlearnability": "clean test accuracy",
    "unlearning": "forget-set accuracy",
    "interplay": "clean accuracy on the owner's share",
}
RK = {"rk_gauss_curve": "Gaussian noise", "rk_fgsm_curve": "targeted FGSM", "rk_pgd_curve": "targeted PGD"}
INTERPLAY_COLUMNS = ("share_clean_gain", "test_acc", "avg_gap")
TARGETS = {
    "share": "the owner's poisoned share is forgotten",
    "clean": "a clean forget set is forgotten while the owner's share stays poisoned",
}
#: a sweep the report always looks for (bounded weight recovery, PUE), besides the suite's ``curves``
DEFAULT_SWEEPS = ({"attack": "weight-recovery", "param": "eta", "column": "test_acc", "from_zero": True},)
#: axis labels of common columns (their leaderboard labels are abbreviations such as "TA")
NAMES = {"test_acc": "clean test accuracy", "forget_acc": "forget-set accuracy", "retain_acc": "retain-set accuracy",
         "train_acc": "training accuracy"}
AXIS = {"eta": "ℓ2 radius η", "sigma": "weight-noise σ", "tau": "τ (input perturbation radius)"}
NOTHING = ("nothing to plot: results.json has no depth, interplay or residual-knowledge series and no weight-recovery "
           "sweep; run a suite with the depth / residual-knowledge metrics, the interplay track or a weight-recovery curve")
SALT = "dememo"
DPI = 100


# -- aggregation (pure, no matplotlib) ----------------------------------------------------------------


@attrs.frozen
class Curve:
    """A curve aggregated over seeds: at each ``x`` the ``mean`` and (sample) ``std`` of the seeds' defined
    values and their number ``n``; ``mean``/``std`` are None where no seed has a value."""

    x: tuple[float, ...]
    mean: tuple[float | None, ...]
    std: tuple[float | None, ...]
    n: tuple[int, ...]
    seeds: int


_number = finite


def aggregate(per_seed: Iterable[Mapping[float, float | None]]) -> Curve:
    """Mean and standard deviation over seeds at each x of the union of the seeds' grids. Undefined points
    (None, NaN) are left out of that x's mean, never counted as 0."""
    runs = list(per_seed)
    xs = sorted({float(x) for run in runs for x in run})
    means, stds, ns = [], [], []
    for x in xs:
        vals = [v for run in runs if (v := _number(run.get(x))) is not None]
        ns.append(len(vals))
        means.append(statistics.fmean(vals) if vals else None)
        stds.append((statistics.stdev(vals) if len(vals) > 1 else 0.0) if vals else None)
    return Curve(tuple(xs), tuple(means), tuple(stds), tuple(ns), len(runs))


def _points(series: Mapping[str, Any]) -> dict[float, float | None]:
    xs, ys = series.get("x") or [], series.get("y") or []
    return {float(x): _number(y) for x, y in zip(xs, ys) if _number(x) is not None}


def _usable(cell: Mapping[str, Any]) -> bool:
    return cell.get("status") == "ok" and cell.get("attack", "none") == "none"


def series_by_method(cells: Iterable[Mapping[str, Any]], column: str) -> dict[str, Curve]:
    """Series ``column`` of each method's unattacked, successful cells, aggregated over seeds."""
    runs: dict[str, list[dict[float, float | None]]] = defaultdict(list)
    for c in cells:
        series = (c.get("series") or {}).get(column)
        if _usable(c) and isinstance(series, Mapping):
            runs[c["method"]].append(_points(series))
    return {m: aggregate(r) for m, r in runs.items()}


def sweep_by_method(cells: Iterable[Mapping[str, Any]], attack: str, param: str, column: str,
                    from_zero: bool = True) -> dict[str, Curve]:
    """Metric ``column`` along the attack-strength parameter ``param`` of the ``attack`` cells (its suite
    variants), per method and attack label without ``param``, aggregated over seeds. With ``from_zero`` the
    method's unattacked cell of the same seed is the point ``param`` = 0. Keys: the method, or
    ``method · label`` when one table holds several settings of the attack."""
    runs: dict[tuple[str, str], dict[Any, dict[float, float | None]]] = defaultdict(lambda: defaultdict(dict))
    base: dict[tuple[str, Any], float | None] = {}
    for c in cells:
        if c.get("status") != "ok" or column not in (c.get("metrics") or {}):
            continue
        spec = (c.get("params") or {}).get("attack") or {}
        if spec.get("name") == attack and _number((spec.get("params") or {}).get(param)) is not None:
            x = float(spec["params"][param])
            runs[(c["method"], without_param(c["attack"], param))][c.get("seed")][x] = _number(c["metrics"][column])
        elif c.get("attack") == "none":
            base[(c["method"], c.get("seed"))] = _number(c["metrics"][column])
    labels = {label for _, label in runs}
    out = {}
    for (method, label), by_seed in runs.items():
        per_seed = []
        for seed, pts in by_seed.items():
            if from_zero and (method, seed) in base and 0.0 not in pts:
                pts = {0.0: base[(method, seed)], **pts}
            per_seed.append(pts)
        out[method if len(labels) == 1 else f"{method} · {label}"] = aggregate(per_seed)
    return out


@attrs.frozen
class Matrix:
    """A poisoner × unlearner table: ``values[i][j]`` is the mean over seeds for ``rows[i]`` (poisoner) and
    ``cols[j]`` (unlearner), None where no successful cell has the column; ``failed[i][j]`` counts failed
    cells, ``cells[i][j]`` all cells (0: the combination was not run)."""

    rows: tuple[str, ...]
    cols: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    failed: tuple[tuple[int, ...], ...]
    cells: tuple[tuple[int, ...], ...]


def _ordered(names: Iterable[str], references: list[str]) -> tuple[str, ...]:
    """References first (in the suite's order), then the others alphabetically."""
    names = set(names)
    refs = [r for r in references if r in names]
    return tuple(refs + sorted(names - set(refs)))


def interplay_matrix(cells: Iterable[Mapping[str, Any]], column: str, references: list[str] | None = None) -> Matrix:
    """The interplay matrix of ``column`` over the unattacked cells (rows poisoners, columns unlearners)."""
    cells = [c for c in cells if c.get("attack", "none") == "none"]
    refs = references or []
    rows = _ordered((str(c.get("poisoner")) for c in cells), refs)
    cols = _ordered((str(c.get("unlearner")) for c in cells), refs)
    vals: dict[tuple[str, str], list[float]] = defaultdict(list)
    failed: dict[tuple[str, str], int] = defaultdict(int)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for c in cells:
        key = (str(c.get("poisoner")), str(c.get("unlearner")))
        count[key] += 1
        if c.get("status") == "failed":
            failed[key] += 1
        elif c.get("status") == "ok" and (v := _number((c.get("metrics") or {}).get(column))) is not None:
            vals[key].append(v)
    return Matrix(
        rows, cols,
        tuple(tuple(statistics.fmean(vals[(r, u)]) if vals[(r, u)] else None for u in cols) for r in rows),
        tuple(tuple(failed[(r, u)] for u in cols) for r in rows),
        tuple(tuple(count[(r, u)] for u in cols) for r in rows),
    )


# -- figures ---------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Figure:
    """One figure of the report: a stable file ``name`` (no extension), a ``title``, a ``caption`` saying
    what it shows and how to read it, and the matplotlib figure; :meth:`png` / :meth:`svg` render it
    (deterministically, once)."""

    name: str
    title: str
    caption: str
    figure: Any = attrs.field(repr=False)
    _png: bytes | None = attrs.field(default=None, init=False, repr=False)
    _svg: bytes | None = attrs.field(default=None, init=False, repr=False)

    def _render(self, fmt: str) -> bytes:
        import io

        import matplotlib

        buf = io.BytesIO()
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        with matplotlib.rc_context({"svg.hashsalt": SALT, "svg.fonttype": "path"}):
            self.figure.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
        return buf.getvalue()

    def png(self) -> bytes:
        if self._png is None:
            self._png = self._render("png")
        return self._png

    def svg(self) -> bytes:
        if self._svg is None:
            self._svg = self._render("svg")
        return self._svg


def slug(text: str) -> str:
    """A file-name-safe, readable form of a label: ``random-10% (owner-50% poisoned)`` →
    ``random-10pct-owner-50pct-poisoned``."""
    text = text.lower().replace("%", "pct").replace("→", "to").replace("_", "-")
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-.") or "x"


def _name(kind: str, *parts: str | None) -> str:
    return "_".join(slug(p) for p in (kind, *parts) if p)


def _group_title(track: str, dataset: str, forget: str | None, cells: list[dict[str, Any]]) -> str:
    arch = cells[0].get("architecture") or "?"
    head = {"unlearnability": "Unlearnability", "unlearning": "Unlearning", "interplay": "Interplay"}.get(track, track)
    return f"{head} — {dataset} / {arch}" + (f", forget set {forget}" if forget else "")


def _seeds_note(curves: Mapping[str, Curve]) -> str:
    seeds = sorted({c.seeds for c in curves.values()})
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    return (f"Mean over {n} seed{'s' if seeds[-1] != 1 else ''} per method; the band is ± one standard deviation. "
            "Dashed grey lines are reference rows. Points where no seed has a value are left out.")


def _mpl():
    """matplotlib's object API on the Agg canvas (imported here, not at module import): no pyplot, so no
    global backend switch and no figure registry to leak into a program that embeds the report."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    def new(width: float, height: float):
        fig = MplFigure(figsize=(width, height), layout="constrained")
        FigureCanvasAgg(fig)
        return fig

    return new


STYLE = {"font.size": 9, "axes.titlesize": 10, "legend.fontsize": 8, "axes.grid": True, "grid.alpha": 0.3,
         "svg.hashsalt": SALT}
REF_STYLES = ((0, (5, 3)), (0, (1, 2)), (0, (5, 2, 1, 2)), (0, (8, 3)))
REF_GREYS = ("0.35", "0.55", "0.45", "0.65")
MARKERS = "os^vDP*X<>"


SIDE = 8  # up to this many legend entries go on the right of the plot, more below it in columns


def _columns(width: float, labels: Iterable[str]) -> int:
    """How many legend columns fit in ``width`` inches (8 pt text: about 0.065 in a character)."""
    longest = max((len(label) for label in labels), default=10)
    return max(1, int(width // (0.45 + 0.065 * longest)))


def _legend(fig, *axes) -> None:
    entries: dict[str, Any] = {}
    for ax in axes:  # one entry per label over all panels
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if not entries:
        return
    handles, labels = list(entries.values()), list(entries)
    if len(labels) <= SIDE:
        fig.legend(handles, labels, loc="outside right upper", frameon=False)
    else:
        ncols = _columns(fig.get_figwidth(), labels)
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


PANEL = (4.4, 3.3)  # inches per plot
GRID = 3  # plots per row


def _size(labels: list[str], panels: int = 1) -> tuple[float, float]:
    """Figure size for ``panels`` plots (``GRID`` a row) with a legend of ``labels``."""
    cols, rows = min(panels, GRID), math.ceil(panels / GRID)
    height = PANEL[1] * rows + 0.3
    if len(labels) <= SIDE:
        return PANEL[0] * cols + 0.6 + 0.065 * max(len(label) for label in labels), height
    width = max(6.4, PANEL[0] * cols)
    return width, height + 0.5 + 0.19 * math.ceil(len(labels) / _columns(width, labels))


def _wrap(title: str, inches: float) -> str:
    """A title wrapped to the width of its plot (10 pt text: about 11 characters an inch)."""
    import textwrap

    return textwrap.fill(title, max(30, int(inches * 11)))


def _draw_curves(ax, curves: Mapping[str, Curve], references: set[str], scale: float, palette: list[str]) -> None:
    """One line per curve, mean ± std band; reference lines dashed grey, the others coloured by their
    place in ``palette`` (the same colour for a label in every panel)."""
    import matplotlib

    lines = sorted(curves, key=lambda m: (m not in references, m))
    cmap = matplotlib.colormaps["tab10" if len(palette) <= 10 else "tab20"]
    refs = sorted(references)
    for m in lines:
        c = curves[m]
        x = [xi for xi, v in zip(c.x, c.mean) if v is not None]
        y = [v * scale for v in c.mean if v is not None]
        s = [sd * scale for sd in c.std if sd is not None]
        if not x:
            continue
        if m in references:
            r = refs.index(m)
            style = dict(color=REF_GREYS[r % 4], linestyle=REF_STYLES[r % 4], linewidth=1.4, marker=None)
        else:
            k = palette.index(m)
            style = dict(color=cmap(k % cmap.N), linestyle="-", linewidth=1.3, marker=MARKERS[k % len(MARKERS)],
                         markersize=3.5)
        ax.plot(x, y, label=m, **style)
        if any(sd > 0 for sd in s):  # fainter bands when many lines overlap
            ax.fill_between(x, [a - b for a, b in zip(y, s)], [a + b for a, b in zip(y, s)], color=style["color"],
                            alpha=0.15 if len(lines) <= 6 else 0.06, linewidth=0)


def _panels_figure(new, panels: Mapping[str, Mapping[str, Curve]], references: set[str], title: str, xlabel: str,
                   ylabel: str, scale: float, hline: tuple[float, str] | None = None):
    """Plots side by side (``GRID`` a row), one per entry of ``panels`` (titled by its key), one line per
    curve; ``hline``: a dashed horizontal line (value in the curves' units, legend label)."""
    names = sorted({m for curves in panels.values() for m in curves}, key=lambda m: (m not in references, m))
    palette = [m for m in names if m not in references]
    labels = names + ([hline[1]] if hline else [])
    fig = new(*_size(labels, len(panels)))
    cols = min(len(panels), GRID)
    axes = fig.subplots(math.ceil(len(panels) / GRID), cols, squeeze=False).flatten()
    for i, (ax, (panel, curves)) in enumerate(zip(axes, panels.items())):
        _draw_curves(ax, curves, references, scale, palette)
        if hline:
            ax.axhline(hline[0] * scale, color="black", linestyle="-.", linewidth=0.9, label=hline[1])
        ax.set_xlabel(xlabel)
        ax.locator_params(axis="x", nbins=5)
        if i % cols == 0:
            ax.set_ylabel(ylabel)
        if panel:
            ax.set_title(panel)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if len(panels) == 1 and not next(iter(panels)):
        axes[0].set_title(_wrap(title, PANEL[0] if len(labels) <= SIDE else fig.get_figwidth()))
    else:
        fig.suptitle(_wrap(title, PANEL[0] * cols), fontsize=10)
    _legend(fig, *axes[:len(panels)])
    return fig


def _by_poisoner(cells: list[dict[str, Any]], curves: Mapping[str, Curve],
                 references: set[str]) -> tuple[dict[str, dict[str, Curve]], set[str]]:
    """Interplay curves keyed ``poisoner → unlearner`` as one panel per poisoner, one line per unlearner."""
    parts = {c["method"]: (str(c.get("poisoner")), str(c.get("unlearner"))) for c in cells}
    panels: dict[str, dict[str, Curve]] = defaultdict(dict)
    refs = set()
    for method, curve in curves.items():
        poisoner, unlearner = parts[method]
        panels[f"poisoner {poisoner}"][unlearner] = curve
        if method in references:
            refs.add(unlearner)
    order = sorted(panels, key=lambda p: (p != "poisoner none", p))
    return {p: panels[p] for p in order}, refs


def _target(cells: list[dict[str, Any]]) -> float | None:
    vals = [v for c in cells if _usable(c) and (v := _number((c.get("metrics") or {}).get("depth_target"))) is not None]
    return statistics.fmean(vals) if vals else None


def _depth_figures(new, results, key, cells, references) -> list[Figure]:
    track, dataset, forget = key
    hidden = HIDDEN.get(track, "accuracy")
    out = []
    for column, (kind, xlabel) in DEPTH.items():
        curves = series_by_method(cells, column)
        if not curves:
            continue
        target = _target(cells)
        eta = column == "depth_eta_curve"
        how = ("bounded weight-space recovery within an ℓ2 ball of radius η around the weights" if eta else
               "Gaussian weight noise of scale σ, as the upper q-quantile over random draws (what a lucky draw "
               "reaches, not the average; q is the depth metric's parameter)")
        ylabel = f"{hidden} (%)" if eta else f"{hidden}, q-quantile over draws (%)"
        title = f"{_group_title(track, dataset, forget, cells)}: {hidden} under {'recovery' if eta else 'weight noise'}"
        direction = {
            "unlearnability": "Lower and flatter is better for the poison: accuracy that climbs back at a small radius "
                              "means the data was hidden, not made unlearnable (shallow dememorization).",
            "unlearning": "Best for the unlearner is a curve that stays with retrain's (the dashed grey reference): "
                          "forget-set accuracy that comes back at a small radius was hidden, not removed.",
            "interplay": "Lower and flatter means the owner's share stays protected after unlearning; a curve that "
                         "climbs back at a small radius means the unlearning exposed (or never removed) the hidden "
                         "knowledge.",
        }.get(track, "")
        if track == "interplay":
            panels, refs = _by_poisoner(cells, curves, references)
            layout = "One plot per poisoner, one line per unlearner. "
        else:
            panels, refs, layout = {"": curves}, references & set(curves), ""
        caption = (f"{hidden[0].upper() + hidden[1:]} (%) of each method's model after {how}; radius 0 is the model "
                   f"itself. {layout}{direction} "
                   + ("The dash-dotted black line is the depth target: the radius where a curve first reaches it is "
                      "the depth reported in the leaderboard. " if target is not None else "")
                   + _seeds_note(curves))
        fig = _panels_figure(new, panels, refs, title, xlabel, ylabel, 100.0,
                             (target, "depth target") if target is not None else None)
        out.append(Figure(_name(kind, track, dataset, forget), title, caption, fig))
    return out


def _sweeps(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for curve in list((results.get("suite") or {}).get("curves") or []) + list(DEFAULT_SWEEPS):
        key = (curve.get("attack"), curve.get("param"), curve.get("column", "test_acc"))
        if None not in key and key not in seen:
            seen.add(key)
            out.append({"attack": key[0], "param": key[1], "column": key[2], "from_zero": curve.get("from_zero", True)})
    return out


def _sweep_figures(new, results, key, cells, references) -> list[Figure]:
    track, dataset, forget = key
    out = []
    meta_all = (results.get("columns") or {}).get(track, {})
    declared = [(c.get("attack"), c.get("param")) for c in (results.get("suite") or {}).get("curves") or []]
    for sweep in _sweeps(results):
        in_suite = (sweep["attack"], sweep["param"]) in declared
        curves = sweep_by_method(cells, sweep["attack"], sweep["param"], sweep["column"], sweep["from_zero"])
        if not curves:
            continue
        meta = meta_all.get(sweep["column"], {})
        fraction = meta.get("unit", "fraction") == "fraction"
        label = NAMES.get(sweep["column"], meta.get("label", sweep["column"])) + (" (%)" if fraction else "")
        arrow = {"higher": "higher is better", "lower": "lower is better",
                 "match": "closest to the reference row is better"}.get(meta.get("direction", ""), "")
        what = NAMES.get(sweep["column"], meta.get("label", sweep["column"]))
        title = f"{_group_title(track, dataset, forget, cells)}: {what} under {sweep['attack']}"
        caption = (f"{what[0].upper() + what[1:]} of each method's model attacked by {sweep['attack']} at each "
                   f"{AXIS.get(sweep['param'], sweep['param'])} the suite runs (its attack variants)"
                   + ("; 0 is the unattacked model" if sweep["from_zero"] else "") + ". "
                   + (f"From the dememorizer's side {arrow}: " if arrow else "")
                   + ("a curve that climbs steeply at small strength means the knowledge is still in the weights. "
                      if sweep["attack"] == "weight-recovery" else "")
                   + ("The leaderboard's AUC table is the normalised area under these curves. " if in_suite else "")
                   + _seeds_note(curves))
        refs = {line for line in curves if line.split(" · ")[0] in references}
        fig = _panels_figure(new, {"": curves}, refs, title, AXIS.get(sweep["param"], sweep["param"]), label,
                             100.0 if fraction else 1.0)
        out.append(Figure(_name(f"sweep-{sweep['attack']}-{sweep['param']}-{sweep['column']}", track, dataset, forget),
                          title, caption, fig))
    return out


def _rk_figure(new, key, cells, references) -> list[Figure]:
    track, dataset, forget = key
    panels = {col: curves for col in RK if (curves := series_by_method(cells, col))}
    if not panels:
        return []
    title = f"{_group_title(track, dataset, forget, cells)}: residual knowledge"
    refs = {m for curves in panels.values() for m in curves if m in references}
    fig = _panels_figure(new, {RK[col]: curves for col, curves in panels.items()}, refs, title, AXIS["tau"],
                         "residual knowledge r_τ", 1.0, (1.0, "retrain (r = 1)"))
    caption = ("Residual knowledge r_τ: the unlearned model's hit rate on perturbed copies of forget samples (radius "
               "τ; one plot per perturbation generator) divided by the paired retrained model's. The dash-dotted line "
               "r = 1 is retrain (its own curve is 1 wherever defined); closest to 1 is better: r > 1 means the model "
               "still recognises neighbours of forgotten samples (residual knowledge), r < 1 over-unlearning. "
               + _seeds_note(next(iter(panels.values()))))
    return [Figure(_name("residual-knowledge", track, dataset, forget), title, caption, fig)]


def _cell_text(v: float, unit: str, signed: bool) -> str:
    if unit == "fraction":
        return f"{v * 100:+.1f}" if signed else f"{v * 100:.1f}"
    return f"{v:+.3g}" if signed else f"{v:.3g}"


def _heatmap(new, m: Matrix, column: str, meta: Mapping[str, Any], title: str):
    import matplotlib
    import numpy as np
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    unit = meta.get("unit", "fraction")
    scale = 100.0 if unit == "fraction" else 1.0
    diverging = "gain" in column
    data = np.ma.masked_invalid(np.array([[np.nan if v is None else v * scale for v in row] for row in m.values], float))
    present = data.compressed()
    if diverging:
        lim = float(np.abs(present).max()) if present.size else 1.0
        lim = lim if lim > 0 else 1.0
        norm, cmap = Normalize(-lim, lim), matplotlib.colormaps["RdBu"]
    else:
        lo, hi = (float(present.min()), float(present.max())) if present.size else (0.0, 1.0)
        norm, cmap = Normalize(lo, hi if hi > lo else lo + 1e-9), matplotlib.colormaps["viridis"]
    cmap = cmap.with_extremes(bad="white")
    fig = new(max(4.8, 1.9 + 0.85 * len(m.cols)), max(2.6, 1.6 + 0.42 * len(m.rows)))
    ax = fig.add_subplot()
    image = ax.imshow(data, cmap=cmap, norm=norm, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(m.cols)), m.cols, rotation=30, ha="right")
    ax.set_yticks(range(len(m.rows)), m.rows)
    ax.set(xlabel="unlearner", ylabel="poisoner")
    ax.set_title(_wrap(title, fig.get_figwidth() - 1.2))
    arrow = {"higher": " ↑", "lower": " ↓", "match": " ≈"}.get(meta.get("direction", ""), "")
    label = NAMES.get(column, meta.get("label", column))
    fig.colorbar(image, ax=ax, label=f"{label}{arrow}" + (" (%)" if unit == "fraction" else ""))
    for i in range(len(m.rows)):
        for j in range(len(m.cols)):
            v, failed, count = m.values[i][j], m.failed[i][j], m.cells[i][j]
            if v is None:  # not run (hatched grey), every cell failed (red crosses), or no defined value (n/a)
                if count == 0 or failed:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx" if failed else "//",
                                           linewidth=0, edgecolor="tab:red" if failed else "0.75"))
                if failed or count:
                    ax.text(j, i, "failed" if failed else "n/a", ha="center", va="center", fontsize=7,
                            color="tab:red" if failed else "0.3", bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
                continue
            r, g, b, _ = cmap(norm(v * scale))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(j, i, _cell_text(v, unit, diverging) + ("*" if failed else ""), ha="center", va="center",
                    fontsize=8, color=ink)
    return fig


def _interplay_figures(new, results, key, cells) -> list[Figure]:
    track, dataset, forget = key
    meta_all = (results.get("columns") or {}).get(track, {})
    refs = (results.get("suite") or {}).get("references") or {}
    references = list(refs.get("poisoner", [])) + list(refs.get("unlearner", []))
    by_target: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in cells:
        by_target[str(c.get("interplay_target") or "share")].append(c)
    out = []
    for target in sorted(by_target):
        tcells = by_target[target]
        for column in INTERPLAY_COLUMNS:
            if not any(column in (c.get("metrics") or {}) for c in tcells):
                continue
            m = interplay_matrix(tcells, column, references)
            meta = meta_all.get(column, {})
            label = NAMES.get(column, meta.get("label", column))
            what = TARGETS.get(target, f"interplay target {target}")
            title = f"Interplay — {dataset}, forget set {forget}: {label}"
            reading = {
                "share_clean_gain": "the change in clean accuracy on the owner's share caused by unlearning (after "
                                    "minus before; blue: unlearning gave back knowledge the poison hid, red: the model "
                                    "knows the share less than before)",
                "test_acc": "clean test accuracy of the unlearned model (higher keeps the model useful)",
                "avg_gap": "the mean gap to the retrained model over forget, retain and test accuracy and MIA "
                           "efficacy (lower is closer to retraining)",
            }.get(column, meta.get("description", column))
            caption = (f"Poisoner (rows) × unlearner (columns): {reading}; {what}. Each cell is the mean over seeds"
                       + (", in percent" if meta.get("unit", "fraction") == "fraction" else "")
                       + ". Hatched grey: the combination was not run; red crosses: every cell of it failed; n/a: no "
                       "defined value; * : some seeds failed (the mean is over the others).")
            fig = _heatmap(new, m, column, meta, title)
            name = _name(f"interplay-{column}", dataset, forget, target if len(by_target) > 1 else None)
            out.append(Figure(name, title, caption, fig))
    return out


def _check(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    cells = results.get("cells")
    if not isinstance(cells, list):
        raise UserError("results.json has no list of cells ('cells'); is it a complete dememo results file?")
    for i, c in enumerate(cells):
        missing = [k for k in ("track", "dataset", "method", "status") if not isinstance(c, dict) or k not in c]
        if missing:
            raise UserError(f"results.json cell {i} is malformed (no {missing[0]!r}); re-run the suite to rewrite it")
    return cells


def figures(results: Mapping[str, Any]) -> list[Figure]:
    """Every figure the results support, in a stable order (by track, dataset and forget set); empty when
    there is nothing to plot."""
    _check(results)
    import matplotlib

    new = _mpl()
    out: list[Figure] = []
    with matplotlib.rc_context(STYLE):
        for key, cells in sorted_groups(results):  # type: ignore[arg-type]
            references = reference_rows(results, cells)  # type: ignore[arg-type]
            if key[0] == "interplay":
                out += _interplay_figures(new, results, key, cells)
            out += _depth_figures(new, results, key, cells, references)
            out += _sweep_figures(new, results, key, cells, references)
            out += _rk_figure(new, key, cells, references)
            out += _weight_noise_figures(new, results, key, cells, references)
            out += _forgetting_utility_figure(new, key, cells, references)
    names: dict[str, int] = defaultdict(int)
    for f in out:  # distinct file names, even for labels that differ only in punctuation
        names[f.name] += 1
        if names[f.name] > 1:
            f.name = f"{f.name}-{names[f.name]}"
    return out


# -- HTML ------------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.env{font-size:.85em;color:#555}figure{margin:.5em 0 1.5em}img{max-width:100%;height:auto}
figcaption{font-size:.85em;color:#555}nav li{font-size:.9em}code{background:#f4f4f4;padding:0 .2em}"""


def _environment(results: Mapping[str, Any]) -> str:
    env = results.get("environment") or {}
    parts = []
    if env.get("dememo"):
        parts.append(f"dememo {env['dememo']}")
    for key, name in (("python", "Python"), ("torch", "torch"), ("numpy", "numpy")):
        if env.get(key):
            parts.append(f"{name} {env[key]}")
    if env.get("device"):
        parts.append(f"device {env['device']}" + (f" ({env['gpu']})" if env.get("gpu") else "")
                     + (f", {env['threads']} threads" if env.get("threads") else ""))
    if env.get("platform"):
        parts.append(str(env["platform"]))
    cells = results.get("cells") or []
    failed = sum(1 for c in cells if c.get("status") == "failed")
    parts.append(f"{len(cells)} cells ({failed} failed)")
    if env.get("wall_seconds") is not None:
        parts.append(f"run time {float(env['wall_seconds']):.0f} s")
    return " · ".join(parts)


def _reference_names(results: Mapping[str, Any]) -> list[str]:
    refs = (results.get("suite") or {}).get("references") or {}
    return [n for family in ("poisoner", "unlearner") for n in refs.get(family, [])]


def render_html(results: Mapping[str, Any], figures: list[Figure]) -> str:
    """One self-contained page: inline CSS, every figure an inline base64 PNG, no external reference."""
    suite = results.get("suite") or {}
    name = str(suite.get("name") or "unnamed")
    e = html.escape
    body = [f"<h1>dememo report — suite <code>{e(name)}</code></h1>"]
    if suite.get("description"):
        body.append(f"<p>{e(str(suite['description']))}</p>")
    body.append(f'<p class="env">{e(_environment(results))}</p>')
    body.append("<p>Each figure has one line per method (the mean over seeds, with a band of ± one standard "
                "deviation); reference rows (" + e(", ".join(_reference_names(results)) or "none") + ") are dashed "
                "grey. Accuracies are in percent. The numbers behind the figures are in results.json; the "
                "leaderboard tables are in leaderboard.md.</p>")
    body.append("<nav><ol>" + "".join(f'<li><a href="#{e(f.name)}">{e(f.title)}</a></li>' for f in figures) + "</ol></nav>")
    for i, f in enumerate(figures, 1):
        data = base64.b64encode(f.png()).decode("ascii")
        body.append(f'<section id="{e(f.name)}"><h2>{i}. {e(f.title)}</h2><p>{e(f.caption)}</p>'
                    f'<figure><img src="data:image/png;base64,{data}" alt="{e(f.title)}">'
                    f"<figcaption>Figure {i}: {e(f.title)} (<code>{e(f.name)}.png</code>, "
                    f"<code>{e(f.name)}.svg</code>)</figcaption></figure></section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>dememo report — {e(name)}</title>\n<style>\n{CSS}\n</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(results: Mapping[str, Any], out: Path) -> list[Path]:
    """Write one PNG and one SVG per figure and ``report.html`` into ``out``; returns the written paths.
    Everything is drawn before anything is written, and each file is written atomically, so a failure
    leaves no partial report. Raises :class:`UserError` when there is nothing to plot or ``out`` cannot be
    written."""
    from dememo.files import write_files

    figs = figures(results)
    if not figs:
        raise UserError(NOTHING)
    files: dict[str, bytes | str] = {}  # everything is drawn before anything is written: no partial report
    for f in figs:
        files[f"{f.name}.png"], files[f"{f.name}.svg"] = f.png(), f.svg()
    files["report.html"] = render_html(results, figs)
    return write_files(Path(out), files, "the report")


# -- accuracy under weight noise; forgetting vs utility ------------------------------------------------

#: the column drawn against the weight-noise attack's σ on each track
WEIGHT_NOISE = {"unlearnability": "test_acc", "unlearning": "forget_acc"}


def weight_noise_curves(cells: Iterable[Mapping[str, Any]], track: str) -> dict[str, Curve]:
    """The track's :data:`WEIGHT_NOISE` column along the ``weight-noise`` attack's σ (its suite variants),
    per method, aggregated over seeds; σ = 0 is the unattacked model. Empty on other tracks."""
    column = WEIGHT_NOISE.get(track)
    return sweep_by_method(cells, "weight-noise", "sigma", column, from_zero=True) if column else {}


def _weight_noise_figures(new, results, key, cells, references) -> list[Figure]:
    track, dataset, forget = key
    column = WEIGHT_NOISE.get(track)
    if column is None or any((s["attack"], s["param"], s["column"]) == ("weight-noise", "sigma", column)
                             for s in _sweeps(results)):  # a suite curve: already drawn as a sweep
        return []
    curves = weight_noise_curves(cells, track)
    if not curves:
        return []
    what = NAMES.get(column, column)
    title = f"{_group_title(track, dataset, forget, cells)}: {what} under weight noise"
    reading = {
        "unlearnability": "Lower is better for the poison: accuracy that climbs back under small noise means the "
                          "clean knowledge was hidden near the weights, not kept out of them (shallow dememorization).",
        "unlearning": "Best for the unlearner is a curve that stays with retrain's (the dashed grey reference): "
                      "forget-set accuracy that comes back under small noise was hidden, not removed.",
    }[track]
    caption = (f"{what[0].upper() + what[1:]} (%) of each method's model with Gaussian noise of standard deviation σ "
               "added to every weight (the weight-noise attack's variants in the suite; each point is the mean over "
               "the attack's draws, unlike the depth metric's q-quantile); σ = 0 is the unattacked model. "
               f"{reading} " + _seeds_note(curves))
    refs = {line for line in curves if line.split(" · ")[0] in references}
    fig = _panels_figure(new, {"": curves}, refs, title, AXIS["sigma"], f"{what} (%)", 100.0)
    return [Figure(_name("weight-noise", track, dataset, forget), title, caption, fig)]


@attrs.frozen
class Point:
    """One unlearner in the forgetting-vs-utility scatter: the means (and sample std) over seeds of its
    forgetting ``x`` and utility ``y``, the number of seeds ``n`` with both, and whether it is a reference row."""

    method: str
    x: float
    y: float
    x_std: float
    y_std: float
    n: int
    reference: bool


#: the forgetting axis: the forget-set accuracy gap to retrain (paired by seed), else Avg Gap
FORGETTING = {"forget_gap": "|forget acc − retrain's forget acc|", "avg_gap": "Avg Gap to retrain"}


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _is_retrain(cell: Mapping[str, Any]) -> bool:
    return str(cell.get("unlearner") or cell.get("method") or "").split("(")[0] == "retrain"


def forgetting_utility(cells: Iterable[Mapping[str, Any]], references: set[str]) -> tuple[str | None, list[Point]]:
    """Forgetting vs utility per method over the unattacked, successful cells of one unlearning group.

    Forgetting is ``forget_gap`` = |forget_acc − retrain's forget_acc of the same seed| (retrain's mean over
    seeds where that seed has none) when a retrain row has forget accuracies, else ``avg_gap``; utility is
    ``test_acc``. Per method, the seeds with both values are averaged. Returns the axis used (None: nothing
    to plot) and the points, reference rows first."""
    usable = [c for c in cells if _usable(c)]
    target: dict[Any, list[float]] = defaultdict(list)
    for c in usable:
        if _is_retrain(c) and (v := _number((c.get("metrics") or {}).get("forget_acc"))) is not None:
            target[c.get("seed")].append(v)
    by_seed = {seed: statistics.fmean(vals) for seed, vals in target.items()}
    overall = statistics.fmean(by_seed.values()) if by_seed else None
    present = {k for c in usable for k, v in (c.get("metrics") or {}).items() if _number(v) is not None}
    axis = ("forget_gap" if overall is not None and "forget_acc" in present
            else "avg_gap" if "avg_gap" in present else None)
    if axis is None:
        return None, []
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for c in usable:
        metrics = c.get("metrics") or {}
        y = _number(metrics.get("test_acc"))
        if axis == "forget_gap":
            fa = _number(metrics.get("forget_acc"))
            ref = by_seed.get(c.get("seed"), overall)
            x = abs(fa - ref) if fa is not None and ref is not None else None
        else:
            x = _number(metrics.get("avg_gap"))
        if x is not None and y is not None:
            pairs[c["method"]].append((x, y))
    points = []
    for method in sorted(pairs, key=lambda m: (m not in references, m)):
        xs, ys = [p[0] for p in pairs[method]], [p[1] for p in pairs[method]]
        points.append(Point(method, statistics.fmean(xs), statistics.fmean(ys), _std(xs), _std(ys), len(xs),
                            method in references))
    return axis, points


REF_MARKERS = "sDv^"


def _forgetting_utility_figure(new, key, cells, references) -> list[Figure]:
    import matplotlib

    track, dataset, forget = key
    if track != "unlearning":
        return []
    axis, points = forgetting_utility(cells, references)
    if not points or all(p.reference for p in points):
        return []
    labels = [p.method for p in points]
    fig = new(*_size(labels))
    ax = fig.add_subplot()
    palette = [p.method for p in points if not p.reference]
    cmap = matplotlib.colormaps["tab10" if len(palette) <= 10 else "tab20"]
    refs = [p.method for p in points if p.reference]
    for p in points:
        if p.reference:
            r = refs.index(p.method)
            style = dict(color=REF_GREYS[r % 4], marker=REF_MARKERS[r % len(REF_MARKERS)], markerfacecolor="none",
                         markersize=8, markeredgewidth=1.5)
        else:
            k = palette.index(p.method)
            style = dict(color=cmap(k % cmap.N), marker=MARKERS[k % len(MARKERS)], markersize=6)
        ax.errorbar([p.x * 100], [p.y * 100], xerr=[p.x_std * 100] if p.x_std else None,
                    yerr=[p.y_std * 100] if p.y_std else None, linestyle="none", elinewidth=0.8, capsize=2,
                    label=p.method, **style)
    xlabel = ("|forget acc − retrain's forget acc| (percentage points)" if axis == "forget_gap"
              else "Avg Gap to retrain (%)")
    ax.set(xlabel=xlabel, ylabel="clean test accuracy (%)")
    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    title = f"{_group_title(track, dataset, forget, cells)}: forgetting vs utility"
    ax.set_title(_wrap(title, PANEL[0] if len(labels) <= SIDE else fig.get_figwidth()))
    _legend(fig, ax)
    seeds = max(p.n for p in points)
    how = ("the absolute difference between its forget-set accuracy and the retrained model's (same seed): 0 "
           "forgets exactly as much as retraining" if axis == "forget_gap" else
           "its Avg Gap to the retrained model (mean gap over forget, retain and test accuracy and MIA efficacy)")
    caption = (f"One point per unlearner on forget set {forget}: x is {how}; y is its clean test accuracy. Best is "
               "top left (forgets like retraining and stays useful). Hollow grey markers are reference rows "
               "(original: no unlearning; retrain: the target"
               + (", at x = 0" if axis == "forget_gap" else "") + f"). Mean over up to {seeds} seed"
               + ("s" if seeds != 1 else "") + " per unlearner; bars are ± one standard deviation.")
    return [Figure(_name("forgetting-utility", track, dataset, forget), title, caption, fig)]
