"""dememo's Python API: the command line's runs, plans and results as functions and objects.

    import dememo

    plan = dememo.plan(suite="quick", unlearners=["scrub"], seeds=1)   # what would run, and its cost
    res = dememo.run(suite="quick", unlearners=["scrub"], seeds=1, progress=False)
    res.table("unlearning", "digits", "class-0")                        # one leaderboard table
    rows = res.to_records()                                             # one flat dict per cell
    model = res.model(res.cells[0])                                     # the model that cell evaluated

    dememo.export("exp", suite="quick", dataset="digits", forget="class-0")  # the original model and splits
    exp = dememo.load_export("exp"); model = exp.model(); x, y = exp.retain()  # ... unlearn in your own code
    dememo.evaluate("unlearned.pt", "exp", name="my-method")            # every attack and metric, as a row

Options are those of ``dememo-bench`` (:class:`~dememo.api.options.RunOptions`); errors a user can cause are
:class:`dememo.UserError` with the command line's one-line message.
"""

from __future__ import annotations

from typing import Any

from dememo.api.external import Export, evaluate, export, load_export
from dememo.api.launch import Finished, Launch, announce_end, caller_settings
from dememo.api.options import RunOptions, default_cache_dir, run_options
from dememo.api.results import Results, Table, load_results

__all__ = ["Export", "Finished", "Launch", "Results", "RunOptions", "Table", "announce_end", "default_cache_dir",
           "evaluate", "export", "load_export", "load_results", "plan", "run"]


def run(suite: str | None = None, **options: Any) -> Results:
    """Run ``suite`` (default ``quick``; ``smoke`` with ``smoke=True``) narrowed by the given options (``poisoners``, ``unlearners``, ``attacks``, ``metrics``,
    ``datasets``, ``forget``, ``tracks``, ``seeds``, ``sets``, ``jobs``, ``out``, ``cache_dir``, ``progress``,
    ...: :class:`RunOptions`) and return its results, also written to ``out`` (default
    ``./dememo-results/<suite>``) as the command line writes them. Cached stages are reused as on the command
    line. A run interrupted with Ctrl-C writes its finished cells as partial results and raises
    KeyboardInterrupt; failed cells are in the results (``Results.failed``), not raised."""
    with caller_settings():
        launch = Launch(run_options(suite, options))
        finished = launch.execute()
    announce_end(finished, launch.estimated)
    if finished.outcome.interrupted:
        raise KeyboardInterrupt(f"interrupted after {len(finished.outcome.records)} of {finished.cells} cells; partial "
                                f"results are in {finished.where}")
    return Results(finished.data, finished.written, launch.cache)


def plan(suite: str | None = None, **options: Any):
    """What :func:`run` with the same options would do, without running it: the cells by track, dataset and
    forget set, how many are cached, and an estimate of the compute time (:class:`dememo.api.preview.Plan`)."""
    from dememo.api.preview import preview

    with caller_settings():
        return preview(Launch(run_options(suite, options)))
