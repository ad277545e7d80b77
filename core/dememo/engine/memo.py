"""The stage memo: a stage's output from memory, the disk cache or its computation, exactly once.

Every stage of the runner goes through :meth:`StageMemo.stage` with its key, a ``compute`` function (run as
the plugin ``who``) and a ``decode`` of the cached payload. The memo keeps outputs in memory (least recently
used first out, up to ``memory_bytes``) over the content-addressed :class:`~dememo.engine.cache.Store`; holds
the store's per-entry claim while computing, so that a second process waits and reads instead of
computing again; remembers a key's failure for the rest of the run; bills to a stage the seconds of cached
trainings it reused (``borrowed``); and adds every output it hands out to the watches of the plugin calls
in progress (``watches``: a plugin that modifies it in place is caught, :mod:`dememo.engine.guards`).
"""

from __future__ import annotations

import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import attrs
import torch
from torch import nn

from dememo import interrupts
from dememo.ensemble import Ensemble
from dememo.engine.cache import Store
from dememo.engine.failures import StageFailure, escaped, one_line, user_stop
from dememo.engine.guards import InputMutated, Watch


def nbytes(value: Any) -> int:
    """Approximate memory held by a stage output (models, tensors; other values count as small)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, Ensemble):
        return sum(nbytes(t) for t in [*value.params.values(), *value.buffers.values()])
    if isinstance(value, nn.Module):
        return sum(t.numel() * t.element_size() for t in value.state_dict().values())
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    return 256


class NotCached(Exception):
    """Raised instead of computing a stage while the memo is ``probing``: the cell needs real work."""


@attrs.define
class StageInfo:
    """How a stage ran: the seconds of its computation (read back from the cache when it was not computed
    now), whether it was read, and its cache key (results record its first 16 hex digits, so the stages
    behind a set of cells can be counted once: ``engine.costs.results_compute``)."""

    seconds: float
    cached: bool
    key: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": round(self.seconds, 4), "cached": self.cached}
        if self.key:
            out["key"] = self.key[:16]
        return out


class StageMemo:
    def __init__(self, store: Store, memory_bytes: int, on_mutation: Callable[[], None]):
        self.store = store
        self.memory_bytes = memory_bytes  # stage outputs kept in memory (LRU); the disk cache holds all
        self.mem: OrderedDict[str, tuple[Any, dict[str, Any], StageInfo]] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._total = 0
        #: stages that failed in this run: key → the failure (every cell that needs it fails the same way)
        self.failed: dict[str, StageFailure] = {}
        #: seconds of cached trainings reused by the stage being computed (billed to it)
        self.borrowed = 0.0
        #: the watches of the plugin calls in progress (innermost last): outputs handed out meanwhile are
        #: added to each (``guards.Watch``)
        self.watches: list[Watch] = []
        #: called with (key, stage name, True) before a stage is computed (not when read from the cache) and
        #: (key, stage name, False) after: lets an isolating parent know which stage a crashed worker was in
        self.on_stage: Callable[[str, str, bool], None] | None = None
        #: called with (key, stage name, True) when this process starts waiting for another's claim on a stage
        #: and (key, stage name, False) when it has it: a worker's cell clock stops meanwhile
        self.on_wait: Callable[[str, str, bool], None] | None = None
        #: called when a plugin modified shared data in place: whatever is held in memory must go
        self.on_mutation = on_mutation
        #: metadata of deferred cache entries already read (a warm run asks for a model stage's key many times)
        self._metas: dict[str, dict[str, Any]] = {}
        #: answer from memory and the cache only: a stage that would have to be computed raises NotCached (a
        #: parent serves a warm run's cells itself and leaves the rest to its workers)
        self.probing = False

    def stage(self, key: str, name: str, compute: Callable[[], tuple[Any, Any, dict[str, Any]]],
               decode: Callable[[dict[str, Any], Any], Any], who: str | None = None,
               inputs: Callable[[], Any] | None = None) -> tuple[Any, dict[str, Any], StageInfo]:
        """A stage's output, from memory, the cache or ``compute`` (run as plugin ``who``, default the stage
        name). The output is shared: while a plugin runs, it is added to the plugin's watch. ``inputs``, when
        given, loads what ``compute`` reads (a deferred model) and hands it to ``compute`` as its argument:
        outside the stage's clock and before the plugin's seeds are set, so neither its seconds nor its random
        draws depend on whether an input came from memory or from the disk."""
        value, meta, info = self._get(key, name, compute, decode, who or name, inputs)
        for watch in self.watches:
            watch.add(f"{name} output", value)
        return value, meta, info

    def deferred(self, key: str, name: str, compute: Callable[[], tuple[Any, Any, dict[str, Any]]],
                 decode: Callable[[dict[str, Any], Any], Any], who: str | None = None,
                 inputs: Callable[[], Any] | None = None) -> tuple[Callable[[], Any], dict[str, Any], StageInfo]:
        """:meth:`stage` with the output handed out as a function that returns it: an entry read from the
        cache is loaded, checked and decoded only when that function is first called. A warm run needs a
        model stage's key and metadata for every cell but its weights only where a later stage is computed,
        so it skips most payload reads (the models of a 2,000-cell run). Computed outputs and outputs held in
        memory are returned as they are; a payload found corrupt when finally read is recomputed then."""
        load = lambda: self.stage(key, name, compute, decode, who, inputs)[0]  # noqa: E731 - watched when handed out
        if key in self.failed:
            raise self.failed[key]
        held = self.mem.get(key)
        if held is not None:
            return load, held[1], StageInfo(held[2].seconds, True, key)
        meta = self._metas.get(key) or self.store.meta(key)
        if meta is not None:
            self._metas[key] = meta
            return load, meta, StageInfo(float(meta.get("seconds", 0.0)), True, key)
        _, meta, info = self._get(key, name, compute, decode, who or name, inputs)
        return load, meta, info

    def _get(self, key: str, name: str, compute: Callable[[], tuple[Any, Any, dict[str, Any]]],
             decode: Callable[[dict[str, Any], Any], Any], who: str,
             inputs: Callable[[], Any] | None = None) -> tuple[Any, dict[str, Any], StageInfo]:
        if key in self.failed:
            raise self.failed[key]
        if key in self.mem:
            self.mem.move_to_end(key)
            value, meta, info = self.mem[key]
            return value, meta, StageInfo(info.seconds, True, key)
        hit = self.store.get(key)
        if hit is None and self.probing:
            raise NotCached(key)
        if hit is None:
            # another process computing this stage: wait for it, then read its entry
            waiting = None if self.on_wait is None else (lambda flag: self.on_wait(key, name, flag))  # type: ignore[misc]
            with self.store.claim(key, waiting):
                hit = self.store.get(key)
                if hit is None:
                    value, meta, info = self._compute(key, name, compute, who, inputs)
        if hit is not None:
            meta, payload = hit
            value = decode(meta, payload)
            info = StageInfo(float(meta.get("seconds", 0.0)), True, key)
        self.mem[key] = (value, meta, info)
        self._sizes[key] = nbytes(value)
        self._total += self._sizes[key]
        while self._total > self.memory_bytes and len(self.mem) > 1:
            old, _ = self.mem.popitem(last=False)
            self._total -= self._sizes.pop(old)
        return value, meta, info

    def _compute(self, key: str, name: str, compute: Callable[[], tuple[Any, Any, dict[str, Any]]],
                 who: str, inputs: Callable[[], Any] | None = None) -> tuple[Any, dict[str, Any], StageInfo]:
        """Compute a stage and store it (the caller holds its claim). Whatever the plugin raises fails the
        stage (``escaped``), except a full disk and the user's interrupt. ``inputs`` runs first, unclocked
        (its failures are its own stages'), and ``compute`` gets what it returns."""
        args = () if inputs is None else (inputs(),)
        if self.on_stage is not None:
            self.on_stage(key, name, True)
        start = time.perf_counter()
        outer, self.borrowed = self.borrowed, 0.0
        signals = interrupts.pending()
        try:
            value, payload, extra = compute(*args)
        except StageFailure as exc:
            if interrupts.pending() > signals:  # the user's Ctrl-C, swallowed by a plugin: still the user's
                raise KeyboardInterrupt from exc
            raise
        except BaseException as exc:
            if user_stop(exc):
                raise
            if interrupts.pending() > signals:
                raise KeyboardInterrupt from exc
            mutated = isinstance(exc, InputMutated)
            failure = StageFailure(name, escaped(exc, who) or one_line(exc), traceback.format_exc(), mutated)
            self.failed[key] = failure
            if mutated:
                self.on_mutation()
            raise failure from exc
        finally:
            borrowed, self.borrowed = self.borrowed, outer
            if self.on_stage is not None:
                self.on_stage(key, name, False)
        if interrupts.pending() > signals:
            raise KeyboardInterrupt
        self._refuse_tainted(name)
        seconds = time.perf_counter() - start + borrowed
        meta = {"stage": name, "seconds": seconds, **extra}
        self.store.put(key, meta, payload)
        return value, meta, StageInfo(seconds, False, key)

    def _refuse_tainted(self, name: str) -> None:
        """A stage computed for a plugin that had already modified shared data (``ctx.train`` on a retain set
        it changed, ``ev.metric`` on a model it scaled) is computed from the wrong inputs under the right key:
        it is not stored, and fails (not remembered as this key's failure: the key itself is sound); the
        plugin's own guard then fails the plugin."""
        for watch in self.watches:
            changed = watch.changed()
            if changed:
                self.on_mutation()
                raise StageFailure(name, f"not stored: {watch.who} had modified {changed[0]} in place before "
                                         "asking for it", "", mutated=True)

    def clear(self) -> None:
        """Forget every output held in memory (the disk cache keeps them)."""
        self.mem.clear()
        self._metas.clear()
        self._sizes.clear()
        self._total = 0
