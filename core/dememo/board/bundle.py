"""Submission bundles: the format, its content hash, which rows a bundle owns, making, writing and loading a
bundle, and every check of ``verify`` that needs nothing but the bundle and the installed plugins
(``check_bundle``). Re-running a bundle's cells is :mod:`dememo.board.verify`; the public board built from
many bundles is :mod:`dememo.board.public`.

A *bundle* (schema ``dememo.submission/1``, JSON Schema in ``dememo/schemas/submission-1.schema.json``) is
one entry: the ``results.json`` cells that use a plugin of the submitter's distribution, plus the reference
cells of the same tables (``suite.references``: ``none``, ``original``, ``retrain``) needed to read them;
the distribution's name and version and the plugin classes (name, version) it provides; the suite and its
fingerprint; the seeds; the environment (torch, CUDA, GPU, dememo version); the column metadata; and
``content_sha256``, a SHA-256 over the canonical JSON of everything else. Wall-clock timings are left out.

Threat model: a bundle is untrusted *data*. It is read as JSON only (size-limited, UTF-8, no NaN/Infinity,
no duplicate keys; pickles, zip/torch files and other binaries are refused before parsing) and nothing in
it is ever imported, unpickled or executed. The content hash catches accidental or naive edits; a
determined tamperer can recompute it, which is what ``verify --rerun K`` is for: K cells drawn from the
bundle's own rows (below) are re-planned from the bundle's suite with the locally installed plugins and
the parameters each cell records (so a run made with ``--set`` re-plans too; the recomputed cell key must
equal the claimed one, else the check names the plugin, version or parameter that differs) and re-run from
an empty cache, and every metric is compared within a stated tolerance.

Ownership: a row (table, method, attack, seed) belongs to a distribution when one of the plugins that
define it (poisoner, learner-side attack, unlearner, attack: ``CELL_FAMILIES``) is one the bundle lists
under ``plugins``, other than the suite's reference attacks in every row (``universal``), or when the
dataset or architecture of its table is (``TABLE_FAMILIES``; not for the reference plugins' own bundle,
``owning_plugins``). Reference rows (``none``, ``original``, ``retrain``) thereby belong to the
distribution of the reference plugins (first-party ``dememo``). A metric owns *columns*: the cells of rows
it does not own on which it was computed (``column_cells``) give its columns, which the board merges onto
those rows (``dememo.board.public``). A bundle's own rows and columns are what it puts on the board; the
reference rows of other distributions it carries are *context*, never merged (a copy that differs beyond
the tolerance from the provider's is noted); any other row makes the bundle refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs

from dememo import results as results_mod
from dememo.errors import UserError
from dememo.hashing import digest
from dememo.numbers import finite

SCHEMA = "dememo.submission/1"
SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "submission-1.schema.json"
MAX_BYTES = 32 * 1024 * 1024
#: families whose plugins make a row "belong" to a distribution (a dataset or architecture: its whole table)
CELL_FAMILIES = {"poisoner": "poisoner", "train_attack": "attack", "unlearner": "unlearner", "attack": "attack"}
#: families whose plugins make a whole table a distribution's (``owning_plugins``)
TABLE_FAMILIES = ("dataset", "architecture")
ENV_KEYS = ("dememo", "torch", "cuda", "gpu", "device", "threads", "python", "platform", "numpy", "torchvision")
#: a plugin name on the board: ASCII kebab-case (the registry's rule, ``plugins.Registry.add``, in ASCII), so
#: that no look-alike (a ligature, another script's letter) of another plugin's name can stand beside it
PLUGIN_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: a distribution name (PEP 508)
DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


@attrs.frozen
class Check:
    """One verdict of ``verify``."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        """One line: bundle text in the detail (method labels, keys, JSON pointers) has its line breaks and
        other unprintable characters escaped."""
        from dememo.params import printable

        return printable(f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}")


# -- canonical content -------------------------------------------------------------------------------


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, non-ASCII kept, UTF-8; NaN/Infinity are refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def content_hash(bundle: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the bundle without its ``content_sha256`` field."""
    return hashlib.sha256(canonical_bytes({k: v for k, v in bundle.items() if k != "content_sha256"})).hexdigest()


def fold(text: str) -> str:
    """``text`` as names are compared on the board: NFKC-normalised and case-folded, so that a look-alike
    (``ﬁnetune`` for ``finetune``, ``Dememo`` for ``dememo``) is the same name."""
    return unicodedata.normalize("NFKC", text).casefold()


def dist_key(name: str) -> str:
    """A distribution name as the board compares it: folded, runs of ``-_.`` as one ``-`` (PEP 503)."""
    return re.sub(r"[-_.]+", "-", fold(name))


def _spec_names(params: dict[str, Any]) -> list[tuple[str, str]]:
    """(family, plugin name) of every plugin that defines a cell (see ``CELL_FAMILIES``) and its metrics."""
    out = [(family, params[field]["name"]) for field, family in CELL_FAMILIES.items() if params.get(field)]
    out += [(family, params["data"][family]["name"]) for family in TABLE_FAMILIES if params.get("data")]
    return out + [("metric", m["name"]) for m in params.get("metrics") or []]


def _is_reference(cell: dict[str, Any], references: dict[str, list[str]]) -> bool:
    """A reference row of its table: a reference poisoner without a learner-side attack on the
    unlearnability track, a reference unlearner (``original``, ``retrain``) on the other tracks."""
    p = cell["params"]
    if cell["track"] == "unlearnability":
        return bool(p.get("poisoner")) and p["poisoner"]["name"] in references.get("poisoner", []) \
            and (not p.get("train_attack") or p["train_attack"]["name"] == "none")
    return bool(p.get("unlearner")) and p["unlearner"]["name"] in references.get("unlearner", [])


def _table(cell: dict[str, Any]) -> tuple[str, str, str | None]:
    return cell["track"], cell["dataset"], cell.get("forget")


def _slot(cell: dict[str, Any]) -> tuple[Any, ...]:
    return (*_table(cell), cell["method"], cell["attack"], cell["seed"])


def _table_plugins(cell: dict[str, Any]) -> set[tuple[str, str]]:
    """(family, name) of the dataset and architecture of the cell's table (``TABLE_FAMILIES``)."""
    data = cell["params"].get("data") or {}
    return {(family, data[family]["name"]) for family in TABLE_FAMILIES if isinstance(data.get(family), dict)}


def _row_plugins(cell: dict[str, Any]) -> set[tuple[str, str]]:
    """(family, name) of the plugins that define the cell's row (``CELL_FAMILIES``): who owns the row is
    decided by these, never by a metric (metrics add columns to rows that others define)."""
    p = cell["params"]
    return {(family, p[field]["name"]) for field, family in CELL_FAMILIES.items() if p.get(field)}


def claimed_plugins(b: dict[str, Any]) -> set[tuple[str, str]]:
    """(family, name) of every plugin the bundle says its distribution provides (self-declared: the board
    checks these claims against every other bundle's)."""
    return {(p["family"], p["name"]) for p in b["plugins"]}


def universal(suite: dict[str, Any]) -> set[tuple[str, str]]:
    """The reference plugins that appear in (nearly) every row: the suite's reference attacks (``none``), which
    are also the learner-side ``none``. They confer no row ownership: claiming ``attack none`` does not make a
    bundle the owner of every row without an attack."""
    return {("attack", n) for n in {"none", *suite.get("references", {}).get("attack", [])}}


def reference_plugins(suite: dict[str, Any]) -> set[tuple[str, str]]:
    """The suite's reference poisoners and unlearners (``none``, ``original``, ``retrain``): the plugins whose
    rows every table is read against."""
    refs = suite.get("references", {})
    return {(family, n) for family in ("poisoner", "unlearner") for n in refs.get(family, [])}


def owning_plugins(b: dict[str, Any]) -> set[tuple[str, str]]:
    """The bundle's claimed plugins that make rows its own: ``claimed_plugins`` less ``universal``. A
    dataset or architecture it claims owns the tables on it (``TABLE_FAMILIES``), unless the bundle also
    claims a reference plugin: the reference plugins' distribution owns its reference rows everywhere, never
    a whole table by its embedded datasets."""
    claimed = claimed_plugins(b) - universal(b["suite"])
    if claimed & reference_plugins(b["suite"]):
        claimed = {(f, n) for f, n in claimed if f not in TABLE_FAMILIES}
    return claimed


def column_plugins(b: dict[str, Any]) -> set[str]:
    """The metrics the bundle claims, whose columns it gives the rows of others it computed them on
    (``column_cells``); none for the reference plugins' own bundle, whose metrics every row's owner measures
    itself (they are the suite's protocol, not a contribution)."""
    if claimed_plugins(b) & reference_plugins(b["suite"]):
        return set()
    return {n for f, n in claimed_plugins(b) if f == "metric"}


def _defining(cell: dict[str, Any], suite: dict[str, Any]) -> set[tuple[str, str]]:
    """The plugins that decide who owns a cell's row: those that define it (``CELL_FAMILIES``) other than the
    suite's reference plugins and ``universal`` attacks, or the reference plugins when the row is made of
    nothing else (a reference row). ``none → my-unlearner`` is thereby ``my-unlearner``'s alone."""
    plugins = _row_plugins(cell) - universal(suite)
    others = plugins - reference_plugins(suite)
    return others or plugins


def is_own(cell: dict[str, Any], claimed: set[tuple[str, str]], suite: dict[str, Any] | None = None) -> bool:
    """Whether a cell's row belongs to the distribution that claims ``claimed`` (``owning_plugins``): one of
    the plugins that decide its row (``_defining``, with ``suite``; without it, any plugin that defines the
    row), or the dataset or architecture of its table, is one of its plugins. Reference rows (``none``,
    ``original``, ``retrain``) are thereby the reference plugins' distribution's (first-party ``dememo``), a
    row like ``my-poison → retrain`` or ``none → my-unlearner`` is the new plugin's alone, every row of a
    table on ``my-dataset`` is ``my-dataset``'s, and a metric owns no row (``column_cells``). The reference
    plugins' own bundle (it claims one of them) owns a row only when every plugin deciding it is its own: a
    row it shares with another distribution's plugin (``scrub @my-attack``, ``em → my-unlearner``) is the
    other's, so a first-party bundle of a run with third-party plugins installed holds no one else's row."""
    rows = _defining(cell, suite) if suite is not None else _row_plugins(cell)
    if suite is not None and claimed & reference_plugins(suite):
        return bool(rows) and rows <= claimed
    return bool((rows | _table_plugins(cell)) & claimed)


def carries_columns(cell: dict[str, Any], metrics: set[str]) -> bool:
    """Whether the cell computed one of ``metrics``."""
    return any(m["name"] in metrics for m in cell["params"].get("metrics") or [])


def column_cells(b: dict[str, Any]) -> list[dict[str, Any]]:
    """The cells of rows the bundle does not own that computed one of its metrics (``column_plugins``): on
    the board it adds those metrics' columns to the same rows of their owners, and nothing else of them."""
    metrics, claimed = column_plugins(b), owning_plugins(b)
    return [c for c in b["cells"] if not is_own(c, claimed, b["suite"]) and carries_columns(c, metrics)] if metrics else []


def own_cells(b: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's own cells (``is_own``) and the cells of its metrics' columns (``column_cells``): the only
    ones it may put on the board (rows, or columns of rows) and the only ones ``verify --rerun`` draws from."""
    claimed = owning_plugins(b)
    return [c for c in b["cells"] if is_own(c, claimed, b["suite"])] + column_cells(b)


def split_cells(b: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The bundle's cells as (own, context, foreign): own rows; other distributions' rows it carries to read
    them against or to give its metrics' columns (reference rows of the same tables, ``column_cells``); and
    rows of plugins it does not provide that carry none of its metrics, which a bundle must not carry."""
    claimed, references = owning_plugins(b), b["suite"].get("references", {})
    metrics = column_plugins(b)
    own, context, foreign = [], [], []
    for c in b["cells"]:
        if is_own(c, claimed, b["suite"]):
            own.append(c)
        elif _is_reference(c, references) or carries_columns(c, metrics):
            context.append(c)
        else:
            foreign.append(c)
    return own, context, foreign


def _where(c: dict[str, Any]) -> str:
    """A row slot in words, for one-line messages."""
    return f"{c['method']} @{c['attack']} seed {c['seed']} ({'/'.join(str(t) for t in _table(c) if t)})"


def _bundle_cell(cell: dict[str, Any]) -> dict[str, Any]:
    # wall-clock timings and the model's key in the submitter's own cache are not part of the claim
    out = {k: v for k, v in cell.items() if k not in ("timings", "model")}
    if isinstance(out.get("error"), dict):
        out["error"] = {k: out["error"][k] for k in ("stage", "message") if k in out["error"]}
    return out


# -- submit ------------------------------------------------------------------------------------------


def bundle(results: dict[str, Any], name: str, distribution: str) -> dict[str, Any]:
    """The submission bundle of ``distribution``'s cells in ``results`` (a ``dememo.results/1`` dict); a
    UserError when the results are partial (``results.is_partial``: a stopped run) or would make a bundle
    that fails its schema."""
    from dememo.params import printable

    if results.get("schema") != results_mod.SCHEMA:
        raise UserError(f"not a {results_mod.SCHEMA} results dict (schema: {results.get('schema')!r})")
    if results_mod.is_partial(results):  # a bundle has no place to say so: the board would take it for a full run
        p = results["partial"] if isinstance(results["partial"], dict) else {}
        raise UserError(f"partial results ({p.get('cells_done', '?')} of {p.get('cells_planned', '?')} cells, the run was "
                        "stopped) make no bundle; run the same command again to finish it, then submit")
    if not name or not name.strip() or len(name) > 100 or not name.isprintable():
        raise UserError("--name must be a non-empty display name of at most 100 characters, without control characters")
    dist_of = {(p["family"], p["name"]): p for p in results.get("plugins", [])}
    cells = [c for c in results.get("cells", []) if c.get("params")]
    mine = {(p["family"], p["name"]) for p in dist_of.values() if p["distribution"] == distribution}
    # the board's ownership rule (``owning_plugins``, ``is_own``), applied to what this distribution provides
    claims = {"plugins": [{"family": f, "name": n} for f, n in mine], "suite": results["suite"]}
    owning = owning_plugins(claims)
    own_keys = {c["key"] for c in cells if is_own(c, owning, results["suite"])}
    metrics = column_plugins(claims)
    column_keys = {c["key"] for c in cells if c["key"] not in own_keys and carries_columns(c, metrics)}
    if not own_keys and not column_keys:
        used = sorted({dist_of[fn]["distribution"] for c in cells for fn in _row_plugins(c) | _table_plugins(c)
                       if fn in dist_of})
        raise UserError(printable(f"no cell in results uses a plugin from distribution {distribution!r} (as a row's "
                                  "poisoner, attack or unlearner, its table's dataset or architecture, or a metric it "
                                  f"computed); distributions with cells: {', '.join(used) or 'none'}"))
    references = results["suite"].get("references", {})
    tables = {_table(c) for c in cells if c["key"] in own_keys}
    chosen = [c for c in cells if c["key"] in own_keys or c["key"] in column_keys
              or (_table(c) in tables and _is_reference(c, references))]
    used = {fn for c in chosen for fn in _spec_names(c["params"])}
    provided = sorted((p for p in dist_of.values() if p["distribution"] == distribution
                       and (p["family"], p["name"]) in used), key=lambda p: (p["family"], p["name"]))
    versions = sorted({p["distribution_version"] for p in provided})
    if len(versions) != 1:
        raise UserError(printable(f"the results record {len(versions)} versions of {distribution} ({', '.join(versions)}); "
                                  "re-run with one installed version"))
    env = results.get("environment", {})
    tracks = sorted({c["track"] for c in chosen})
    out = results_mod.clean_number({
        "schema": SCHEMA,
        "results_schema": results_mod.SCHEMA,
        "name": name.strip(),
        "plugin": {"distribution": distribution, "version": versions[0]},
        "plugins": [{"family": p["family"], "name": p["name"], "version": p["version"]} for p in provided],
        "suite": results["suite"],
        "suite_fingerprint": digest(results["suite"]),
        "seeds": sorted({c["seed"] for c in chosen}),
        "environment": {k: env.get(k) for k in ENV_KEYS if k in env or k in ("cuda", "gpu")},
        "columns": {t: results.get("columns", {}).get(t, {}) for t in tracks},
        "cells": [_bundle_cell(c) for c in sorted(chosen, key=lambda c: c["key"])],
    })
    out["content_sha256"] = content_hash(out)
    problems = schema_errors(out) or _shape_errors(out)
    if problems:  # results that load but cannot make a bundle verify would accept
        raise UserError(f"these results do not make a valid {SCHEMA} bundle: {printable(problems[0])}")
    return out


def write_bundle(b: dict[str, Any], path: Path) -> Path:
    """Write a bundle as indented JSON (any key order or spacing reads back to the same content hash)."""
    from dememo import files

    data = (json.dumps(b, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    if len(data) > MAX_BYTES:
        raise UserError(f"the bundle is {len(data)} bytes, over the {MAX_BYTES // 2**20} MiB limit; submit fewer cells "
                        "(narrow the run) or ask the maintainers")
    try:
        files.atomic_write_bytes(Path(path), data)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    return Path(path)


# -- load --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}: JSON has no NaN or Infinity (use null)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} overflows to infinity")
    return value


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r} in one object")
        out[k] = v
    return out


MAGIC = [  # (prefix, what it is): refused before any parsing
    (b"PK\x03\x04", "a zip archive (torch.save writes these)"),
    (b"\x1f\x8b", "a gzip file"),
    (b"\x93NUMPY", "a NumPy array file"),
    (b"\x89HDF", "an HDF5 file"),
]


def load_bundle(path: Path | str) -> dict[str, Any]:
    """Read a bundle as data: JSON only, at most ``MAX_BYTES``, UTF-8, finite numbers, no duplicate keys.
    Pickles, zip/torch files and other binaries are refused from their first bytes, before parsing."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise UserError(f"{path}: {size} bytes is over the bundle size limit of {MAX_BYTES} bytes "
                            f"({MAX_BYTES // 2**20} MiB)")
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise UserError(f"no bundle at {path}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a bundle file") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{path}: over the bundle size limit of {MAX_BYTES} bytes ({MAX_BYTES // 2**20} MiB)")
    if raw[:1] == b"\x80" and len(raw) > 1 and raw[1] <= 5:
        raise UserError(f"{path} looks like a pickle (protocol {raw[1]} header): bundles are JSON only, "
                        "and dememo never unpickles them")
    for prefix, what in MAGIC:
        if raw.startswith(prefix):
            raise UserError(f"{path} looks like {what}: bundles are JSON only")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text (byte {exc.start}): bundles are JSON only") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                          object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        offset = len(text[:exc.pos].encode("utf-8"))
        raise UserError(f"{path} is not JSON: {exc.msg} at byte {offset} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise UserError(f"{path} is not a bundle: JSON nested too deeply") from None
    except ValueError as exc:
        raise UserError(f"{path} is not valid bundle JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a bundle: the top-level JSON value is a {type(data).__name__}, not an object")
    if results_mod.check._depth(data) > results_mod.MAX_DEPTH:
        raise UserError(f"{path} is not a bundle: its JSON is nested more than {results_mod.MAX_DEPTH} levels deep")
    return data


# -- checks ------------------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema_errors(b: Any, limit: int = 3) -> list[str]:
    """The first ``limit`` JSON Schema violations, each as ``/json/pointer: message`` (shortened)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(b), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    out = []
    for e in errors[:limit]:
        where = "/" + "/".join(str(p) for p in e.absolute_path)  # keys are bundle text: Check.line escapes them
        msg = e.message if len(e.message) <= 160 else e.message[:157] + "..."
        out.append(f"{where}: {msg}")
    if len(errors) > limit:
        out.append(f"and {len(errors) - limit} more")
    return out


def _shape_errors(b: dict[str, Any]) -> list[str]:
    """What the JSON Schema leaves open and the readers rely on: a suite dememo can read (as ``verify
    --rerun`` re-plans it) and cells, columns and suite in the shape the board's tables read
    (``results.shape_problem``, as for a ``results.json``)."""
    from dememo.params import structure
    from dememo.planning.suite import Suite

    try:
        structure(b["suite"], Suite, "$.suite")
    except UserError as exc:
        return [f"/suite: not a suite dememo can read: {exc}"]
    for where, text in (("/name", b["name"]), ("/plugin/version", b["plugin"]["version"])):
        if not text.isprintable():
            return [f"{where}: has a line break or another unprintable character"]
    view = {"suite": b["suite"], "columns": b["columns"], "cells": b["cells"], "environment": {}, "plugins": []}
    problem = results_mod.shape_problem(view)
    return [f"as results: {problem}"] if problem else []


def _finite(v: Any) -> bool:
    """A finite number (booleans and integers beyond the float range are not)."""
    return finite(v) is not None


def _few(items: list[str], n: int = 3) -> str:
    return "; ".join(items[:n]) + (f"; and {len(items) - n} more" if len(items) > n else "")


def _range(col: str, meta: dict[str, Any]) -> tuple[float, float]:
    """The values a column may take, from its metadata: fractions in [0, 1] (a ``signed`` column, a
    difference of two values, in [-1, 1]); counts, seconds and epochs ≥ 0 (``signed``: unbounded); other
    numbers unbounded."""
    unit, signed = meta.get("unit"), bool(meta.get("signed"))
    if unit == "fraction":
        return (-1.0, 1.0) if signed else (0.0, 1.0)
    if unit in ("count", "seconds", "epochs") and not signed:
        return 0.0, math.inf
    return -math.inf, math.inf


def _check_metrics(b: dict[str, Any]) -> Check:
    bad = []
    n = 0
    for c in b["cells"]:
        meta = b["columns"].get(c["track"], {})
        for col, v in c["metrics"].items():
            n += 1
            where = f"cell {c['key'][:12]} {col}"
            if col not in meta:
                bad.append(f"{where}: no column {col!r} declared for track {c['track']}")
            elif v is None:
                continue
            elif not _finite(v):
                bad.append(f"{where}: {v!r} is not a finite number or null")
            else:
                lo, hi = _range(col, meta[col])
                if not lo <= v <= hi:
                    bad.append(f"{where} = {v!r} is outside [{lo:g}, {hi:g}] for a {meta[col].get('unit')} column")
    if bad:
        return Check("metrics", False, _few(bad))
    return Check("metrics", True, f"{n} values finite or null, each declared and within its unit's range")


def _check_series(b: dict[str, Any]) -> Check:
    bad = []
    n = 0
    for c in b["cells"]:
        meta = b["columns"].get(c["track"], {})
        for col, s in (c.get("series") or {}).items():
            n += 1
            where = f"cell {c['key'][:12]} {col}"
            if meta.get(col, {}).get("unit") != "series":
                bad.append(f"{where}: not a declared series column of track {c['track']}")
            elif len(s["x"]) != len(s["y"]):
                bad.append(f"{where}: {len(s['x'])} x values but {len(s['y'])} y values")
            elif not all(_finite(x) for x in s["x"]):
                bad.append(f"{where}: x values must be finite numbers")
            elif not all(y is None or _finite(y) for y in s["y"]):
                bad.append(f"{where}: y values must be finite numbers or null")
    if bad:
        return Check("series", False, _few(bad))
    return Check("series", True, f"{n} series well-formed (declared, equal lengths, finite or null)")


def _check_keys(b: dict[str, Any]) -> Check:
    bad = []
    seen: set[str] = set()
    for c in b["cells"]:
        recomputed = digest(c["params"])
        if recomputed != c["key"]:
            bad.append(f"cell {c['key'][:12]} ({c['method']} @{c['attack']}): its config hashes to {recomputed[:12]}")
        elif c["params"]["seed"] != c["seed"] or c["params"]["track"] != c["track"]:
            bad.append(f"cell {c['key'][:12]}: seed/track differ from its config")
        if c["key"] in seen:
            bad.append(f"cell {c['key'][:12]} appears twice")
        seen.add(c["key"])
    if bad:
        return Check("keys", False, "a cell key does not recompute from its params: " + _few(bad))
    return Check("keys", True, f"all {len(b['cells'])} cell keys recompute as digest(params)")


def _shown(value: Any) -> set[str]:
    """How a parameter value reads in a label: ``Configured.label`` writes ``k=str(value)`` of the value the
    plugin holds, and the bundle holds it as JSON (where a tuple is a list)."""
    return {str(value), str(tuple(value))} if isinstance(value, list) else {str(value)}


def _shows(text: str, params: dict[str, Any], used: frozenset[str] = frozenset()) -> bool:
    """Whether ``text`` is ``k=v, k=v, ...`` of distinct parameters with exactly their values in ``params``."""
    for k, v in params.items():
        if k in used:
            continue
        for item in (f"{k}={rep}" for rep in _shown(v)):
            if text == item or (text.startswith(item + ", ") and _shows(text[len(item) + 2:], params, used | {k})):
                return True
    return False


def _label_problem(label: Any, spec: dict[str, Any] | None, what: str) -> str | None:
    """Why a cell's label of one plugin does not say what its config holds (None when it does): the label
    is ``name`` or ``name(k=v, ...)`` with the config's plugin name and parameter values."""
    if spec is None:
        return None if label is None else f"{what} label {label!r}, but its config has no {what}"
    if not isinstance(label, str):
        return f"no {what} label, but its config has {what} {spec['name']!r}"
    name, paren, inner = label.partition("(")
    if name != spec["name"]:
        return f"{what} label {label!r} names {name!r}, its config {what} {spec['name']!r}"
    if paren and not (inner.endswith(")") and _shows(inner[:-1], spec.get("params") or {})):
        return f"{what} label {label!r} shows parameters its config's {spec['name']} does not have"
    return None


def _name_problems(b: dict[str, Any]) -> list[str]:
    """Plugin and distribution names outside the board's sets: plugin names ASCII kebab-case
    (``PLUGIN_NAME``), the distribution a PEP 508 name."""
    bad = []
    dist = b["plugin"]["distribution"]
    if not DIST_NAME.fullmatch(dist):
        bad.append(f"distribution {dist!r} is not a distribution name (PEP 508: ASCII letters, digits, -_.)")
    names = {(p["family"], p["name"]) for p in b["plugins"]}
    for c in b["cells"]:
        p = c["params"]
        names |= {(fam, p[field]["name"]) for field, fam in CELL_FAMILIES.items() if p.get(field)}
        names |= {("metric", m["name"]) for m in p.get("metrics") or []}
        names |= {(k, p["data"][k]["name"]) for k in ("dataset", "architecture")}
    for family, name in sorted(names):
        if not PLUGIN_NAME.fullmatch(name):
            bad.append(f"{family} name {name!r} is not ASCII kebab-case (a-z, 0-9, single hyphens): a plugin name "
                       "on the board may not look like another's")
    return bad


def _method(c: dict[str, Any]) -> str:
    """A cell's row label from its plugin labels, as ``planner.Cell.method`` writes it."""
    if c["track"] == "interplay":
        return f"{c.get('poisoner')} → {c.get('unlearner')}"
    if c["track"] == "unlearnability":
        ta = c["params"].get("train_attack")
        return c.get("poisoner") if not ta or ta["name"] == "none" else f"{c.get('poisoner')} + {c.get('train_attack')}"
    return c.get("unlearner")


def _forget_labels(suite: dict[str, Any]) -> dict[str, str]:
    """Canonical JSON of every forget set the suite plans (``params.forget``) → its label."""
    from dememo.params import structure
    from dememo.planning.suite import Suite

    s = structure(suite, Suite, "$.suite")
    out = {canonical_bytes(f.to_json()).decode(): f.label() for f in s.forget}
    for target in ("share", "clean"):
        out[canonical_bytes(s.interplay.to_json(target)).decode()] = s.interplay.forget_label(target)
    return out


def _check_labels(b: dict[str, Any]) -> Check:
    """Every label the board shows says what its cell's config is: the plugin labels (poisoner, learner-side
    attack, unlearner, attack, architecture) name the config's plugin and show its parameter values, the
    dataset and forget-set labels are the config's, the method is recomputed from the plugin labels; plugin
    names are ASCII kebab-case. A row cannot pass for another plugin's (a label ``retrain`` on a cell of
    unlearner ``evil``, or ``ﬁnetune`` beside ``finetune``)."""
    bad = _name_problems(b)
    forget = _forget_labels(b["suite"])
    for c in b["cells"]:
        p, where = c["params"], f"cell {c['key'][:12]}"
        found = [_label_problem(c.get(field) if field != "attack" else c["attack"], p.get(field), field)
                 for field in CELL_FAMILIES]
        if "architecture" in c:
            found.append(_label_problem(c["architecture"], p["data"]["architecture"], "architecture"))
        found = [f for f in found if f]
        if c["dataset"] != p["data"]["dataset"]["name"]:
            found.append(f"dataset label {c['dataset']!r}, its config dataset {p['data']['dataset']['name']!r}")
        wanted = None if p.get("forget") is None else forget.get(canonical_bytes(p["forget"]).decode(), "(none)")
        if c.get("forget") != wanted:
            found.append(f"forget label {c.get('forget')!r}, its config's forget set reads {wanted!r}")
        if not found and c["method"] != _method(c):
            found.append(f"method label {c['method']!r}, its plugin labels make {_method(c)!r}")
        bad += [f"{where}: {f}" for f in found]
    if bad:
        return Check("labels", False, "a name or label does not say what the config is: " + _few(bad))
    return Check("labels", True, f"every label of the {len(b['cells'])} cells says its config's plugins and parameters")


def _recipe_spec(recipe: dict[str, Any]) -> dict[str, Any]:
    """A suite file's recipe as a cell's key holds it (``Recipe.spec``: speed options only when set)."""
    from dememo.training import Recipe

    try:
        return Recipe(**recipe).spec()
    except (TypeError, ValueError):
        return recipe  # an unreadable recipe then differs, and the check names it



def _leaf_diffs(a: Any, b: Any, path: str) -> list[str]:
    """Where two JSON values differ, as ``path: here A, bundle B`` (A planned here, B the bundle's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _leaf_diffs(a.get(k, "(absent)"), b.get(k, "(absent)"),
                                                                     f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _leaf_diffs(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: installed here {a!r}, bundle {b!r}"]



class _SuitePlan:
    """What the bundle's suite plans with the plugins installed here, for every part of a cell that is not
    the bundle's own (``owning_plugins``): the data (dataset, architecture, recipe, budgets), reference and
    other distributions' plugins, attacks and metrics. Only the bundle's own plugins may run with other
    parameters (``--set``); a test split, architecture or metric changed with ``--set`` is another protocol.
    A part whose plugin is not installed here is not checked (``verify --rerun`` cannot re-plan it either)."""

    def __init__(self, b: dict[str, Any]):
        from dememo import plugins
        from dememo.params import structure
        from dememo.planning.planner import Planner
        from dememo.planning.suite import Suite

        self.own = owning_plugins(b)
        self.suite = structure(b["suite"], Suite, "$.suite")
        self.planner = Planner(plugins.get_registry(), self.suite, own_tuning=False)
        self.entries = {e.name: e for e in self.suite.datasets}
        self.memo: dict[tuple, Any] = {}

    def _planned(self, what: tuple[str, ...]) -> Any:
        """Canonical JSON of the planned spec(s) of ``what`` (None when it cannot be planned here)."""
        if what not in self.memo:
            entry = self.entries[what[0]]
            try:
                if what[1] == "data":
                    out: Any = canonical_bytes(self.planner.dataset_config(entry).spec())
                else:
                    family, name = what[1], what[2]
                    specs = [c for c in self.planner.configure(family, name, entry=entry)]
                    if family == "unlearner":
                        specs += [c for f in self.suite.forget for c, _ in self.planner.unlearners_for(entry, f, name)]
                    out = {canonical_bytes(c.spec()) for c in specs}
            except (UserError, TypeError, ValueError, KeyError, AttributeError):  # not plannable here: not checked
                out = None
            self.memo[what] = out
        return self.memo[what]

    def differences(self, c: dict[str, Any]) -> list[str]:
        p, entry = c["params"], c["dataset"]
        if entry not in self.entries:
            return []
        found = []
        planned = self._planned((entry, "data"))
        if planned is not None and canonical_bytes(p["data"]) != planned:
            here = json.loads(planned)
            parts = [k for k in ("dataset", "architecture", "recipe", "budgets") if here.get(k) != p["data"].get(k)]
            found.append(f"its {' and '.join(parts) or 'data'} differ from what suite {self.suite.name!r} plans for "
                         f"{entry} ({_few(_leaf_diffs(here, p['data'], 'data'), 2)}): only the bundle's own plugins may "
                         "run with other parameters")
        specs = [(fam, p[field]) for field, fam in CELL_FAMILIES.items() if p.get(field)]
        specs += [("metric", m) for m in p.get("metrics") or []]
        for family, spec in specs:
            if (family, spec["name"]) in self.own:
                continue
            planned = self._planned((entry, family, spec["name"]))
            if planned is not None and canonical_bytes(spec) not in planned:
                found.append(f"{family} {spec['name']} (not the bundle's own) has version {spec['version']!r} and "
                             f"parameters {spec.get('params')} that suite {self.suite.name!r} does not plan here")
        return found


def _check_suite(b: dict[str, Any]) -> Check:
    suite = b["suite"]
    fp = digest(suite)
    if fp != b["suite_fingerprint"]:
        return Check("suite", False, f"the suite hashes to {fp[:12]}, the bundle claims {b['suite_fingerprint'][:12]}")
    entries = {d["name"]: d for d in suite["datasets"]}
    forget_sets = [f for f in suite.get("forget", [])]
    bad = []
    plan = _SuitePlan(b)
    for c in b["cells"]:
        p, where = c["params"], f"cell {c['key'][:12]}"
        if c["track"] not in suite.get("tracks", []):
            bad.append(f"{where}: track {c['track']} is not one of the suite's")
        data = p["data"]
        entry = entries.get(data["dataset"]["name"])
        if entry is None or c["dataset"] != entry["name"]:
            bad.append(f"{where}: dataset {data['dataset']['name']!r} is not in suite {suite['name']!r}")
            continue
        if data["architecture"]["name"] != entry["architecture"]:
            bad.append(f"{where}: architecture {data['architecture']['name']!r}, the suite uses {entry['architecture']!r}")
        if "recipe" in entry and data["recipe"] != _recipe_spec(entry["recipe"]):
            bad.append(f"{where}: training recipe differs from the suite's (a --set recipe.* run is another protocol)")
        else:
            bad += [f"{where}: {d}" for d in plan.differences(c)]
        if c["track"] == "unlearning" and p.get("forget") is not None:
            wanted = {k: v for k, v in p["forget"].items()}
            if not any(all(f.get(k) == v for k, v in wanted.items()) for f in forget_sets):
                bad.append(f"{where}: forget set {p['forget']} is not one of the suite's")
        if c["seed"] not in b["seeds"]:
            bad.append(f"{where}: seed {c['seed']} is not in the bundle's seeds {b['seeds']}")
    if bad:
        return Check("suite", False, _few(bad))
    note = "" if len(b["seeds"]) == suite["seeds"] else f" (suite default {suite['seeds']})"
    return Check("suite", True, f"suite {suite['name']!r} fingerprint {fp[:12]} matches; every cell uses its datasets, "
                                f"recipes and tracks, and what is not the bundle's own is as the suite plans it with the "
                                f"plugins installed here; seeds {b['seeds']}{note}")


def _check_plugin(b: dict[str, Any]) -> Check:
    dist = b["plugin"]
    provided = {(p["family"], p["name"]): p["version"] for p in b["plugins"]}
    bad, own = [], 0
    for c in b["cells"]:
        p = c["params"]
        specs = [(fam, p[field]) for field, fam in CELL_FAMILIES.items() if p.get(field)]
        specs += [(fam, p["data"][fam]) for fam in TABLE_FAMILIES]
        specs += [("metric", m) for m in p["metrics"]]
        mine = False
        for fam, spec in specs:
            version = provided.get((fam, spec["name"]))
            if version is None:
                continue
            mine = True
            if spec["version"] != version:
                bad.append(f"cell {c['key'][:12]}: {fam} {spec['name']} version {spec['version']!r}, "
                           f"{dist['distribution']} {dist['version']} provides version {version!r}")
        own += mine
    if bad:
        return Check("plugin-version", False, _few(bad))
    if not own:
        return Check("plugin-version", False, f"no cell uses a plugin of {dist['distribution']} "
                                              f"({', '.join(n for _, n in provided) or 'none listed'})")
    return Check("plugin-version", True, f"{dist['distribution']} {dist['version']}: {own} cells use its "
                                         f"{len(provided)} plugins at the versions it declares")


def _check_references(b: dict[str, Any]) -> Check:
    references = b["suite"].get("references", {})
    tables: dict[tuple, dict[str, list]] = defaultdict(lambda: {"own": [], "ref": []})
    for c in b["cells"]:
        tables[_table(c)]["ref" if _is_reference(c, references) else "own"].append(c)
    bad = []
    for table, rows in tables.items():
        if not rows["own"]:
            continue
        name = "/".join(str(t) for t in table if t)
        if not rows["ref"]:
            bad.append(f"table {name} has no reference row")
            continue
        meta = b["columns"].get(table[0], {})
        ref_names = {(c.get("unlearner") or c.get("poisoner") or "").split("(")[0] for c in rows["ref"]}
        needed = {meta[col]["reference"] for c in rows["own"] for col in c["metrics"]
                  if meta.get(col, {}).get("direction") == "match" and meta[col].get("reference")}
        missing = sorted(needed - ref_names)
        if missing:
            bad.append(f"table {name} lacks reference row(s) {', '.join(missing)} that its ≈ columns are read against")
    if bad:
        return Check("references", False, _few(bad))
    n = sum(len(r["ref"]) for r in tables.values())
    return Check("references", True, f"every table with entry cells has its reference rows ({n} reference cells)")


_CHECKED: dict[tuple[str, int], list[Check]] = {}


def check_bundle(b: dict[str, Any]) -> list[Check]:
    """The checks that need nothing but the bundle and the installed plugins (schema first: the others
    assume its shape). Remembered per exact content (and registry) within a process: a board build or a
    benchmark checks the same genuine bundle many times."""
    from dememo import plugins

    try:
        memo = (hashlib.sha256(canonical_bytes(b)).hexdigest(), id(plugins.get_registry()))
    except (TypeError, ValueError, RecursionError):  # not JSON data: the schema check says why
        memo = None
    if memo is not None and memo in _CHECKED:
        return list(_CHECKED[memo])
    out = _check_bundle(b)
    if memo is not None:
        if len(_CHECKED) >= 32:
            _CHECKED.pop(next(iter(_CHECKED)))
        _CHECKED[memo] = out
    return list(out)


def _check_bundle(b: dict[str, Any]) -> list[Check]:
    errors = schema_errors(b) or _shape_errors(b)
    if errors:
        return [Check("schema", False, f"does not match {SCHEMA_PATH.name}: " + "; ".join(errors))]
    out = [Check("schema", True, f"matches {SCHEMA_PATH.name} ({SCHEMA})")]
    claimed, actual = b["content_sha256"], content_hash(b)
    if claimed == actual:
        out.append(Check("content-hash", True, f"SHA-256 {actual[:12]}… over the canonical content matches"))
    else:
        out.append(Check("content-hash", False, f"SHA-256 over the canonical content is {actual[:12]}…, the bundle "
                                                f"claims {claimed[:12]}…: the bundle changed after it was written"))
    for check in (_check_keys, _check_labels, _check_metrics, _check_series, _check_suite, _check_plugin,
                  _check_references):
        out.append(check(b))
    return out

