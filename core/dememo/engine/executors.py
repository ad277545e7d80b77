"""Where cells run: in worker processes on this machine (``--jobs N``, :mod:`dememo.engine.isolation`; the
default on a multi-core CPU), in this process (``--jobs 1``), or on a Ray cluster (``--executor ray``).

dememo schedules only the workers of one machine; a user who outgrows it uses Ray (https://docs.ray.io), an
existing engine, started locally or joined with ``--address``.

How cells are shipped. Cells are not pickled: each Ray task gets the run's *specification* (suite, ``--set``
values, filters, seeds, device, cache and data directories) and the keys of its cells, re-plans the suite
with the plugins installed on the worker, and runs the cells with a ``Runner`` of its own. A worker whose
plugins differ from the driver's plans other keys and says so (the task fails with the missing keys).

Stage dependencies. Cells of one dataset and seed share their expensive stages (the original and
retrained models, the poisons, the ensembles), so they form one task and run in order inside it, each
stage computed once; different (dataset, seed) groups run in parallel. Every worker reads and writes the
same content-addressed cache (``--cache-dir``, a path every worker can reach: a shared filesystem on a
cluster), with atomic writes, so a stage computed by one task is reused by the others and by later runs;
two tasks that need the same stage at the same moment may both compute it, and both write the same bytes.

The driver writes each cell's record as soon as its task returns, exactly as the in-process loop does, so
an interrupted Ray run resumes from the cache like any other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from dememo.errors import UserError
from dememo.results.record import CellRecord


@attrs.frozen
class RunSpec:
    """What a worker needs to re-plan and run a share of the cells (plain data, cheap to ship)."""

    suite: str
    sets: dict[str, dict[str, Any]]
    filters: dict[str, tuple[str, ...]]
    seeds: int | None
    device: str
    cache_dir: str
    data_dir: str | None = None
    download: bool = False
    deterministic: bool = False
    threads: int | None = None
    external: dict[str, Any] | None = None  # an external model's row (``engine.external``)
    #: unlearners' own tuning records the driver planned with (``Planner.tuning_records``): a worker on another
    #: machine plans the same cells without the driver's files
    tuning: dict[str, dict[str, Any]] = attrs.field(factory=dict)


def groups(cells: list[Any]) -> list[list[str]]:
    """Cell keys grouped by (dataset, seed), in planning order: the unit of work of a task."""
    out: OrderedDict[tuple[str, int], list[str]] = OrderedDict()
    for cell in cells:
        out.setdefault((cell.data.name, cell.seed), []).append(cell.key)
    return list(out.values())


def prepare(spec: RunSpec, keys: list[str]) -> tuple[dict[str, Any], Any]:
    """Re-plan the run described by ``spec`` in this process: the planned cells by key and a Runner of
    its own. Fails in one line when ``keys`` holds a cell this process does not plan (other plugins)."""
    from dememo import plugins
    from dememo.planning.planner import Filters, Planner
    from dememo.planning.suite import load_suite
    from dememo.progress import Progress
    from dememo.engine.cache import Store
    from dememo.engine.devices import prepare_process, resolve_device, set_deterministic
    from dememo.engine.runner import Runner

    prepare_process(spec.threads)  # the driver's thread count: the same floating-point summation order
    if spec.deterministic:
        set_deterministic()
    registry = plugins.get_registry()
    planner = Planner(registry, load_suite(spec.suite), spec.sets, own_tuning=dict(spec.tuning))
    filters = Filters(**spec.filters)
    cells = planner.cells(filters, seeds=spec.seeds)
    if spec.external is not None:
        from dememo.engine.external import external_cells

        cells += external_cells(planner, spec.external, filters, spec.seeds)
    planned = {c.key: c for c in cells}
    missing = [k for k in keys if k not in planned]
    if missing:
        raise UserError(f"a worker planned other cells than the driver ({len(missing)} of {len(keys)} keys missing, "
                        f"e.g. {missing[0][:12]}): install the same plugins and versions for every worker")
    runner = Runner(Store(Path(spec.cache_dir)), resolve_device(spec.device), Progress(show=False),
                    data_dir=spec.data_dir, download=spec.download, planner=planner)
    return planned, runner


def run_group(spec: RunSpec, keys: list[str]) -> list[dict[str, Any]]:
    """Re-plan the run described by ``spec`` and run the cells ``keys`` in order (a Ray task's body)."""
    planned, runner = prepare(spec, keys)
    from dememo.engine.cell import run_cell

    return [run_cell(runner, planned[k]) for k in keys]


def _reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail fast on a ``host:port`` address nothing listens on (Ray itself retries for minutes)."""
    import socket

    if not address or address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot reach a Ray cluster at {address!r}: {exc}; start one with 'ray start --head' or "
                        "leave out --address to start a local one") from None


def run_ray(spec: RunSpec, cells: list[Any], address: str | None,
            on_record: Callable[[CellRecord], None]) -> Iterator[int]:
    """Run ``cells`` as Ray tasks (one per (dataset, seed) group); ``on_record`` gets every finished cell's
    record as its task returns. Yields the number of cells finished so far, for a progress bar."""
    try:
        import ray
    except ImportError:
        raise UserError("--executor ray needs Ray: pip install 'dememo[ray]'") from None
    _reachable(address)
    started = False
    if not ray.is_initialized():
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise UserError(f"cannot reach a Ray cluster at {address!r}: {exc}") from None
        started = True
    try:
        gpus = 1 if spec.device.startswith("cuda") else 0
        task = ray.remote(num_gpus=gpus, max_retries=0)(run_group)
        pending = {task.remote(spec, keys): len(keys) for keys in groups(cells)}
        done = 0
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                try:
                    records = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    cause = exc.as_instanceof_cause()
                    if isinstance(cause, UserError):
                        raise UserError(str(cause)) from None
                    raise
                for record in records:
                    on_record(record)
                    done += 1
                yield done
    finally:
        if started:
            ray.shutdown()
