"""Content-addressed stage store: atomic writes, checksums on read, one writer per entry.

An entry is ``objects/<k[:2]>/<key>.json`` (metadata, written last) and, when the stage produced tensors,
``<key>.pt`` beside it.

- **Atomic writes.** Both files are written to a temporary file in the same directory and renamed into
  place, so a killed process never leaves a half-written file under its final name (a leftover temporary
  is swept by :meth:`Store.sweep`).
- **Checksums on read.** The JSON records the SHA-256 of the payload file and of its own content. An
  entry that does not match — a truncated or bit-flipped file, a payload from another write — is reported
  once, deleted and recomputed, never used. Entries written before the metadata checksum existed are
  recomputed the same way.
- **One writer per entry (claims).** :meth:`Store.claim` holds an exclusive ``flock`` on
  ``locks/<k[:2]>/<key>.lock`` while a stage is computed and stored. A second process that needs the same
  stage waits, then reads the first one's entry instead of computing it again. Why ``flock`` and not lock
  files created with ``O_EXCL``: the kernel releases a ``flock`` when its holder dies, even by SIGKILL,
  so a crashed run never leaves a stale claim that needs a timeout or a PID check; and why claims at all
  rather than letting both compute and the last rename win: stages are minutes of GPU time, and two
  writers of one key would interleave ``.pt`` and ``.json`` renames (the checksum would catch it, at the
  cost of a third computation). Claims cannot deadlock: a process holding a claim only asks for stages
  its stage depends on, and stage dependencies form a DAG. Where ``flock`` is not available (Windows) or
  not honoured (some network filesystems), claims are no-ops and the checksums still guarantee that no
  mixed entry is ever used.
- **Safe payloads.** Payloads are loaded with ``torch.load(weights_only=True)``: only tensors and plain
  containers, no pickled code.
- **Disk full, permissions.** A failed write raises :class:`~dememo.errors.StorageError` (one line, what
  to do, chosen by errno); the temporary file is removed and no entry is left half-written.
- **Shared caches.** Files and lock files are created with mode 0o666 less the umask (0o664 under umask
  002), so a group can share a cache. An entry this user may not *read* is never taken for corruption (it
  would be deleted): it is a one-line StorageError saying how to fix the permissions.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from dememo.errors import StorageError, harness_storage, storage_advice
from dememo import files

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("dememo.cache")

#: temporaries older than this are orphans of a killed writer (a write takes seconds)
STALE_TEMPORARY_SECONDS = 3600.0


def meta_checksum(meta: dict[str, Any]) -> str:
    """SHA-256 of an entry's metadata without its own checksum field (canonical JSON; floats round-trip)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=True, separators=(",", ":")).encode()).hexdigest()


class Store:
    """The on-disk cache of stage outputs, keyed by SHA-256 hex digests."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.reported: set[str] = set()
        #: entries this process wrote (stages it computed), for run summaries and concurrency checks
        self.writes = 0

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"malformed cache key {key!r}")
        base = self.root / "objects" / key[:2] / key
        return base.with_suffix(".json"), base.with_suffix(".pt")

    def get(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """``(meta, payload)`` for ``key``, or None when missing or corrupt (corruption is logged once, the
        entry deleted); a StorageError when this user may not read it (see :meth:`_not_readable`)."""
        found = self._read(key)
        if isinstance(found, str):
            self._discard(key, found)
            return None
        return found

    def meta(self, key: str) -> dict[str, Any] | None:
        """``key``'s metadata when the entry looks whole (its metadata checksum holds and its payload file is
        there), without reading the payload; None otherwise (absent, or to be judged by :meth:`get`, which
        reports and deletes a corrupt entry). The payload's own checksum is checked when :meth:`get` reads it."""
        found = self._read(key, payload=False)
        return found[0] if isinstance(found, tuple) else None

    def _read(self, key: str, payload: bool = True) -> tuple[dict[str, Any], Any] | str | None:
        """The entry, None when absent, or a string saying why it is corrupt (nothing is deleted). Without
        ``payload`` only the metadata is checked and the payload file's presence: ``(meta, None)``."""
        meta_path, payload_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_bytes())
        except FileNotFoundError:
            return None
        except PermissionError as exc:
            raise self._not_readable(exc) from None
        except (OSError, ValueError) as exc:
            return f"unreadable metadata ({exc.__class__.__name__})"
        if not isinstance(meta, dict) or meta.get("key") != key:
            return "metadata does not match its key"
        if meta.get("meta_sha256") != meta_checksum(meta):
            return "metadata checksum mismatch" if "meta_sha256" in meta else "metadata has no checksum (older format)"
        if not payload:
            return (meta, None) if not meta.get("payload_sha256") or payload_path.is_file() else "payload file is missing"
        loaded = None
        if meta.get("payload_sha256"):
            try:
                raw = payload_path.read_bytes()
            except FileNotFoundError:
                return "payload file is missing"
            except PermissionError as exc:
                raise self._not_readable(exc) from None
            except OSError as exc:
                return f"payload unreadable ({exc.__class__.__name__})"
            if hashlib.sha256(raw).hexdigest() != meta["payload_sha256"]:
                return "payload checksum mismatch"
            try:
                loaded = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            except Exception as exc:
                return f"payload cannot be loaded ({exc.__class__.__name__})"
        return meta, loaded

    def _not_readable(self, exc: OSError) -> StorageError:
        """An entry this user may not read. Why an error and not "corrupt" (which deletes it) or a miss: the
        entry is most likely sound and another user's, in a cache shared without group permissions; deleting
        it would destroy their work, and a silent miss would recompute every stage (and then fail to replace
        the entry). One line naming the file and both ways out."""
        return harness_storage(f"cannot read the cache entry {exc.filename or self.root}: permission denied; make the "
                            f"shared cache readable and writable by your group (chmod -R g+rwX {self.root}, and umask "
                            "002 for every user of it) or give your own --cache-dir")

    def put(self, key: str, meta: dict[str, Any], payload: Any = None) -> None:
        """Store ``payload`` (tensors in plain containers, or None) then its metadata."""
        meta_path, payload_path = self._paths(key)
        meta = dict(meta, key=key)
        meta.pop("meta_sha256", None)
        try:
            if payload is not None:
                buf = io.BytesIO()
                torch.save(payload, buf)
                raw = buf.getvalue()
                files.atomic_write_bytes(payload_path, raw)
                meta["payload_sha256"] = hashlib.sha256(raw).hexdigest()
            else:
                meta.pop("payload_sha256", None)
            meta["meta_sha256"] = meta_checksum(meta)
            files.atomic_write_json(meta_path, meta)
        except OSError as exc:
            raise harness_storage(f"cannot write the cache at {self.root}: {storage_advice(exc, '--cache-dir')}; then run "
                               "the same command again (finished cells are kept)") from None
        self.writes += 1

    @contextlib.contextmanager
    def claim(self, key: str, waiting: Callable[[bool], None] | None = None) -> Iterator[None]:
        """Hold the exclusive right to compute ``key`` (blocks while another process holds it; ``waiting`` is
        called with True when it has to wait and with False once it holds the claim)."""
        self._paths(key)  # validates the key
        if fcntl is None:
            yield
            return
        path = self.root / "locks" / key[:2] / f"{key}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = self._open_lock(path)
        except OSError as exc:
            raise harness_storage(f"cannot create a lock in the cache at {self.root}: "
                               f"{storage_advice(exc, '--cache-dir')}") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another process computes it
                if waiting is not None:
                    waiting(True)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except OSError:
                    pass
                if waiting is not None:
                    waiting(False)
            except OSError:  # a filesystem without flock: checksums still keep mixed entries out
                pass
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @staticmethod
    def _open_lock(path: Path) -> int:
        """The lock file, created with mode 0o666 less the umask (so a group sharing the cache can lock it);
        one that exists but is not writable by this user is opened read-only, which ``flock`` accepts."""
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:
            if not path.exists():
                raise
            return os.open(path, os.O_RDONLY)

    def _discard(self, key: str, why: str) -> None:
        if key not in self.reported:
            self.reported.add(key)
            log.warning("cache entry %s… is corrupt (%s); recomputing it", key[:12], why)
        for path in self._paths(key):
            try:
                path.unlink()
            except OSError:  # gone already, or not this user's to delete: a later put replaces it or says why not
                pass

    def keys(self) -> list[str]:
        """Keys of every entry with metadata on disk."""
        return sorted(p.stem for p in (self.root / "objects").glob("*/*.json") if not p.name.startswith("."))

    def check(self) -> dict[str, str]:
        """Every corrupt entry and why (nothing is changed): ``{}`` means the store is sound. An entry this user
        may not read is a StorageError, as in :meth:`get`: it cannot be judged, and is not corrupt."""
        bad = {}
        for key in self.keys():
            try:
                found = self._read(key)
            except ValueError:  # a file name that is not a key
                bad[key] = "file name is not a cache key"
                continue
            if isinstance(found, str):
                bad[key] = found
        return bad

    def sweep(self, max_age: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete temporaries left by killed writers (older than ``max_age`` seconds); returns the count."""
        now, removed = time.time(), 0
        for path in (self.root / "objects").glob("*/.*.tmp"):
            try:
                if now - path.stat().st_mtime > max_age:
                    path.unlink()
                    removed += 1
            except OSError:  # gone already, or another user's in a directory this one may not change
                pass
        return removed
