"""Leaderboard submissions, one concern per module (this module only re-exports their public names):

- :mod:`dememo.board.bundle`: the bundle format (schema ``dememo.submission/1``), its content hash, which rows
  a bundle owns, making, writing and loading a bundle, and every check without re-runs (``check_bundle``);
- :mod:`dememo.board.verify`: re-running sampled cells of a bundle and comparing them within the tolerances
  (``verify --rerun``);
- :mod:`dememo.board.public`: the public board built from many bundles (``leaderboard build``).

Imports among them run one way: public → verify → bundle.
"""

from __future__ import annotations

from dememo.board.bundle import (
    CELL_FAMILIES,
    DIST_NAME,
    ENV_KEYS,
    MAGIC,
    MAX_BYTES,
    PLUGIN_NAME,
    SCHEMA,
    SCHEMA_PATH,
    TABLE_FAMILIES,
    Check,
    bundle,
    canonical_bytes,
    check_bundle,
    carries_columns,
    claimed_plugins,
    column_cells,
    column_plugins,
    content_hash,
    dist_key,
    fold,
    is_own,
    load_bundle,
    own_cells,
    owning_plugins,
    reference_plugins,
    schema_errors,
    split_cells,
    universal,
    write_bundle,
)
from dememo.board.public import BOARD_SCHEMA, Board, build_board, entries_table, installed_distributions, previous_entries
from dememo.board.verify import ABS_TOL, REL_TOL, compare, has_numbers, pick_cells, rerun_checks, tolerance_text, verify

__all__ = [
    "ABS_TOL", "BOARD_SCHEMA", "CELL_FAMILIES", "DIST_NAME", "ENV_KEYS", "MAGIC", "MAX_BYTES", "PLUGIN_NAME", "REL_TOL",
    "SCHEMA", "SCHEMA_PATH", "TABLE_FAMILIES", "Board", "Check", "build_board", "bundle", "canonical_bytes",
    "carries_columns", "check_bundle", "claimed_plugins", "column_cells", "column_plugins", "compare", "content_hash", "dist_key", "entries_table", "fold", "has_numbers",
    "installed_distributions", "is_own", "load_bundle", "own_cells", "owning_plugins", "pick_cells", "reference_plugins",
    "previous_entries", "rerun_checks", "schema_errors", "split_cells", "tolerance_text", "universal", "verify",
    "write_bundle",
]
