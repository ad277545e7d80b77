"""Results: one typed record per cell (:mod:`.record`), ``results.json`` read and written (:mod:`.io`) and
checked (:mod:`.check`), and the one aggregation over seeds (:mod:`.aggregate`)."""

from dememo.results.check import MAX_DEPTH, MAX_MAGNITUDE, MAX_SEEDS, shape_problem
from dememo.results.io import SCHEMA, assemble, clean_number, is_partial, load_results, write_cell, write_results
from dememo.results.record import UNSET, CellError, CellRecord, records

__all__ = ["MAX_DEPTH", "MAX_MAGNITUDE", "MAX_SEEDS", "SCHEMA", "UNSET", "CellError", "CellRecord", "assemble",
           "clean_number", "is_partial", "load_results", "records", "shape_problem", "write_cell",
           "write_results"]
