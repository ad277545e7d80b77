"""Content-addressed stage store with atomic writes and checksums.

An entry is ``objects/<k[:2]>/<key>.json`` (metadata, written last) and, when the stage produced tensors,
``<key>.pt`` beside it. Both are written to a temporary file in the same directory and renamed into place,
so a killed process never leaves a half-written entry under its final name. The JSON records the SHA-256 of
the payload file; a payload that does not match is reported once, deleted and recomputed — never used.
Payloads are loaded with ``torch.load(weights_only=True)``: only tensors and plain containers, no pickled
code. The store is safe against process kills; concurrent writers of one key both write the same content
and the last rename wins.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("dememo.cache")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_bytes(path, (json.dumps(value, indent=1, sort_keys=True, allow_nan=True) + "\n").encode())


class Store:
    """The on-disk cache of stage outputs, keyed by SHA-256 hex digests."""

    def __init__(self, root: Path | str):
        self.root = Path(root)
        self.reported: set[str] = set()

    def _paths(self, key: str) -> tuple[Path, Path]:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"malformed cache key {key!r}")
        base = self.root / "objects" / key[:2] / key
        return base.with_suffix(".json"), base.with_suffix(".pt")

    def get(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """``(meta, payload)`` for ``key``, or None when missing or corrupt (corruption is logged once)."""
        meta_path, payload_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self._discard(key, f"unreadable metadata ({exc})")
            return None
        if not isinstance(meta, dict) or meta.get("key") != key:
            self._discard(key, "metadata does not match its key")
            return None
        payload = None
        if meta.get("payload_sha256"):
            try:
                raw = payload_path.read_bytes()
            except FileNotFoundError:
                self._discard(key, "payload file is missing")
                return None
            if hashlib.sha256(raw).hexdigest() != meta["payload_sha256"]:
                self._discard(key, "payload checksum mismatch")
                return None
            try:
                payload = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            except Exception as exc:
                self._discard(key, f"payload cannot be loaded ({exc.__class__.__name__})")
                return None
        return meta, payload

    def put(self, key: str, meta: dict[str, Any], payload: Any = None) -> None:
        """Store ``payload`` (tensors in plain containers, or None) then its metadata."""
        meta_path, payload_path = self._paths(key)
        meta = dict(meta, key=key)
        if payload is not None:
            buf = io.BytesIO()
            torch.save(payload, buf)
            raw = buf.getvalue()
            atomic_write_bytes(payload_path, raw)
            meta["payload_sha256"] = hashlib.sha256(raw).hexdigest()
        atomic_write_json(meta_path, meta)

    def _discard(self, key: str, why: str) -> None:
        if key not in self.reported:
            self.reported.add(key)
            log.warning("cache entry %s… is corrupt (%s); recomputing it", key[:12], why)
        for path in self._paths(key):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
