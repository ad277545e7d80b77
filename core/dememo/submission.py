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
determined tamperer can recompute it, which is what ``verify --rerun K`` is for: K sampled cells are
re-planned from the bundle's suite with the locally installed plugins (the recomputed cell key must equal
the claimed one) and re-run from an empty cache, and every metric is compared within a stated tolerance.

The board (``leaderboard build ENTRIES_DIR --out DIR``) merges accepted bundles. Its protocol is the pair
(bundle schema, results schema) and its suite is pinned by ``ENTRIES_DIR/board.json``
(``{"schema": "dememo.board/1", "suite_fingerprint": "<64 hex>"}``) when present, else by the first
accepted bundle in file-name order. A bundle is refused (one line naming the file and the reason) when it
is unreadable, fails its schema, content hash or cell keys, has another protocol or suite, repeats an
accepted entry's name or content, or claims a non-reference row slot (table, method, attack, seed) that
an accepted entry already holds. Reference cells are shared: the first accepted copy of a slot is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import secrets
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import attrs

from . import results as results_mod
from .errors import UserError
from .hashing import digest

SCHEMA = "dememo.submission/1"
BOARD_SCHEMA = "dememo.board/1"
SCHEMA_PATH = Path(__file__).parent / "schemas" / "submission-1.schema.json"
MAX_BYTES = 32 * 1024 * 1024
#: families whose plugins make a cell "belong" to a distribution (datasets and architectures are the suite's)
CELL_FAMILIES = {"poisoner": "poisoner", "train_attack": "attack", "unlearner": "unlearner", "attack": "attack"}
ENV_KEYS = ("dememo", "torch", "cuda", "gpu", "device", "python", "platform", "numpy", "torchvision")
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
        from .params import printable

        return printable(f"{'PASS' if self.ok else 'FAIL'} {self.name}: {self.detail}")


# -- canonical content -------------------------------------------------------------------------------


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, non-ASCII kept, UTF-8; NaN/Infinity are refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def content_hash(bundle: dict[str, Any]) -> str:
    """SHA-256 over the canonical JSON of the bundle without its ``content_sha256`` field."""
    return hashlib.sha256(canonical_bytes({k: v for k, v in bundle.items() if k != "content_sha256"})).hexdigest()


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


def _bundle_cell(cell: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in cell.items() if k != "timings"}  # wall-clock, and not part of the claim
    if isinstance(out.get("error"), dict):
        out["error"] = {k: out["error"][k] for k in ("stage", "message") if k in out["error"]}
    return out


# -- submit ------------------------------------------------------------------------------------------


def bundle(results: dict[str, Any], name: str, distribution: str) -> dict[str, Any]:
    """The submission bundle of ``distribution``'s cells in ``results`` (a ``dememo.results/1`` dict); a
    UserError when the results would make a bundle that fails its schema."""
    from .params import printable

    if results.get("schema") != results_mod.SCHEMA:
        raise UserError(f"not a {results_mod.SCHEMA} results dict (schema: {results.get('schema')!r})")
    if not name or not name.strip() or len(name) > 100 or not name.isprintable():
        raise UserError("--name must be a non-empty display name of at most 100 characters, without control characters")
    dist_of = {(p["family"], p["name"]): p for p in results.get("plugins", [])}
    cells = [c for c in results.get("cells", []) if c.get("params")]
    by_dist: dict[str, set[str]] = defaultdict(set)
    for c in cells:
        for fam_name in _spec_names(c["params"]):
            if fam_name in dist_of:
                by_dist[dist_of[fam_name]["distribution"]].add(c["key"])
    own_keys = by_dist.get(distribution, set())
    if not own_keys:
        raise UserError(printable(f"no cell in results uses a plugin from distribution {distribution!r}; installed "
                                  f"distributions with cells: {', '.join(sorted(by_dist)) or 'none'}"))
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
    from .cache import atomic_write_bytes

    data = (json.dumps(b, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")
    if len(data) > MAX_BYTES:
        raise UserError(f"the bundle is {len(data)} bytes, over the {MAX_BYTES // 2**20} MiB limit; submit fewer cells "
                        "(narrow the run) or ask the maintainers")
    try:
        atomic_write_bytes(Path(path), data)
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
    if results_mod._depth(data) > results_mod.MAX_DEPTH:
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
    from .params import structure
    from .suite import Suite

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
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


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


def _recipe_spec(recipe: dict[str, Any]) -> dict[str, Any]:
    """A suite file's recipe as a cell's key holds it (``Recipe.spec``: speed options only when set)."""
    from .training import Recipe

    try:
        return Recipe(**recipe).spec()
    except (TypeError, ValueError):
        return recipe  # an unreadable recipe then differs, and the check names it


def _check_suite(b: dict[str, Any]) -> Check:
    suite = b["suite"]
    fp = digest(suite)
    if fp != b["suite_fingerprint"]:
        return Check("suite", False, f"the suite hashes to {fp[:12]}, the bundle claims {b['suite_fingerprint'][:12]}")
    entries = {d["name"]: d for d in suite["datasets"]}
    forget_sets = [f for f in suite.get("forget", [])]
    bad = []
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
                                f"recipes and tracks; seeds {b['seeds']}{note}")


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


def check_bundle(b: dict[str, Any]) -> list[Check]:
    """The checks that need nothing but the bundle (schema first: the others assume its shape)."""
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
    for check in (_check_keys, _check_metrics, _check_series, _check_suite, _check_plugin, _check_references):
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


def compare(claimed: dict[str, Any], record: dict[str, Any], meta: dict[str, Any], abs_tol: float,
            rel_tol: float) -> list[str]:
    """Differences between a claimed cell and its recomputed record beyond the tolerance."""
    diffs = []
    if claimed["status"] != record["status"]:
        msg = (record.get("error") or {}).get("message", "")
        diffs.append(f"status {claimed['status']} claimed, {record['status']} recomputed {msg[:120]}".rstrip())
    got = results_mod.clean_number(record.get("metrics", {}))
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
    got_series = results_mod.clean_number(record.get("series", {}))
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


def pick_cells(b: dict[str, Any], k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` finished cells drawn with ``random.Random(seed)``: the entry's own cells, references only when
    it has no other."""
    references = b["suite"].get("references", {})
    done = sorted((c for c in b["cells"] if c["status"] == "ok"), key=lambda c: c["key"])
    own = [c for c in done if not _is_reference(c, references)] or done
    return random.Random(seed).sample(own, min(k, len(own)))


def _replan(b: dict[str, Any], claimed: dict[str, Any], registry: Any) -> tuple[Any, Any]:
    """The bundle's suite planned with the installed plugins, and the planned cell whose key is the claimed
    one (None when no installed configuration reproduces it)."""
    from .params import structure
    from .planner import Filters, Planner
    from .suite import Suite

    suite = structure(b["suite"], Suite, "$")
    planner = Planner(registry, suite)
    p = claimed["params"]
    names = lambda *specs: tuple(s["name"] for s in specs if s)  # noqa: E731
    filters = Filters(poisoner=names(p["poisoner"]), unlearner=names(p["unlearner"]),
                      attack=names(p["attack"], p["train_attack"]), metric=names(*p["metrics"]))
    for cell in planner.cells(filters, seeds=p["seed"] + 1):
        if cell.key == claimed["key"]:
            return planner, cell
    return planner, None


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
    from . import plugins

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
                planner, cell = _replan(b, claimed, registry)
            except UserError as exc:  # an unknown plugin name, a suite the installed dememo cannot read
                out.append(Check(name, False, f"cell {claimed['key']} cannot be re-planned here: {exc}"))
                continue
            if cell is None:
                dist = b["plugin"]
                out.append(Check(name, False, f"cell {claimed['key']} cannot be re-planned here: plugin "
                                              f"{dist['distribution']} version {dist['version']} is not installed or "
                                              f"its parameters differ{_installed_note(b, registry)}"))
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

        from .cache import Store
        from .progress import Progress
        from .runner import Runner

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
    """What ``build_board`` did: the accepted entries, the refused files with the reason, files written."""

    accepted: list[dict[str, Any]] = attrs.field(factory=list)
    refused: list[tuple[str, str]] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    written: list[Path] = attrs.field(factory=list)


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


def _refusal(b: dict[str, Any], fingerprint: str | None) -> str | None:
    protocol = (b.get("schema"), b.get("results_schema"))
    if protocol != (SCHEMA, results_mod.SCHEMA):
        return (f"protocol {protocol[0]!r} / {protocol[1]!r} differs from the board's "
                f"{SCHEMA!r} / {results_mod.SCHEMA!r}")
    failed = [c for c in check_bundle(b)[:3] if not c.ok]  # schema, content hash, keys: nothing is re-run
    if failed:
        return f"{failed[0].name} check failed: {failed[0].detail}"
    if fingerprint is not None and b["suite_fingerprint"] != fingerprint:
        return (f"suite {b['suite']['name']!r} fingerprint {b['suite_fingerprint'][:12]} differs from the board's "
                f"{fingerprint[:12]}: the entry was run under another suite")
    return None


def build_board(entries_dir: Path | str, out_dir: Path | str) -> Board:
    """Merge every acceptable ``*.json`` bundle in ``entries_dir`` into ``out_dir``, written as a run writes
    its directory: ``results.json`` (the merged ``dememo.results/1`` dict, with ``entries`` and ``board``),
    ``leaderboard.md`` (an entries table, then the tables), ``leaderboard.csv``, ``leaderboard.json`` (the
    tables as data) and ``leaderboard.html`` (when ``dememo.leaderboard_html`` is available). Nothing a
    bundle holds is executed."""
    from . import leaderboard
    from .params import printable

    entries_dir, out_dir = Path(entries_dir), Path(out_dir)
    if not entries_dir.is_dir():
        raise UserError(f"no entries directory at {entries_dir}")
    board = Board()
    fingerprint = _pinned(entries_dir)
    suite: dict[str, Any] | None = None
    cells: dict[tuple, dict[str, Any]] = {}  # slot -> cell
    owner: dict[tuple, str] = {}
    columns: dict[str, dict[str, Any]] = defaultdict(dict)
    plugin_rows: dict[tuple[str, str], dict[str, Any]] = {}
    names: dict[str, str] = {}
    hashes: dict[str, str] = {}
    for path in sorted(entries_dir.glob("*.json")):
        if path.name == "board.json":
            continue
        fname = printable(path.name)  # shown in one-line messages
        try:
            b = load_bundle(path)
        except UserError as exc:
            board.refused.append((fname, printable(str(exc))))
            continue
        reason = _refusal(b, fingerprint)
        if reason is None and b["name"] in names:
            reason = f"entry name {b['name']!r} is already used by {names[b['name']]}"
        if reason is None and b["content_sha256"] in hashes:
            reason = f"same content as {hashes[b['content_sha256']]}"
        references = b["suite"].get("references", {}) if reason is None else {}
        if reason is None:
            taken = [c for c in b["cells"] if not _is_reference(c, references) and _slot(c) in cells]
            if taken:
                c = taken[0]
                reason = (f"{len(taken)} of its rows are already on the board, e.g. {c['method']} @{c['attack']} "
                          f"seed {c['seed']} ({'/'.join(str(t) for t in _table(c) if t)}) from {owner[_slot(c)]}")
        if reason is not None:
            board.refused.append((fname, printable(reason)))
            continue
        if fingerprint is None:
            fingerprint = b["suite_fingerprint"]
        if suite is None:
            suite = b["suite"]
        names[b["name"]] = hashes[b["content_sha256"]] = fname
        shared = 0
        for c in b["cells"]:
            slot = _slot(c)
            if slot in cells:
                shared += 1  # a reference cell an earlier entry already holds: the board keeps that copy
                continue
            cells[slot] = {**c, "entry": b["name"]}
            owner[slot] = f"{b['name']} ({fname})"
        if shared:
            board.notes.append(f"{fname}: {shared} reference cells already on the board (kept the earlier copies)")
        for track, meta in b["columns"].items():
            for col, m in meta.items():
                columns[track].setdefault(col, m)
        for p in b["plugins"]:
            plugin_rows.setdefault((p["family"], p["name"]), {**p, "distribution": b["plugin"]["distribution"],
                                                               "distribution_version": b["plugin"]["version"]})
        board.accepted.append({
            "name": b["name"], "file": fname, "distribution": b["plugin"]["distribution"],
            "version": b["plugin"]["version"], "cells": sum(1 for c in b["cells"] if not _is_reference(c, references)),
            "seeds": b["seeds"], "environment": b["environment"], "content_sha256": b["content_sha256"],
        })
    if not board.accepted:
        detail = "; ".join(f"{f}: {r}" for f, r in board.refused) or "no *.json bundle in it"
        raise UserError(f"no acceptable bundle in {entries_dir} ({detail})")
    assert suite is not None
    merged = {
        "schema": results_mod.SCHEMA,
        "suite": suite,
        "environment": {},
        "plugins": [plugin_rows[k] for k in sorted(plugin_rows)],
        "plugin_load_failures": [],
        "columns": dict(columns),
        "cells": sorted(cells.values(), key=lambda c: c["key"]),
        "entries": board.accepted,
        "board": {"schema": BOARD_SCHEMA, "suite_fingerprint": fingerprint},
    }
    # every file is rendered before any is written, and each is written atomically: a failure leaves no
    # partial board
    files = {
        "leaderboard.md": f"# dememo leaderboard — suite `{suite['name']}`\n\n" + entries_table(board.accepted)
                          + "\n\n" + leaderboard.render(merged, "github") + "\n",
        "results.json": json.dumps(merged, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
        "leaderboard.csv": leaderboard.to_csv(merged),
    }
    if hasattr(leaderboard, "to_json"):  # the printed tables as data, as a run writes them
        files["leaderboard.json"] = json.dumps(leaderboard.to_json(merged), indent=1, ensure_ascii=False) + "\n"
    try:
        from .leaderboard_html import render_page  # type: ignore[import-not-found]
    except ImportError:
        board.notes.append("leaderboard.html skipped: dememo.leaderboard_html is not available")
    else:
        files["leaderboard.html"] = render_page(merged)
    board.written += write_files(out_dir, files)
    return board


def write_files(out_dir: Path, files: dict[str, str | bytes], what: str = "the board") -> list[Path]:
    """Write ``files`` (name → text or bytes) into ``out_dir``, each atomically; when one cannot be written,
    the ones written by this call are removed again and the error is one line."""
    from .cache import atomic_write_bytes

    written: list[Path] = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            atomic_write_bytes(out_dir / name, content.encode("utf-8") if isinstance(content, str) else content)
            written.append(out_dir / name)
    except OSError as exc:
        for path in written:
            path.unlink(missing_ok=True)
        raise UserError(f"cannot write {what} to {out_dir}: {exc.strerror or exc}") from None
    return written


def entries_table(entries: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    rows = []
    for e in entries:
        env = e["environment"]
        rows.append([e["name"], e["distribution"], e["version"], e["cells"], len(e["seeds"]),
                     env.get("dememo"), env.get("torch"), env.get("gpu") or env.get("device") or "cpu",
                     f"`{e['content_sha256'][:12]}`"])
    header = ["entry", "distribution", "version", "cells", "seeds", "dememo", "torch", "device", "sha256"]
    return "## Entries\n\n" + tabulate(rows, header, tablefmt="github")
