"""``dememo-bench report``: a finished run's results as figures (PNG and SVG) and one self-contained HTML page.

The renderer only reads ``results.json`` (schema ``dememo.results/1``); it runs no method. Figures, one per
(track, dataset, forget set) group, methods as lines (mean over seeds, a band of ± one standard deviation),
reference rows (``suite.references``: none, original, retrain) dashed grey. Which figures a column or an attack
has is declared by its plugin (``dememo.Plot`` on a ``Column``, ``dememo.Sweep`` on an ``Attack``), read from
results.json (``columns``, ``plugins[i].sweeps``) and, for files written before declarations, from the
installed plugins (:func:`declarations`); this module names no plugin. With the first-party plugins:

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
PNG, SVG and HTML files (no dates or software versions in the files, a fixed SVG id salt). So a figure is
worked out as data first and drawn only when its bytes are asked for; its key (the SHA-256 of that data, the
output settings, this module's source, :data:`FIGURE_VERSION` and the matplotlib version) finds bytes drawn before in a
:class:`FigureCache`, without importing matplotlib.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import html
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs

from dememo.board.leaderboard import partial_note, reference_rows, sorted_groups, without_param
from dememo.errors import UserError
from dememo.hashing import canonical, canonical_json, digest
from dememo.numbers import finite
from dememo.planning.suite import Curve as SuiteCurve
from dememo.results.aggregate import stats
from dememo.results.record import CellRecord, records

TARGETS = {
    "share": "the owner's poisoned share is forgotten",
    "clean": "a clean forget set is forgotten while the owner's share stays poisoned",
}
#: where the suite's curves, and attack sweeps without a figure of their own, come among a group's figures
#: (declared figures come by their ``order``)
SWEEP_ORDER = 30
#: the column of a suite curve that names none (the suite format's default)
CURVE_COLUMN = attrs.fields(SuiteCurve).column.default
#: keys of a results.json column declaration that files written before declarations lack: the report reads
#: them from the installed plugins' declarations (as for every key a file's column lacks)
DECLARED = ("long_label", "plots", "tuning")
NOTHING = ("nothing to plot: results.json has no depth, interplay or residual-knowledge series and no weight-recovery "
           "sweep; run a suite with the depth / residual-knowledge metrics, the interplay track or a weight-recovery curve")
SALT = "dememo"
DPI = 100
#: part of every figure's cache key (:meth:`Figure.key`, with this module's source): bump it when the figures'
#: bytes change for a reason outside this module (e.g. a helper it draws with)
FIGURE_VERSION = 1


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
        s = stats(run.get(x) for run in runs)
        ns.append(s.n)
        means.append(s.mean)
        stds.append(s.std)
    return Curve(tuple(xs), tuple(means), tuple(stds), tuple(ns), len(runs))


def _points(series: Mapping[str, Any]) -> dict[float, float | None]:
    xs, ys = series.get("x") or [], series.get("y") or []
    return {float(x): _number(y) for x, y in zip(xs, ys) if _number(x) is not None}


def _usable(cell: CellRecord) -> bool:
    return cell.status == "ok" and cell.attack == "none"


def series_by_method(cells: Iterable[CellRecord], column: str) -> dict[str, Curve]:
    """Series ``column`` of each method's unattacked, successful cells, aggregated over seeds."""
    runs: dict[str, list[dict[float, float | None]]] = defaultdict(list)
    for c in cells:
        series = (c.series or {}).get(column)
        if _usable(c) and isinstance(series, Mapping):
            runs[c.method].append(_points(series))
    return {m: aggregate(r) for m, r in runs.items()}


def sweep_by_method(cells: Iterable[CellRecord], attack: str, param: str, column: str,
                    from_zero: bool = True) -> dict[str, Curve]:
    """Metric ``column`` along the attack-strength parameter ``param`` of the ``attack`` cells (its suite
    variants), per method and attack label without ``param``, aggregated over seeds. With ``from_zero`` the
    method's unattacked cell of the same seed is the point ``param`` = 0. Keys: the method, or
    ``method · label`` when one table holds several settings of the attack."""
    runs: dict[tuple[str, str], dict[Any, dict[float, float | None]]] = defaultdict(lambda: defaultdict(dict))
    base: dict[tuple[str, Any], float | None] = {}
    for c in cells:
        if c.status != "ok" or column not in c.metrics:
            continue
        spec = (c.params or {}).get("attack") or {}
        if spec.get("name") == attack and _number((spec.get("params") or {}).get(param)) is not None:
            x = float(spec["params"][param])
            runs[(c.method, without_param(c.attack, param))][c.seed][x] = _number(c.metrics[column])
        elif c.attack == "none":
            base[(c.method, c.seed)] = _number(c.metrics[column])
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


def interplay_matrix(cells: Iterable[CellRecord], column: str, references: list[str] | None = None) -> Matrix:
    """The interplay matrix of ``column`` over the unattacked cells (rows poisoners, columns unlearners)."""
    cells = [c for c in cells if c.attack == "none"]
    refs = references or []
    rows = _ordered((str(c.poisoner) for c in cells), refs)
    cols = _ordered((str(c.unlearner) for c in cells), refs)
    vals: dict[tuple[str, str], list[float]] = defaultdict(list)
    failed: dict[tuple[str, str], int] = defaultdict(int)
    count: dict[tuple[str, str], int] = defaultdict(int)
    for c in cells:
        key = (str(c.poisoner), str(c.unlearner))
        count[key] += 1
        if c.status == "failed":
            failed[key] += 1
        elif c.status == "ok" and (v := _number(c.metrics.get(column))) is not None:
            vals[key].append(v)
    return Matrix(
        rows, cols,
        tuple(tuple(stats(vals[(r, u)]).mean for u in cols) for r in rows),
        tuple(tuple(failed[(r, u)] for u in cols) for r in rows),
        tuple(tuple(count[(r, u)] for u in cols) for r in rows),
    )


# -- figures ---------------------------------------------------------------------------------------


@attrs.define(eq=False)
class Figure:
    """One figure of the report: a stable file ``name`` (no extension), a ``title``, a ``caption`` saying
    what it shows and how to read it, and how to draw it: ``draw(new, *args)`` builds the matplotlib figure
    (``new`` makes an empty one). Nothing is drawn until :attr:`figure`, :meth:`png` or :meth:`svg` asks, so
    a figure whose bytes are in a :class:`FigureCache` is never drawn: ``args`` (plain data) is its identity
    (:meth:`key`), computed without matplotlib."""

    name: str
    title: str
    caption: str
    draw: Callable[..., Any] = attrs.field(repr=False)
    args: tuple[Any, ...] = attrs.field(repr=False)
    _figure: Any = attrs.field(default=None, init=False, repr=False)
    _bytes: dict[str, bytes] = attrs.field(factory=dict, init=False, repr=False)

    @property
    def figure(self) -> Any:
        """The matplotlib figure (drawn once, under the report's style)."""
        if self._figure is None:
            import matplotlib

            with matplotlib.rc_context(STYLE):
                self._figure = self.draw(_mpl(), *self.args)
        return self._figure

    def key(self, fmt: str) -> str | None:
        """SHA-256 of everything the figure's ``fmt`` bytes follow from: the drawing function and its
        arguments, the output settings, the drawing code (this module's source, and :data:`FIGURE_VERSION`
        for what lies outside it) and the matplotlib version; None when the arguments are not plain data or
        matplotlib is not installed (such a figure is not cached)."""
        try:
            call = _plain(self.args)
        except TypeError:
            return None
        version = _matplotlib_version()
        if version is None:
            return None
        return digest([FIGURE_VERSION, _source(), version, fmt, DPI, SALT, STYLE,
                       f"{self.draw.__module__}.{self.draw.__qualname__}", call])

    def _render(self, fmt: str) -> bytes:
        import io

        import matplotlib

        buf = io.BytesIO()
        metadata = {"Date": None, "Creator": None} if fmt == "svg" else {"Software": None}
        with matplotlib.rc_context({"svg.hashsalt": SALT, "svg.fonttype": "path"}):
            self.figure.savefig(buf, format=fmt, dpi=DPI, metadata=metadata)
        return buf.getvalue()

    def _get(self, fmt: str, cache: FigureCache | None) -> bytes:
        """The ``fmt`` bytes: rendered once, read from and stored in ``cache`` when there is one."""
        if fmt not in self._bytes:
            key = self.key(fmt) if cache is not None else None
            data = cache.get(key, fmt) if cache is not None and key is not None else None
            if data is None:
                data = self._render(fmt)
                if cache is not None and key is not None:
                    cache.put(key, fmt, data)
            self._bytes[fmt] = data
        return self._bytes[fmt]

    def png(self, cache: FigureCache | None = None) -> bytes:
        return self._get("png", cache)

    def svg(self, cache: FigureCache | None = None) -> bytes:
        return self._get("svg", cache)


def _plain(value: Any) -> Any:
    """``value`` as plain JSON-able data for a key, order kept where drawing follows it: a mapping as its
    items in order (``digest`` would sort a dict's keys), a set sorted, an attrs instance by class and fields.
    Every mapping is wrapped, so no two different values look alike. Raises TypeError for anything else."""
    if attrs.has(type(value)):
        return {"attrs": type(value).__qualname__, "fields": _plain(attrs.asdict(value, recurse=False))}
    if isinstance(value, Mapping):
        return {"map": [[_plain(k), _plain(v)] for k, v in value.items()]}
    if isinstance(value, (set, frozenset)):
        return {"set": sorted((_plain(v) for v in value), key=canonical_json)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return canonical(value)  # a scalar JSON can hold, or TypeError


@functools.cache
def _source() -> str:
    """SHA-256 of this module's source: an edit to the drawing code cannot serve figures drawn by the old
    code, even where :data:`FIGURE_VERSION` was not bumped ("" where the source cannot be read)."""
    try:
        return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    except OSError:
        return ""


@functools.cache
def _matplotlib_version() -> str | None:
    """matplotlib's version from its installed metadata: known without importing it (about a second)."""
    from importlib import metadata

    try:
        return metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        return None


#: the file a cached figure starts with: ``dememo-figure <key> <sha256 of the bytes>`` and a newline
CACHE_HEADER = b"dememo-figure"
KEY_NAME = re.compile(r"[0-9a-f]{64}\.(png|svg)")


def _header(key: str, data: bytes) -> bytes:
    """A cached figure's first line: what it is stored under and the checksum of the bytes after it."""
    return b" ".join((CACHE_HEADER, key.encode(), hashlib.sha256(data).hexdigest().encode()))


@attrs.define
class FigureCache:
    """Rendered figures by key (:meth:`Figure.key`), one file each, ``<key>.<fmt>`` in ``root``: re-writing
    the same results draws nothing (and never imports matplotlib). A file is its key and the SHA-256 of its
    bytes on one line, then the bytes; one that does not check out (truncated, corrupt, copied under another
    key) or cannot be read is a miss, and a file that cannot be written is only a lost saving. ``used``: the
    keys got or put, what :meth:`prune` keeps."""

    root: Path
    used: set[str] = attrs.field(factory=set)

    def _path(self, key: str, fmt: str) -> Path:
        return self.root / f"{key}.{fmt}"

    def get(self, key: str, fmt: str) -> bytes | None:
        """The bytes stored under ``key``, or None (absent, unreadable or not what was stored)."""
        try:
            text = self._path(key, fmt).read_bytes()
        except OSError:
            return None
        head, _, data = text.partition(b"\n")
        if head != _header(key, data):
            return None
        self.used.add(key)
        return data

    def put(self, key: str, fmt: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically (best effort: a failure leaves no file, and costs nothing else)."""
        from dememo.files import atomic_write_bytes

        try:
            atomic_write_bytes(self._path(key, fmt), _header(key, data) + b"\n" + data)
        except OSError:
            return
        self.used.add(key)

    def prune(self) -> None:
        """Remove the cached figures not used since this cache was made, after a write drew the page: the
        cache then holds the current figures only. Nothing is removed when nothing was used (plots left out,
        or none to draw); a file that cannot be removed stays (best effort)."""
        if not self.used:
            return
        try:
            names = [p for p in self.root.iterdir() if KEY_NAME.fullmatch(p.name) and p.name[:64] not in self.used]
        except OSError:
            return
        for path in names:
            try:
                path.unlink()
            except OSError:
                pass


def slug(text: str) -> str:
    """A file-name-safe, readable form of a label: ``random-10% (owner-50% poisoned)`` →
    ``random-10pct-owner-50pct-poisoned``."""
    text = text.lower().replace("%", "pct").replace("→", "to").replace("_", "-")
    return re.sub(r"[^a-z0-9.]+", "-", text).strip("-.") or "x"


def _name(kind: str, *parts: str | None) -> str:
    return "_".join(slug(p) for p in (kind, *parts) if p)


def _group_title(track: str, dataset: str, forget: str | None, cells: list[CellRecord]) -> str:
    arch = cells[0].architecture or "?"
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


def _by_poisoner(cells: list[CellRecord], curves: Mapping[str, Curve],
                 references: set[str]) -> tuple[dict[str, dict[str, Curve]], set[str]]:
    """Interplay curves keyed ``poisoner → unlearner`` as one panel per poisoner, one line per unlearner."""
    parts = {c.method: (str(c.poisoner), str(c.unlearner)) for c in cells}
    panels: dict[str, dict[str, Curve]] = defaultdict(dict)
    refs = set()
    for method, curve in curves.items():
        poisoner, unlearner = parts[method]
        panels[f"poisoner {poisoner}"][unlearner] = curve
        if method in references:
            refs.add(unlearner)
    order = sorted(panels, key=lambda p: (p != "poisoner none", p))
    return {p: panels[p] for p in order}, refs


# -- declarations ------------------------------------------------------------------------------------


@attrs.frozen
class Declarations:
    """What the results' plugins declare about drawing them: each track's column declarations (results.json's
    ``columns``, a key a file lacks read from the installed plugins' declaration of that column) and each
    attack's sweeps (``plugins[i].sweeps``, else the installed attack's)."""

    columns: dict[str, dict[str, dict[str, Any]]]
    installed: dict[str, dict[str, dict[str, Any]]]
    by_name: dict[str, dict[str, Any]]
    sweeps: dict[str, list[dict[str, Any]]]

    def meta(self, track: str, column: str) -> dict[str, Any]:
        """The column's declaration on ``track``: the results' own, completed from the installed plugins'."""
        own = self.columns.get(track, {}).get(column) or {}
        installed = self.installed.get(track, {}).get(column) or self.by_name.get(column) or {}
        return {**installed, **own}

    def plots(self, track: str, column: str, kind: str) -> list[dict[str, Any]]:
        """The column's ``kind`` plots that apply on ``track``."""
        return [p for p in self.meta(track, column).get("plots") or []
                if isinstance(p, Mapping) and p.get("kind", "curves") == kind and p.get("figure")
                and (not p.get("tracks") or track in p["tracks"])]

    def sweep(self, attack: str, param: str) -> dict[str, Any]:
        """The attack's declared sweep over ``param`` (empty when it declares none)."""
        return next((w for w in self.sweeps.get(attack, []) if w.get("param") == param), {})


def _installed_declarations() -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, dict[str, Any]],
                                       dict[str, list[dict[str, Any]]]]:
    """The installed plugins' declarations (columns by track, columns by name, attack sweeps); empty when the
    registry cannot be read (a report needs no plugin installed)."""
    try:
        from dememo import plugins

        registry = plugins.get_registry()
    except Exception:  # noqa: BLE001 - declarations of files written before them are optional
        return {}, {}, {}
    by_track: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    by_name: dict[str, dict[str, Any]] = {}
    for name in registry.names("metric"):
        cls = registry.get("metric", name)
        for col, c in cls.columns.items():  # type: ignore[attr-defined]
            meta = c.to_json(name)
            if col not in by_name or (meta["plots"] and not by_name[col]["plots"]):
                by_name[col] = meta
            for track in cls.tracks:  # type: ignore[attr-defined]
                by_track[track][col] = meta
    sweeps = {name: [w.to_json() for w in registry.get("attack", name).sweeps]  # type: ignore[attr-defined]
              for name in registry.names("attack")}
    return dict(by_track), by_name, sweeps


def declarations(results: Mapping[str, Any]) -> Declarations:
    """The declarations the report draws ``results`` by (see :class:`Declarations`)."""
    by_track, by_name, sweeps = _installed_declarations()
    for p in results.get("plugins") or []:
        if isinstance(p, Mapping) and p.get("family") == "attack" and isinstance(p.get("sweeps"), list):
            sweeps[str(p.get("name"))] = [w for w in p["sweeps"] if isinstance(w, Mapping)]
    columns = {t: dict(m) for t, m in (results.get("columns") or {}).items() if isinstance(m, Mapping)}
    return Declarations(columns, by_track, by_name, sweeps)


def _group_columns(decl: Declarations, track: str, cells: list[CellRecord]) -> list[str]:
    """The columns a group may draw, in declaration order: the results' own, the installed plugins', then any
    other the cells hold."""
    names = list(decl.columns.get(track, {})) + list(decl.installed.get(track, {}))
    for c in cells:
        names += list(c.metrics) + list(c.series or {})
    return list(dict.fromkeys(names))


def _what(meta: Mapping[str, Any], column: str) -> str:
    """A column's name on axes and in captions: its long label, else its label."""
    return meta.get("long_label") or meta.get("label", column)


def _line_value(cells: list[CellRecord], line: Any) -> float | None:
    """A plot's reference line: a number, or the mean of a column over the group's unattacked cells."""
    if isinstance(line, str):
        return stats(c.metrics.get(line) for c in cells if _usable(c)).mean
    return _number(line)


def _curves_figures(decl, key, cells, references) -> list[tuple[int, int, Any]]:
    """Every ``curves`` figure declared on the group's series columns, as (order, position, draw)."""
    track, dataset, forget = key
    groups: dict[str, list[tuple[int, str, dict[str, Any]]]] = defaultdict(list)
    for i, column in enumerate(_group_columns(decl, track, cells)):
        for plot in decl.plots(track, column, "curves"):
            groups[plot["figure"]].append((i, column, plot))
    jobs = []
    for figure, members in groups.items():
        def draw(figure=figure, members=members) -> list[Figure]:
            drawn = [(column, plot, curves) for _, column, plot in members
                     if (curves := series_by_method(cells, column))]
            if not drawn:
                return []
            _, plot, curves = drawn[0]
            line = _line_value(cells, plot.get("line"))
            layout = ""
            if track == "interplay" and len(drawn) == 1:
                panels, refs = _by_poisoner(cells, curves, references)
                layout = "One plot per poisoner, one line per unlearner."
            else:
                panels = ({"": curves} if len(drawn) == 1 and not plot.get("panel")
                          else {p.get("panel") or column: c for column, p, c in drawn})
                refs = {m for c in panels.values() for m in c if m in references}
            title = f"{_group_title(track, dataset, forget, cells)}: {plot.get('title') or figure}"
            parts = (plot.get("caption"), layout, plot.get("reading"), plot.get("line_caption") if line is not None else "")
            caption = " ".join(p for p in parts if p) + " " + _seeds_note(curves)
            args = (panels, refs, title, plot.get("x", ""), plot.get("y", ""), 100.0 if plot.get("percent", True) else 1.0,
                    (line, plot.get("line_label", "")) if line is not None else None)
            return [Figure(_name(figure, track, dataset, forget), title, caption, _panels_figure, args)]
        jobs.append((int(members[0][2].get("order", 0)), members[0][0], draw))
    return jobs


def _sweeps(results: Mapping[str, Any], decl: Declarations, track: str | None = None) -> list[dict[str, Any]]:
    """The generic sweep figures: the suite's curves, then the attacks' declared sweeps with a column and no
    figure of their own (on ``track``)."""
    defaults = [{"attack": attack, **w} for attack in sorted(decl.sweeps) for w in decl.sweeps[attack]
                if w.get("column") and not w.get("figure") and (track is None or not w.get("tracks") or track in w["tracks"])]
    seen, out = set(), []
    for curve in list((results.get("suite") or {}).get("curves") or []) + defaults:
        key = (curve.get("attack"), curve.get("param"), curve.get("column", CURVE_COLUMN))
        if None not in key and key not in seen:
            seen.add(key)
            out.append({"attack": key[0], "param": key[1], "column": key[2], "from_zero": curve.get("from_zero", True)})
    return out


def _sweep_figures(results, decl, key, cells, references) -> list[Figure]:
    track, dataset, forget = key
    out = []
    declared = [(c.get("attack"), c.get("param")) for c in (results.get("suite") or {}).get("curves") or []]
    for sweep in _sweeps(results, decl, track):
        in_suite = (sweep["attack"], sweep["param"]) in declared
        curves = sweep_by_method(cells, sweep["attack"], sweep["param"], sweep["column"], sweep["from_zero"])
        if not curves:
            continue
        meta = decl.meta(track, sweep["column"])
        how = decl.sweep(sweep["attack"], sweep["param"])
        axis = how.get("axis") or sweep["param"]
        fraction = meta.get("unit", "fraction") == "fraction"
        what = _what(meta, sweep["column"])
        label = what + (" (%)" if fraction else "")
        arrow = {"higher": "higher is better", "lower": "lower is better",
                 "match": "closest to the reference row is better"}.get(meta.get("direction", ""), "")
        title = f"{_group_title(track, dataset, forget, cells)}: {what} under {sweep['attack']}"
        caption = (f"{what[0].upper() + what[1:]} of each method's model attacked by {sweep['attack']} at each "
                   f"{axis} the suite runs (its attack variants)"
                   + ("; 0 is the unattacked model" if sweep["from_zero"] else "") + ". "
                   + (f"From the dememorizer's side {arrow}: " if arrow else "")
                   + (f"{how['note']} " if how.get("note") else "")
                   + ("The leaderboard's AUC table is the normalised area under these curves. " if in_suite else "")
                   + _seeds_note(curves))
        refs = {line for line in curves if line.split(" · ")[0] in references}
        args = ({"": curves}, refs, title, axis, label, 100.0 if fraction else 1.0)
        out.append(Figure(_name(f"sweep-{sweep['attack']}-{sweep['param']}-{sweep['column']}", track, dataset, forget),
                          title, caption, _panels_figure, args))
    return out


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
    diverging = bool(meta.get("signed"))  # a signed column (a gain): a diverging map centred on 0
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
    label = _what(meta, column)
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


def _heatmap_figures(results, decl, key, cells) -> list[tuple[int, int, Any]]:
    """The poisoner × unlearner heat maps of the columns declaring one, per interplay target (one job)."""
    track, dataset, forget = key
    declared = sorted((int(p.get("order", 0)), i, column, p) for i, column in enumerate(_group_columns(decl, track, cells))
                      for p in decl.plots(track, column, "heatmap")[:1])
    if not declared:
        return []

    def draw() -> list[Figure]:
        refs = (results.get("suite") or {}).get("references") or {}
        references = list(refs.get("poisoner", [])) + list(refs.get("unlearner", []))
        by_target: dict[str, list[CellRecord]] = defaultdict(list)
        for c in cells:
            by_target[str(c.interplay_target or "share")].append(c)
        out = []
        for target in sorted(by_target):
            tcells = by_target[target]
            for _, _, column, plot in declared:
                if not any(column in c.metrics for c in tcells):
                    continue
                m = interplay_matrix(tcells, column, references)
                meta = decl.meta(track, column)
                label = _what(meta, column)
                what = TARGETS.get(target, f"interplay target {target}")
                title = f"Interplay — {dataset}, forget set {forget}: {label}"
                reading = plot.get("caption") or meta.get("description", column)
                caption = (f"Poisoner (rows) × unlearner (columns): {reading}; {what}. Each cell is the mean over seeds"
                           + (", in percent" if meta.get("unit", "fraction") == "fraction" else "")
                           + ". Hatched grey: the combination was not run; red crosses: every cell of it failed; n/a: no "
                           "defined value; * : some seeds failed (the mean is over the others).")
                name = _name(f"{plot['figure']}-{column}", dataset, forget, target if len(by_target) > 1 else None)
                out.append(Figure(name, title, caption, _heatmap, (m, column, meta, title)))
        return out
    return [(declared[0][0], declared[0][1], draw)]


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
    there is nothing to plot. Only their data is worked out here: each is drawn when its bytes are asked for
    (:class:`Figure`)."""
    _check(results)
    decl = declarations(results)
    out: list[Figure] = []
    for key, cells in sorted_groups(results):  # type: ignore[arg-type]
        references = reference_rows(results, cells)  # type: ignore[arg-type]
        jobs = (_heatmap_figures(results, decl, key, cells)
                + _curves_figures(decl, key, cells, references)
                + [(SWEEP_ORDER, 0, lambda key=key, cells=cells, references=references:
                    _sweep_figures(results, decl, key, cells, references))]
                + _own_sweep_figures(results, decl, key, cells, references)
                + _scatter_figures(decl, key, cells, references))
        for _, _, draw in sorted(jobs, key=lambda j: j[:2]):
            out += draw()
    names: dict[str, int] = defaultdict(int)
    for f in out:  # distinct file names, even for labels that differ only in punctuation
        names[f.name] += 1
        if names[f.name] > 1:
            f.name = f"{f.name}-{names[f.name]}"
    return out


# -- HTML ------------------------------------------------------------------------------------------

CSS = """body{font-family:system-ui,sans-serif;max-width:62em;margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ddd}
.env{font-size:.85em;color:#555}.partial{color:#a00;border:1px solid #a00;padding:.3em .5em}figure{margin:.5em 0 1.5em}img{max-width:100%;height:auto}
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
    cells = records(results.get("cells") or [])
    failed = sum(1 for c in cells if c.status == "failed")
    parts.append(f"{len(cells)} cells ({failed} failed)")
    parts += _run_time(env, len(cells))
    return " · ".join(parts)


def _run_time(env: Mapping[str, Any], cells: int) -> list[str]:
    """What the results cost to compute (the seconds of the distinct stages behind them, wherever they were
    computed) and what the run that wrote them took: a re-run served from the cache says so rather than
    passing its seconds off as the cost."""
    out = []
    if env.get("compute_seconds") is not None:
        out.append(f"compute {float(env['compute_seconds']):.0f} s (the stages behind these results)")
    if env.get("wall_seconds") is not None:
        wall = f"run time {float(env['wall_seconds']):.0f} s"
        cached = env.get("cells_from_cache")
        if cached:
            wall += f" ({cached} of {cells} cells from the cache" + (
                f", {float(env['computed_seconds']):.0f} s of stages computed)" if env.get("computed_seconds") else ")")
        out.append(wall)
    return out


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
    partial = partial_note(dict(results))
    if partial:  # every format of partial results says so, the report's figures too
        body.append(f'<p class="partial"><strong>{e(partial)}</strong></p>')
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


# -- declared sweeps with a figure of their own; scatter plots -----------------------------------------


def _own_sweep_figures(results, decl, key, cells, references) -> list[tuple[int, int, Any]]:
    """The attacks' declared sweeps that have a figure of their own (e.g. accuracy under weight noise), unless
    the suite's curves already draw the same sweep."""
    track, dataset, forget = key
    generic = {(s["attack"], s["param"], s["column"]) for s in _sweeps(results, decl)}
    jobs = []
    for i, (attack, w) in enumerate((a, w) for a in sorted(decl.sweeps) for w in decl.sweeps[a]):
        if not (w.get("figure") and w.get("column") and w.get("param")):
            continue
        if (w.get("tracks") and track not in w["tracks"]) or (attack, w["param"], w["column"]) in generic:
            continue

        def draw(attack=attack, w=w) -> list[Figure]:
            curves = sweep_by_method(cells, attack, w["param"], w["column"], w.get("from_zero", True))
            if not curves:
                return []
            meta = decl.meta(track, w["column"])
            fraction = meta.get("unit", "fraction") == "fraction"
            title = f"{_group_title(track, dataset, forget, cells)}: {w.get('title') or w['figure']}"
            caption = (f"{w['caption']} " if w.get("caption") else "") + _seeds_note(curves)
            refs = {line for line in curves if line.split(" · ")[0] in references}
            args = ({"": curves}, refs, title, w.get("axis") or w["param"],
                    _what(meta, w["column"]) + (" (%)" if fraction else ""), 100.0 if fraction else 1.0)
            return [Figure(_name(w["figure"], track, dataset, forget), title, caption, _panels_figure, args)]
        jobs.append((int(w.get("order", 0)), i, draw))
    return jobs


@attrs.frozen
class Point:
    """One method in a scatter plot: the means (and sample std) over seeds of its ``x`` and ``y``, the number
    of seeds ``n`` with both, and whether it is a reference row."""

    method: str
    x: float
    y: float
    x_std: float
    y_std: float
    n: int
    reference: bool


def _is_row(cell: CellRecord, row: str) -> bool:
    return str(cell.unlearner or cell.method or "").split("(")[0] == row


def scatter(cells: Iterable[CellRecord], references: set[str], candidates: list[tuple[str, str | None]],
            y: str) -> tuple[str | None, list[Point]]:
    """One point per method over the unattacked, successful cells of one group: x the first of ``candidates``
    the cells have, y the column ``y``; per method, the seeds with both values are averaged.

    A candidate is ``(column, reference)``: with a reference row (a ``match`` column, e.g. forget accuracy
    against ``retrain``) x is |value − the reference row's value of the same seed| (its mean over seeds where
    that seed has none), usable only when the reference row has values. Returns the x column used (None:
    nothing to plot) and the points, reference rows first."""
    usable = [c for c in cells if _usable(c)]
    present = {k for c in usable for k, v in c.metrics.items() if _number(v) is not None}
    axis, by_seed, overall = None, {}, None
    for column, row in candidates:
        if column not in present:
            continue
        if row is None:
            axis, by_seed, overall = column, {}, None
            break
        target: dict[Any, list[float]] = defaultdict(list)
        for c in usable:
            if _is_row(c, row) and (v := _number(c.metrics.get(column))) is not None:
                target[c.seed].append(v)
        by_seed = {seed: stats(vals).mean for seed, vals in target.items()}
        overall = stats(by_seed.values()).mean
        if overall is not None:
            axis = column
            break
    if axis is None:
        return None, []
    gap = overall is not None
    pairs: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for c in usable:
        metrics = c.metrics
        yv = _number(metrics.get(y))
        if gap:
            v = _number(metrics.get(axis))
            ref = by_seed.get(c.seed, overall)
            x = abs(v - ref) if v is not None and ref is not None else None
        else:
            x = _number(metrics.get(axis))
        if x is not None and yv is not None:
            pairs[c.method].append((x, yv))
    points = []
    for method in sorted(pairs, key=lambda m: (m not in references, m)):
        xs, ys = stats(p[0] for p in pairs[method]), stats(p[1] for p in pairs[method])
        points.append(Point(method, xs.mean, ys.mean, xs.std, ys.std, xs.n, method in references))  # type: ignore[arg-type]
    return axis, points


REF_MARKERS = "sDv^"


def _scatter_figures(decl, key, cells, references) -> list[tuple[int, int, Any]]:
    """The declared scatter plots of the group: per figure, x the first declared x column (by order) the
    cells have, y the first declared y column."""
    track = key[0]
    figs: dict[str, list[tuple[int, int, str, dict[str, Any]]]] = defaultdict(list)
    for i, column in enumerate(_group_columns(decl, track, cells)):
        for plot in decl.plots(track, column, "scatter"):
            figs[plot["figure"]].append((int(plot.get("order", 0)), i, column, plot))
    jobs = []
    for figure, members in figs.items():
        members.sort(key=lambda m: m[:2])
        xs = [m for m in members if m[3].get("axis", "y") == "x"]
        ys = [m for m in members if m[3].get("axis", "y") == "y"]
        if not xs or not ys:
            continue

        def draw(figure=figure, xs=xs, ys=ys) -> list[Figure]:
            return _scatter_figure(decl, key, cells, references, figure, xs, ys[0])
        jobs.append((members[0][0], members[0][1], draw))
    return jobs


def _scatter_figure(decl, key, cells, references, figure, xs, y) -> list[Figure]:
    track, dataset, forget = key
    candidates = []
    for _, _, column, _ in xs:
        meta = decl.meta(track, column)
        candidates.append((column, meta.get("reference") if meta.get("direction") == "match" else None))
    axis, points = scatter(cells, references, candidates, y[2])
    if not points or all(p.reference for p in points):
        return []
    xplot = next(m[3] for m in xs if m[2] == axis)
    yplot = y[3]
    title = f"{_group_title(track, dataset, forget, cells)}: {yplot.get('title') or figure}"
    seeds = max(p.n for p in points)
    caption = (f"One point per unlearner on forget set {forget}: x is {xplot.get('caption', axis)}; y is "
               f"{yplot.get('caption', y[2])}. " + (f"{yplot['reading']} " if yplot.get("reading") else "")
               + (f"Hollow grey markers are reference rows ({xplot['reading']}). " if xplot.get("reading") else "")
               + f"Mean over up to {seeds} seed" + ("s" if seeds != 1 else "")
               + " per unlearner; bars are ± one standard deviation.")
    return [Figure(_name(figure, track, dataset, forget), title, caption, _scatter_plot, (points, xplot, yplot, title))]


def _scatter_plot(new, points: list[Point], xplot: Mapping[str, Any], yplot: Mapping[str, Any], title: str):
    """The scatter plot of :func:`_scatter_figure`: one marker (± std bars) per method, reference rows hollow grey."""
    import matplotlib

    labels = [p.method for p in points]
    fig = new(*_size(labels))
    ax = fig.add_subplot()
    palette = [p.method for p in points if not p.reference]
    cmap = matplotlib.colormaps["tab10" if len(palette) <= 10 else "tab20"]
    refs = [p.method for p in points if p.reference]
    xscale = 100.0 if xplot.get("percent", True) else 1.0
    yscale = 100.0 if yplot.get("percent", True) else 1.0
    for p in points:
        if p.reference:
            r = refs.index(p.method)
            style = dict(color=REF_GREYS[r % 4], marker=REF_MARKERS[r % len(REF_MARKERS)], markerfacecolor="none",
                         markersize=8, markeredgewidth=1.5)
        else:
            k = palette.index(p.method)
            style = dict(color=cmap(k % cmap.N), marker=MARKERS[k % len(MARKERS)], markersize=6)
        ax.errorbar([p.x * xscale], [p.y * yscale], xerr=[p.x_std * xscale] if p.x_std else None,
                    yerr=[p.y_std * yscale] if p.y_std else None, linestyle="none", elinewidth=0.8, capsize=2,
                    label=p.method, **style)
    ax.set(xlabel=xplot.get("x", ""), ylabel=yplot.get("y", ""))
    ax.set_xlim(left=min(0.0, ax.get_xlim()[0]))
    ax.set_title(_wrap(title, PANEL[0] if len(labels) <= SIDE else fig.get_figwidth()))
    _legend(fig, ax)
    return fig
