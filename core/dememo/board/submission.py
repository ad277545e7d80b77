"""Leaderboard submissions: bundles, their verification, and the public board built from them.

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
under ``plugins``, other than the suite's reference attacks in every row (``universal``). Reference rows
(``none``, ``original``, ``retrain``) thereby belong to the distribution of the reference plugins
(first-party ``dememo``). A bundle's own rows are what it puts on the board; the
reference rows of other distributions it carries are *context*, never merged (a copy that differs beyond
the tolerance from the provider's is noted); any other row makes the bundle refused.

The board (``leaderboard build ENTRIES_DIR --out DIR``) merges accepted bundles. Its protocol is the pair
(bundle schema, results schema) and its suite is pinned by ``ENTRIES_DIR/board.json``
(``{"schema": "dememo.board/1", "suite_fingerprint": "<64 hex>"}``) when present, else the fingerprint
most readable bundles share (a tie goes to the smallest). A bundle is refused (one line naming the file and
the reason) when it is unreadable, fails any check of ``check_bundle`` (what ``verify`` checks without
re-running: labels consistent with the params, metric ranges, the suite's plan for everything not its own,
reference rows, ...), has another protocol or suite, or carries rows it does not own. The plugins installed
where the board is built are its trust anchor (``_anchor_problem``): a bundle claiming an installed plugin
under another distribution or version is refused alone, and in a conflict (below) with a bundle of an
installed distribution (name and version) the other bundle alone is held back. Beyond that ``plugins`` is
self-declared, so the board believes no bundle's word over another's: two bundles with the same content,
entry name or distribution, a row-owning plugin (family, name) both claim, a row both own, or a column both
define differently are *both* held back, each message naming both files; names compare folded (``fold``). Nothing
depends on the files' names or their order. With ``--rerun K`` every entry that the previous board in
``--out`` does not record as re-run with at least K cells (``entries[*].rerun``) has K own cells re-run,
and is held back when one fails.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import tempfile
import unicodedata
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import attrs

from dememo import results as results_mod
from dememo.errors import UserError
from dememo.files import write_files  # noqa: F401 (also its old home, for callers)
from dememo.hashing import digest
from dememo.numbers import finite
from dememo.results.record import CellRecord

SCHEMA = "dememo.submission/1"
BOARD_SCHEMA = "dememo.board/1"
SCHEMA_PATH = Path(__file__).parents[1] / "schemas" / "submission-1.schema.json"
MAX_BYTES = 32 * 1024 * 1024
#: families whose plugins make a cell "belong" to a distribution (datasets and architectures are the suite's)
CELL_FAMILIES = {"poisoner": "poisoner", "train_attack": "attack", "unlearner": "unlearner", "attack": "attack"}
ENV_KEYS = ("dememo", "torch", "cuda", "gpu", "device", "python", "platform", "numpy", "torchvision")
#: a plugin name on the board: ASCII kebab-case (the registry's rule, ``plugins.Registry.add``, in ASCII), so
#: that no look-alike (a ligature, another script's letter) of another plugin's name can stand beside it
PLUGIN_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: a distribution name (PEP 508)
DIST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
#: default tolerances of ``verify --rerun``: absolute for fraction columns, relative otherwise
ABS_TOL = 0.02
REL_TOL = 0.05


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


def owning_plugins(b: dict[str, Any]) -> set[tuple[str, str]]:
    """The bundle's claimed plugins that make rows its own: ``claimed_plugins`` less ``universal``."""
    return claimed_plugins(b) - universal(b["suite"])


def is_own(cell: dict[str, Any], claimed: set[tuple[str, str]]) -> bool:
    """Whether a cell's row belongs to the distribution that claims ``claimed``: one of the plugins that
    define the row is one of its plugins. Reference rows (``none``, ``original``, ``retrain``) are thereby
    the reference plugins' distribution's (first-party ``dememo``), and a row like ``my-poison → retrain``
    is ``my-poison``'s."""
    return bool(_row_plugins(cell) & claimed)


def own_cells(b: dict[str, Any]) -> list[dict[str, Any]]:
    """The bundle's own cells (``is_own``): the only ones it may put on the board and the only ones
    ``verify --rerun`` draws from."""
    claimed = owning_plugins(b)
    return [c for c in b["cells"] if is_own(c, claimed)]


def split_cells(b: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The bundle's cells as (own, context, foreign): own rows; other distributions' reference rows of the
    same tables, carried to read the own rows against; and rows of plugins it does not provide, which a
    bundle must not carry."""
    claimed, references = owning_plugins(b), b["suite"].get("references", {})
    own, context, foreign = [], [], []
    for c in b["cells"]:
        if is_own(c, claimed):
            own.append(c)
        elif _is_reference(c, references):
            context.append(c)
        else:
            foreign.append(c)
    return own, context, foreign


def _where(c: dict[str, Any]) -> str:
    """A row slot in words, for one-line messages."""
    return f"{c['method']} @{c['attack']} seed {c['seed']} ({'/'.join(str(t) for t in _table(c) if t)})"


def _bundle_cell(cell: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cell.items() if k != "timings"}  # wall-clock, and not part of the claim
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
    by_dist: dict[str, set[str]] = defaultdict(set)
    for c in cells:  # the board's ownership rule (``is_own``): metrics and ``universal`` attacks own no rows
        for fam_name in _row_plugins(c) - universal(results["suite"]):
            if fam_name in dist_of:
                by_dist[dist_of[fam_name]["distribution"]].add(c["key"])
    own_keys = by_dist.get(distribution, set())
    if not own_keys:
        raise UserError(printable(f"no cell in results uses a plugin from distribution {distribution!r} as its "
                                  "poisoner, attack or unlearner (a board entry is the rows of its own plugins; metrics "
                                  f"own no rows); installed distributions with cells: {', '.join(sorted(by_dist)) or 'none'}"))
    references = results["suite"].get("references", {})
    tables = {_table(c) for c in cells if c["key"] in own_keys}
    chosen = [c for c in cells if c["key"] in own_keys
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
    from dememo.plan.suite import Suite

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
    from dememo.plan.suite import Suite

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


class _SuitePlan:
    """What the bundle's suite plans with the plugins installed here, for every part of a cell that is not
    the bundle's own (``owning_plugins``): the data (dataset, architecture, recipe, budgets), reference and
    other distributions' plugins, attacks and metrics. Only the bundle's own plugins may run with other
    parameters (``--set``); a test split, architecture or metric changed with ``--set`` is another protocol.
    A part whose plugin is not installed here is not checked (``verify --rerun`` cannot re-plan it either)."""

    def __init__(self, b: dict[str, Any]):
        from dememo import plugins
        from dememo.params import structure
        from dememo.plan.planner import Planner
        from dememo.plan.suite import Suite

        self.own = owning_plugins(b)
        self.suite = structure(b["suite"], Suite, "$.suite")
        self.planner = Planner(plugins.get_registry(), self.suite)
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


# -- rerun -------------------------------------------------------------------------------------------


def tolerance_text(abs_tol: float, rel_tol: float) -> str:
    return f"|Δ| ≤ {abs_tol:g} for fraction columns, ≤ {rel_tol * 100:g}% relative otherwise; wall-clock columns skipped"


def _close(a: float, b: float, unit: str | None, abs_tol: float, rel_tol: float) -> bool:
    if unit == "fraction":
        return abs(a - b) <= abs_tol + 1e-12
    if unit == "series":  # a curve's unit is not recorded: either rule may hold
        return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b))) + 1e-12
    return abs(a - b) <= rel_tol * max(abs(a), abs(b)) + 1e-12


def compare(claimed: dict[str, Any], record: CellRecord, meta: dict[str, Any], abs_tol: float,
            rel_tol: float) -> list[str]:
    """Differences between a claimed cell and its recomputed record beyond the tolerance."""
    diffs = []
    if claimed["status"] != record.status:
        msg = record.error.message if record.error else ""
        diffs.append(f"status {claimed['status']} claimed, {record.status} recomputed {msg[:120]}".rstrip())
    got = results_mod.clean_number(record.metrics)
    for col in sorted(set(claimed["metrics"]) | set(got)):
        if meta.get(col, {}).get("wall_clock"):
            continue
        a, b = claimed["metrics"].get(col, "missing"), got.get(col, "missing")
        if a is None and b is None:
            continue
        if not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
            diffs.append(f"{col}: claimed {a!r}, recomputed {b!r}")
        elif not _close(a, b, meta.get(col, {}).get("unit"), abs_tol, rel_tol):
            diffs.append(f"{col}: claimed {a:.6g}, recomputed {b:.6g}")
    got_series = results_mod.clean_number(record.series or {})
    for col in sorted(set(claimed.get("series") or {}) | set(got_series)):
        a, b = (claimed.get("series") or {}).get(col), got_series.get(col)
        if a is None or b is None or a["x"] != b["x"]:
            diffs.append(f"series {col}: claimed and recomputed grids differ")
            continue
        for x, ya, yb in zip(a["x"], a["y"], b["y"]):
            if (ya is None) != (yb is None) or (ya is not None and not _close(ya, yb, "series", abs_tol, rel_tol)):
                diffs.append(f"series {col} at x={x:g}: claimed {ya!r}, recomputed {yb!r}")
                break
    return diffs


def has_numbers(cell: dict[str, Any]) -> bool:
    """Whether a cell carries a value the board shows: a metric or a point of a series that is not null."""
    return any(v is not None for v in cell["metrics"].values()) or any(
        y is not None for s in (cell.get("series") or {}).values() for y in s.get("y", []))


def pick_cells(b: dict[str, Any], k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` cells drawn with ``random.Random(seed)`` from the rows the bundle claims as its own
    (``own_cells``) that are finished or carry a number (``has_numbers``): never another distribution's
    reference rows it carries as context. A failed cell keeps the metrics it computed before its failing
    stage, and the board shows and ranks them; so it is drawn like a finished one (its re-run must fail too,
    with the same numbers): every number on the board can be drawn, and a bundle cannot shield forged
    numbers from re-runs by marking their cell failed. Empty when it has no such own cell."""
    own = sorted((c for c in own_cells(b) if c["status"] == "ok" or has_numbers(c)), key=lambda c: c["key"])
    return random.Random(seed).sample(own, min(k, len(own)))


def _recorded_sets(params: dict[str, Any], own: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    """``--set``-style overrides that give the bundle's own plugins (``own``: ``owning_plugins``) of a cell
    the parameters its bundle records (each spec's ``params``): a run made with ``--set`` on its own plugins
    re-plans to the same key. The data, reference plugins, attacks and metrics of others are planned as the
    suite plans them (``_SuitePlan``): a run that changed them does not re-plan."""
    specs = [(fam, params[f]) for f, fam in CELL_FAMILIES.items() if params.get(f)]
    specs += [("metric", m) for m in params.get("metrics") or []]
    out: dict[str, dict[str, Any]] = {}
    for family, spec in specs:
        if (family, spec["name"]) in own and spec.get("params"):
            out.setdefault(spec["name"], {}).update(spec["params"])
    return out


def _replan(b: dict[str, Any], claimed: dict[str, Any], registry: Any) -> tuple[Any, Any, str]:
    """The bundle's suite planned with the installed plugins, the planned cell whose key is the claimed one
    and, when there is none, what differs. Tried as the suite plans it, then with the parameters the claimed
    cell records (``_recorded_sets``), so that a bundle of a run with ``--set`` can be re-run."""
    from dememo.params import structure
    from dememo.plan.planner import Filters, Planner
    from dememo.plan.suite import Suite

    suite = structure(b["suite"], Suite, "$")
    p = claimed["params"]
    names = lambda *specs: tuple(s["name"] for s in specs if s)  # noqa: E731
    filters = Filters(poisoner=names(p["poisoner"]), unlearner=names(p["unlearner"]),
                      attack=names(p["attack"], p["train_attack"]), metric=names(*p["metrics"]))
    planned: list[Any] = []
    for sets in ({}, _recorded_sets(p, owning_plugins(b))):
        try:
            planner = Planner(registry, suite, sets)
            cells = planner.cells(filters, seeds=p["seed"] + 1)
        except UserError:
            if not sets:  # an unknown plugin name, a suite the installed dememo cannot read
                raise
            continue  # a recorded parameter the installed plugin lacks: _mismatch names it
        for cell in cells:
            if cell.key == claimed["key"]:
                return planner, cell, ""
        planned = planned or cells
    return None, None, _mismatch(b, claimed, registry, planned)


def _leaf_diffs(a: Any, b: Any, path: str) -> list[str]:
    """Where two JSON values differ, as ``path: here A, bundle B`` (A planned here, B the bundle's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b)) for d in _leaf_diffs(a.get(k, "(absent)"), b.get(k, "(absent)"),
                                                                     f"{path}.{k}" if path else str(k))]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _leaf_diffs(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: installed here {a!r}, bundle {b!r}"]


def _mismatch(b: dict[str, Any], claimed: dict[str, Any], registry: Any, planned: list[Any]) -> str:
    """Exactly what keeps the installed plugins from reproducing a claimed cell: a plugin not installed, its
    installed version against the bundle's, a recorded parameter it does not have, else the parameters in
    which the closest planned cell differs."""
    from dememo.params import field_names

    p, dist, claimed_by = claimed["params"], b["plugin"], claimed_plugins(b)
    specs = [(family, p[field]) for field, family in CELL_FAMILIES.items() if p.get(field)]
    specs += [("metric", m) for m in p["metrics"]]
    specs += [(k, p["data"][k]) for k in ("dataset", "architecture") if isinstance(p.get("data", {}).get(k), dict)]
    found = []
    for family, spec in specs:
        info = registry.classes.get(family, {}).get(spec["name"])
        theirs = f" ({dist['distribution']} {dist['version']})" if (family, spec["name"]) in claimed_by else ""
        if info is None:
            found.append(f"{family} {spec['name']}{theirs} is not installed here")
        elif info.cls.version != spec["version"]:
            found.append(f"{family} {spec['name']}: installed version {info.cls.version!r} (from {info.distribution} "
                         f"{info.dist_version}), the bundle's cell has version {spec['version']!r}{theirs}")
        else:
            unknown = sorted(set(spec.get("params") or {}) - set(field_names(info.cls)))
            if unknown:
                found.append(f"{family} {spec['name']}: the bundle records parameter {unknown[0]!r}, which the "
                             f"installed version {info.cls.version!r} (from {info.distribution} {info.dist_version}) "
                             "does not have")
    if not found:
        same = [c for c in planned if c.track == claimed["track"] and c.seed == claimed["seed"]] or planned
        diffs = [_leaf_diffs(json.loads(canonical_bytes(c.config())), p, "") for c in same]
        found = min(diffs, key=len) if diffs else ["no installed configuration plans a cell of its row"]
    return _few(found)


def _installed_note(b: dict[str, Any], registry: Any) -> str:
    dist = b["plugin"]
    for p in b["plugins"]:
        info = registry.classes.get(p["family"], {}).get(p["name"])
        if info is None:
            return f"; {p['family']} {p['name']} of {dist['distribution']} is not installed here"
        if info.distribution != dist["distribution"] or info.dist_version != dist["version"]:
            return (f"; installed here: {p['name']} from {info.distribution} {info.dist_version}, "
                    f"bundle: {dist['distribution']} {dist['version']}")
    return ""


def rerun_checks(b: dict[str, Any], k: int, abs_tol: float = ABS_TOL, rel_tol: float = REL_TOL,
                 seed: int | None = None, keys: list[str] | None = None, cache_dir: Path | None = None,
                 runner_factory: Callable[[Any, Path], Any] | None = None, device: Any = "cpu",
                 data_dir: Any = None) -> list[Check]:
    """Re-run ``k`` sampled cells (or the cells ``keys``) from the bundle's suite with the installed plugins
    and compare every metric within the tolerance. A cell whose key no installed configuration reproduces
    fails without running."""
    from dememo import plugins

    registry = plugins.get_registry()
    by_key = {c["key"]: c for c in b["cells"]}
    if keys:
        unknown = [key for key in keys if key not in by_key]
        if unknown:
            raise UserError(f"the bundle has no cell {unknown[0]}")
        picked, how = [by_key[key] for key in keys], "cells named with --cell"
    else:
        seed = secrets.randbits(32) if seed is None else seed
        picked, how = pick_cells(b, k, seed), f"drawn with --rerun-seed {seed}"
        if k and not picked:
            return [Check("rerun", False, f"no finished cell of {b['plugin']['distribution']}'s own plugins, nor one with "
                                          "numbers, to re-run (a bundle's own rows use a plugin it lists under `plugins`)")]
    rule = tolerance_text(abs_tol, rel_tol)
    if runner_factory is None:
        runner_factory = _default_runner(device, data_dir)
    tmp = None
    if cache_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dememo-verify-")
        cache_dir = Path(tmp.name)
    out = []
    try:
        for claimed in picked:
            name = f"rerun {claimed['key'][:12]}"
            what = f"{claimed['method']} @{claimed['attack']} ({claimed['dataset']}, seed {claimed['seed']})"
            try:
                planner, cell, why = _replan(b, claimed, registry)
            except UserError as exc:  # an unknown plugin name, a suite the installed dememo cannot read
                out.append(Check(name, False, f"cell {claimed['key']} cannot be re-planned here: {exc}"))
                continue
            if cell is None:
                dist = b["plugin"]
                out.append(Check(name, False, f"cell {claimed['key']} cannot be re-planned here: plugin "
                                              f"{dist['distribution']} version {dist['version']} is not installed or "
                                              f"its parameters differ{_installed_note(b, registry)}: {why}"))
                continue
            try:
                record = runner_factory(planner, cache_dir).run_cell(cell)
            except UserError as exc:  # e.g. a dataset whose files are not here
                out.append(Check(name, False, f"cell {claimed['key']} cannot be re-run here: {exc}"))
                continue
            diffs = compare(claimed, record, b["columns"].get(claimed["track"], {}), abs_tol, rel_tol)
            n = len([c for c in claimed["metrics"] if not b["columns"].get(claimed["track"], {}).get(c, {}).get("wall_clock")])
            if diffs:
                out.append(Check(name, False, f"{what}: recomputed values differ ({rule}): {_few(diffs)}"))
            else:
                out.append(Check(name, True, f"{what}: {n} metrics recomputed within tolerance ({rule}); {how}"))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


def _default_runner(device: Any, data_dir: Any) -> Callable[[Any, Path], Any]:
    def make(planner: Any, cache_dir: Path) -> Any:
        import torch

        from dememo.progress import Progress
        from dememo.run.cache import Store
        from dememo.run.runner import Runner

        return Runner(Store(cache_dir), torch.device(device), Progress(show=False), data_dir=data_dir, planner=planner)

    return make


def verify(b: dict[str, Any], rerun: int = 0, tolerance: float = ABS_TOL, rel_tolerance: float = REL_TOL,
           runner_factory: Callable[[Any, Path], Any] | None = None, cache_dir: Path | None = None,
           seed: int | None = None, keys: list[str] | None = None, device: Any = "cpu",
           data_dir: Any = None) -> list[Check]:
    """Every check on a bundle: schema, content hash, cell keys, metric values and series, suite,
    plugin versions, reference rows; with ``rerun=K`` (or ``keys``) also re-runs of K sampled cells.
    Re-runs happen only when the bundle passes its schema."""
    checks = check_bundle(b)
    if (rerun or keys) and checks[0].ok:
        checks += rerun_checks(b, rerun, tolerance, rel_tolerance, seed=seed, keys=keys, cache_dir=cache_dir,
                               runner_factory=runner_factory, device=device, data_dir=data_dir)
    return checks


# -- board -------------------------------------------------------------------------------------------


@attrs.define
class Board:
    """What ``build_board`` did: the accepted entries, the refused (or held back) files with the reason,
    notes, the re-run verdicts (file, check) of ``--rerun``, files written."""

    accepted: list[dict[str, Any]] = attrs.field(factory=list)
    refused: list[tuple[str, str]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    written: list[Path] = attrs.field(factory=list)
    reruns: list[tuple[str, Check]] = attrs.field(factory=list)


@attrs.define
class _Candidate:
    """A bundle that passed the per-file checks, its cells split by ownership (``split_cells``)."""

    file: str
    bundle: dict[str, Any]
    own: list[dict[str, Any]]
    context: list[dict[str, Any]]
    #: its ``leaderboard build --rerun`` record (``_rerun_new``), None when it was never re-run
    rerun: dict[str, Any] | None = None

    @property
    def slots(self) -> dict[tuple, dict[str, Any]]:
        return {_slot(c): c for c in self.own}


def _pinned(entries_dir: Path) -> str | None:
    """The suite fingerprint pinned by ``ENTRIES_DIR/board.json`` (None when there is none)."""
    path = entries_dir / "board.json"
    if not path.exists():
        return None
    data = load_bundle(path)
    fp = data.get("suite_fingerprint")
    if data.get("schema") != BOARD_SCHEMA or not (isinstance(fp, str) and len(fp) == 64
                                                  and all(ch in "0123456789abcdef" for ch in fp)):
        raise UserError(f"{path} must be {{\"schema\": \"{BOARD_SCHEMA}\", \"suite_fingerprint\": \"<64 hex>\"}}")
    return fp


def _refusal(b: dict[str, Any], fingerprint: str | None, checks: bool = True) -> str | None:
    """Why the board refuses a bundle on its own: another protocol, any failing check of ``check_bundle``
    (``verify`` without re-runs: schema, content hash, keys, labels, metrics, series, suite, plugin
    versions, reference rows; the board accepts only what ``verify`` passes) or, once the board's suite is
    known, another suite."""
    protocol = (b.get("schema"), b.get("results_schema"))
    if protocol != (SCHEMA, results_mod.SCHEMA):
        return (f"protocol {protocol[0]!r} / {protocol[1]!r} differs from the board's "
                f"{SCHEMA!r} / {results_mod.SCHEMA!r}")
    failed = [c for c in check_bundle(b) if not c.ok] if checks else []
    if failed:
        return f"{failed[0].name} check failed: {failed[0].detail}"
    if fingerprint is not None and b["suite_fingerprint"] != fingerprint:
        return (f"suite {b['suite']['name']!r} fingerprint {b['suite_fingerprint'][:12]} differs from the board's "
                f"{fingerprint[:12]}: the entry was run under another suite")
    return None


def _own_problem(b: dict[str, Any], own: list[dict[str, Any]], foreign: list[dict[str, Any]]) -> str | None:
    """Why a bundle's rows cannot be its entry: rows of plugins it does not provide, no row of its own, or
    two own cells on one row (only one of them could be shown)."""
    dist = b["plugin"]["distribution"]
    if foreign:
        return (f"carries {len(foreign)} rows of plugins {dist} does not list under `plugins`, e.g. {_where(foreign[0])}: "
                "a bundle may carry only rows of its own distribution's plugins and the reference rows of their "
                "tables; re-make it with `dememo-bench submit --plugin DIST`")
    if not own:
        return (f"has no row of a plugin it lists under `plugins`: nothing of {dist} to put on the board; bundle a run "
                f"of its plugins with `dememo-bench submit --plugin {dist}`")
    seen: dict[tuple, dict[str, Any]] = {}
    for c in own:
        if _slot(c) in seen:
            return (f"two of its cells are the row {_where(c)} (keys {seen[_slot(c)]['key'][:12]}, {c['key'][:12]}): "
                    "submit one configuration per row")
        seen[_slot(c)] = c
    return None


def _anchor_problem(b: dict[str, Any], registry: Any) -> str | None:
    """The board's trust anchor: the plugins installed where the board is built (``plugins.get_registry``),
    which the maintainer chose. A bundle that claims a plugin (family, name) installed here must name the
    distribution and version it is installed from; else it is refused alone, whatever other bundle it would
    conflict with (a claim on ``unlearner retrain`` or ``attack none`` under another distribution, or
    distribution ``dememo`` at another version, cannot take the installed entry off the board). Conflicts
    between plugins not installed here stay conflicts: both held back."""
    dist = b["plugin"]
    for family, name in sorted(claimed_plugins(b)):
        info = registry.classes.get(family, {}).get(name)
        if info is None:
            continue
        if dist_key(info.distribution) != dist_key(dist["distribution"]) or info.dist_version != dist["version"]:
            return (f"claims {family} {name!r} as {dist['distribution']} {dist['version']}'s, but the board's installed "
                    f"{family} {name!r} is {info.distribution} {info.dist_version}'s (the plugins installed where the "
                    "board is built settle who provides a plugin): re-make the bundle with only your own plugins, "
                    "under the installed version")
    return None


def _columns_differ(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Columns (track/column) both bundles declare with different metadata: the direction, unit or
    reference of a column decides how every entry's numbers read, so neither bundle may set it alone."""
    return [f"{t}/{col}" for t in sorted(set(a["columns"]) & set(b["columns"]))
            for col in sorted(set(a["columns"][t]) & set(b["columns"][t])) if a["columns"][t][col] != b["columns"][t][col]]


def _conflict(x: _Candidate, y: _Candidate) -> str | None:
    """What two bundles both claim (None when nothing): the same content, entry name, distribution, a plugin
    (family, name) that owns rows (``owning_plugins``), an own row, or a column's definition; names compare
    folded (``fold``, ``dist_key``), so a look-alike is the same name. A bundle's claims are self-declared,
    so the board believes neither over the other (what the installed plugins settle is refused alone
    before, ``_anchor_problem``)."""
    a, b = x.bundle, y.bundle
    found = []
    if a["content_sha256"] == b["content_sha256"]:
        found.append("same content")
    if fold(a["name"]) == fold(b["name"]):
        found.append(f"both are named {a['name']!r}")
    if dist_key(a["plugin"]["distribution"]) == dist_key(b["plugin"]["distribution"]):
        found.append(f"both are distribution {a['plugin']['distribution']!r}")
    folded = {(f, fold(n)): (f, n) for f, n in owning_plugins(a)}
    plugins = sorted(folded[(f, fold(n))] for f, n in owning_plugins(b) if (f, fold(n)) in folded)
    if plugins:
        found.append(f"both claim {len(plugins)} plugin(s), e.g. {plugins[0][0]} {plugins[0][1]!r}")
    rows = sorted(set(x.slots) & set(y.slots), key=str)
    if rows:
        found.append(f"both carry {len(rows)} row(s) as their own, e.g. {_where(x.slots[rows[0]])}")
    columns = _columns_differ(a, b)
    if columns:
        found.append(f"they define column {columns[0]} differently")
    return "; ".join(found) or None


def installed_distributions(registry: Any) -> set[tuple[str, str]]:
    """(``dist_key`` of the name, version) of every distribution with a plugin installed here."""
    return {(dist_key(i.distribution), i.dist_version) for fam in registry.classes.values() for i in fam.values()}


def _conflicts(candidates: list[_Candidate], installed: set[tuple[str, str]] = frozenset()) -> dict[str, list[str]]:
    """Per file, the conflicts it is in (each message names both files). When exactly one of the two is of a
    distribution installed where the board is built (``installed``: name and version), the installed one is
    the board's trust anchor and only the other is held back (a bundle cannot take the installed entry off
    the board by taking its name or redefining its columns); otherwise both are held back, so which file name
    sorts first decides nothing."""
    out: dict[str, list[str]] = defaultdict(list)
    anchored = lambda e: (dist_key(e.bundle["plugin"]["distribution"]), e.bundle["plugin"]["version"]) in installed  # noqa: E731
    for i, x in enumerate(candidates):
        for y in candidates[i + 1:]:
            why = _conflict(x, y)
            if why and anchored(x) != anchored(y):
                kept, other = (x, y) if anchored(x) else (y, x)
                dist = kept.bundle["plugin"]
                out[other.file].append(f"held back: {other.file} conflicts with {kept.file} ({why}), whose distribution "
                                       f"{dist['distribution']} {dist['version']} is installed where the board is built "
                                       "and is kept")
            elif why:
                first, second = sorted((x.file, y.file))
                msg = (f"held back: {first} and {second} conflict ({why}); neither is trusted over the other, "
                       "so both stay off the board until one is withdrawn or corrected")
                out[x.file].append(msg)
                out[y.file].append(msg)
    return out


def _board_fingerprint(pinned: str | None, loaded: list[tuple[str, dict[str, Any]]]) -> str | None:
    """The board's suite: pinned by ``board.json``, else the fingerprint most bundles share (a tie goes to
    the smallest fingerprint), so that no file name's place in the order decides it."""
    if pinned is not None or not loaded:
        return pinned
    counts: dict[str, int] = defaultdict(int)
    for _, b in loaded:
        counts[b["suite_fingerprint"]] += 1
    return min(counts, key=lambda fp: (-counts[fp], fp))


def _copy_diffs(board_cell: dict[str, Any], copy: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """How a bundle's copy of a reference cell differs from the board's (the owner's) beyond the
    ``verify --rerun`` tolerance."""
    if board_cell["key"] != copy["key"]:
        return [f"another configuration (key {copy['key'][:12]}, the board's {board_cell['key'][:12]})"]
    return [d.replace(" claimed", " on the board").replace("claimed ", "on the board ").replace("recomputed", "in this bundle")
            for d in compare(board_cell, CellRecord.from_json(copy), meta, ABS_TOL, REL_TOL)]


def _context_notes(entry: _Candidate, cells: dict[tuple, dict[str, Any]], owners: dict[tuple, str]) -> list[str]:
    """Notes on a bundle's copies of reference rows it does not own: never merged (the owner's copy is
    shown), but a copy that disagrees with the owner's, or that no accepted owner provides, is said."""
    differ, missing = [], []
    for c in entry.context:
        board_cell = cells.get(_slot(c))
        if board_cell is None:
            missing.append(c)
            continue
        diffs = _copy_diffs(board_cell, c, entry.bundle["columns"].get(c["track"], {}))
        if diffs:
            differ.append(f"{_where(c)} ({owners[_slot(c)]}'s copy on the board): {_few(diffs, 2)}")
    notes = []
    if differ:
        notes.append(f"{entry.file}: {len(differ)} of its copies of reference rows differ beyond tolerance "
                     f"({tolerance_text(ABS_TOL, REL_TOL)}) from the copies of the entry that provides the reference "
                     f"plugins, e.g. {differ[0]}; the board shows the provider's copies: read this entry's rows with "
                     "care, and re-run it under the board's dememo version")
    if missing:
        notes.append(f"{entry.file}: {len(missing)} of its reference rows have no copy from an accepted entry that "
                     f"provides the reference plugins, e.g. {_where(missing[0])}; they are left off the board")
    return notes


def previous_entries(out_dir: Path) -> dict[str, dict[str, Any] | None] | None:
    """The ``content_sha256`` of every entry on the board already in ``out_dir`` (its ``results.json``) → its
    re-run record there (``entries[*].rerun``: ``{"k", "cells", "seed", "verdict"}``, None when it was not
    re-run), or None when there is no readable board: ``leaderboard build --rerun K`` skips only entries
    re-run with at least K before."""
    path = out_dir / "results.json"
    if not path.exists():
        return None
    try:
        data = load_bundle(path)  # read like a bundle: JSON only, size-limited
    except UserError:
        return None
    entries = data.get("entries")
    if not isinstance(entries, list):
        return None
    out: dict[str, dict[str, Any] | None] = {}
    for e in entries:
        if isinstance(e, dict) and isinstance(e.get("content_sha256"), str):
            record = e.get("rerun")
            ok = isinstance(record, dict) and isinstance(record.get("k"), int) and record.get("verdict") == "pass"
            out[e["content_sha256"]] = record if ok else None
    return out


def _rerun_new(board: Board, accepted: list[_Candidate], out_dir: Path, rerun: int, seed: int | None,
               runner: dict[str, Any]) -> list[_Candidate]:
    """``--rerun K``: K sampled own cells of every entry re-run with the installed plugins (``rerun_checks``),
    except an entry the previous board in ``out_dir`` records as re-run (same content) with at least K cells
    drawn and passed (``previous_entries``; a board built without ``--rerun`` records none, so its entries
    are re-run). An entry whose re-run fails is held back; a passed one has its record, ``{"k": K, "cells":
    re-run, "seed": S, "verdict": "pass"}``, on the board (``results.json`` ``entries[*].rerun``)."""
    if previous_entries(out_dir) is None:
        board.notes.append(f"no previous board in {out_dir} (results.json): every entry counts as new and is re-run")
    seed = secrets.randbits(32) if seed is None else seed
    kept = []
    for e in accepted:
        before = e.rerun
        if before is not None and before["k"] >= rerun:
            board.notes.append(f"{e.file}: already re-run on the board in {out_dir} (same content, --rerun "
                               f"{before['k']}, seed {before.get('seed')}): not re-run")
            kept.append(e)
            continue
        checks = rerun_checks(e.bundle, rerun, seed=seed, **runner)
        board.reruns += [(e.file, c) for c in checks]
        failed = [c for c in checks if not c.ok]
        if failed:
            from dememo.params import printable

            board.refused.append((e.file, printable(f"held back: {len(failed)} of {len(checks)} re-run cells failed "
                                                    f"(--rerun-seed {seed}): {failed[0].detail}")))
        else:
            e.rerun = {"k": rerun, "cells": len(checks), "seed": seed, "verdict": "pass"}
            kept.append(e)
    return kept


def build_board(entries_dir: Path | str, out_dir: Path | str, rerun: int = 0, rerun_seed: int | None = None,
                runner_factory: Callable[[Any, Path], Any] | None = None, device: Any = "cpu",
                data_dir: Any = None) -> Board:
    """Merge every acceptable ``*.json`` bundle in ``entries_dir`` into ``out_dir``, written as a run writes
    its directory: ``results.json`` (the merged ``dememo.results/1`` dict, with ``entries`` and ``board``),
    ``leaderboard.md`` (an entries table, then the tables), ``leaderboard.csv``, ``leaderboard.json`` (the
    tables as data) and ``leaderboard.html`` (when ``dememo.board.html`` is available). Nothing a
    bundle holds is executed; with ``rerun=K`` sampled own cells of new entries are re-run with the
    installed plugins.

    Each bundle puts only its own rows (``is_own``) on the board; its copies of other distributions'
    reference rows are context, never merged. A bundle that claims a plugin installed here under another
    distribution or version is refused alone (``_anchor_problem``); two bundles that claim the same content,
    name, distribution, plugin, row or column definition are both held back, unless exactly one is of an
    installed distribution, which is kept (``_conflicts``). The result does not depend on the files' names."""
    from dememo.board import leaderboard
    from dememo.params import printable

    entries_dir, out_dir = Path(entries_dir), Path(out_dir)
    if not entries_dir.is_dir():
        raise UserError(f"no entries directory at {entries_dir}")
    if rerun < 0:
        raise UserError("--rerun must be at least 0")
    board = Board()
    loaded = []
    for path in sorted(entries_dir.glob("*.json")):
        if path.name == "board.json":
            continue
        fname = printable(path.name)  # shown in one-line messages
        try:
            b = load_bundle(path)
        except UserError as exc:
            board.refused.append((fname, printable(str(exc))))
            continue
        reason = _refusal(b, None)
        if reason is not None:
            board.refused.append((fname, printable(reason)))
            continue
        loaded.append((fname, b))
    fingerprint = _board_fingerprint(_pinned(entries_dir), loaded)
    candidates = []
    for fname, b in loaded:
        own, context, foreign = split_cells(b)
        reason = _refusal(b, fingerprint, checks=False) or _own_problem(b, own, foreign)
        if reason is not None:
            board.refused.append((fname, printable(reason)))
            continue
        candidates.append(_Candidate(fname, b, own, context))
    from dememo import plugins

    registry = plugins.get_registry()
    anchored = []
    for e in candidates:
        reason = _anchor_problem(e.bundle, registry)
        if reason is not None:
            board.refused.append((e.file, printable(reason)))
        else:
            anchored.append(e)
    candidates = anchored
    conflicts = _conflicts(candidates, installed_distributions(registry))
    for e in candidates:
        if conflicts.get(e.file):
            board.refused.append((e.file, printable(" | ".join(conflicts[e.file]))))
    accepted = sorted((e for e in candidates if not conflicts.get(e.file)),
                      key=lambda e: (e.bundle["name"], e.bundle["content_sha256"]))
    previous = previous_entries(out_dir) or {}
    for e in accepted:  # a re-run record stays with the same content, whether or not this build re-runs
        e.rerun = previous.get(e.bundle["content_sha256"])
    if rerun and accepted:
        accepted = _rerun_new(board, accepted, out_dir, rerun, rerun_seed,
                              {"runner_factory": runner_factory, "device": device, "data_dir": data_dir})
    if not accepted:
        detail = "; ".join(f"{f}: {r}" for f, r in board.refused) or "no *.json bundle in it"
        raise UserError(printable(f"no acceptable bundle in {entries_dir} ({detail})"))
    suite = accepted[0].bundle["suite"]  # every accepted bundle has the board's fingerprint: the same suite
    cells: dict[tuple, dict[str, Any]] = {}  # slot -> cell
    owners: dict[tuple, str] = {}
    columns: dict[str, dict[str, Any]] = defaultdict(dict)
    plugin_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for e in accepted:
        b = e.bundle
        for c in e.own:  # no two accepted bundles own one row (``_conflict``)
            cells[_slot(c)] = {**c, "entry": b["name"]}
            owners[_slot(c)] = e.file
        for track, meta in b["columns"].items():
            for col, m in meta.items():
                columns[track].setdefault(col, m)  # equal wherever two bundles declare it (``_conflict``)
        for p in b["plugins"]:
            plugin_rows[(p["family"], p["name"])] = {**p, "distribution": b["plugin"]["distribution"],
                                                    "distribution_version": b["plugin"]["version"]}
        references = b["suite"].get("references", {})
        board.accepted.append({
            "name": b["name"], "file": e.file, "distribution": b["plugin"]["distribution"],
            "version": b["plugin"]["version"], "cells": sum(1 for c in e.own if not _is_reference(c, references)),
            "seeds": b["seeds"], "environment": b["environment"], "content_sha256": b["content_sha256"],
            **({"rerun": e.rerun} if e.rerun else {}),
        })
    for e in accepted:
        board.notes += [printable(n) for n in _context_notes(e, cells, owners)]
    merged = {
        "schema": results_mod.SCHEMA,
        "suite": suite,
        "environment": {},
        "plugins": [plugin_rows[k] for k in sorted(plugin_rows)],
        "plugin_load_failures": [],
        "columns": {t: columns[t] for t in sorted(columns)},
        "cells": sorted(cells.values(), key=lambda c: c["key"]),
        "entries": board.accepted,
        "board": {"schema": BOARD_SCHEMA, "suite_fingerprint": fingerprint},
    }
    # every file is rendered before any is written, and each is written atomically: a failure leaves no
    # partial board
    files = {
        "leaderboard.md": f"# dememo leaderboard — suite {leaderboard.md_code(suite['name'])}\n\n"
                          + entries_table(board.accepted) + "\n\n" + leaderboard.render(merged, "github") + "\n",
        "results.json": json.dumps(merged, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        "leaderboard.csv": leaderboard.to_csv(merged),
    }
    if hasattr(leaderboard, "to_json"):  # the printed tables as data, as a run writes them
        files["leaderboard.json"] = json.dumps(leaderboard.to_json(merged), indent=1, ensure_ascii=False) + "\n"
    try:
        from dememo.board.html import render_page  # type: ignore[import-not-found]
    except ImportError:
        board.notes.append("leaderboard.html skipped: dememo.board.html is not available")
    else:
        files["leaderboard.html"] = render_page(merged)
    board.written += write_files(out_dir, files)
    return board


def entries_table(entries: list[dict[str, Any]]) -> str:
    """The Markdown table of the board's entries; every bundle-supplied string is escaped
    (``leaderboard.md_escape``), so a name cannot add columns, markup, images or links."""
    from tabulate import tabulate

    from dememo.board.leaderboard import md_escape

    rows = []
    for e in entries:
        env = e["environment"]
        rows.append([md_escape(e["name"]), md_escape(e["distribution"]), md_escape(e["version"]), e["cells"],
                     len(e["seeds"]), md_escape(env.get("dememo")), md_escape(env.get("torch")),
                     md_escape(env.get("gpu") or env.get("device") or "cpu"), f"`{e['content_sha256'][:12]}`"])
    header = ["entry", "distribution", "version", "cells", "seeds", "dememo", "torch", "device", "sha256"]
    return "## Entries\n\n" + tabulate(rows, header, tablefmt="github")
