"""Atomic file writes: one file (temporary + rename, mode from the umask), or a set of output files as one:
afterwards every file is new, or every file is as it was.

A run's ``results.json`` and leaderboards, a board's files and a report are read together: a leaderboard
that disagrees with the results beside it is worse than an old pair. Writing each file atomically is not
enough — the write of the third file can fail (a full disk, a permission, an interrupt) after the first two
were replaced. :func:`atomic_write_set` therefore

1. writes every file to a temporary beside its final name (``.<name>.<token>.new.tmp``, the name cut to
   :data:`NAME_KEPT` characters; nothing final is touched, so any failure here leaves the old set as it was);
2. only then replaces the files in order, each old version first kept as ``.<name>.<token>.old.tmp`` — a
   hard link, so the final name never goes missing for a reader (a rename where the filesystem has no
   hard links);
3. when a replace fails, puts every old version back (and removes files the set added), then re-raises;
   on success removes the kept versions.

Signals (SIGINT, SIGTERM) are held off for the whole write while :func:`dememo.interrupts.handling` is
active (:func:`dememo.interrupts.deferred`); the caller checks :func:`dememo.interrupts.pending`. Without
it, a ``KeyboardInterrupt`` mid-write rolls back like any error. Only a SIGKILL or a power cut between
steps 2 and 3 can leave a mix, with the old versions still on disk as ``.old.tmp`` files.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dememo import interrupts

log = logging.getLogger("dememo.files")

#: characters of a file's name its temporaries keep: a staged file gets a temporary of its own while it is
#: written, and the two suffixes must not push a long (report figure) name past the 255-byte limit
NAME_KEPT = 100


def _create_temporary(path: Path) -> tuple[int, str]:
    """A new ``.<name>.<random>.tmp`` beside ``path``, opened for writing with mode 0o666: the kernel applies
    the umask (and a directory's default ACL), as for any file a program creates. Why not ``mkstemp``: it
    creates 0o600 whatever the umask, so a cache shared by a group, or a ``leaderboard.html`` a web server
    should read, would be private to whoever wrote it last."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", str(path.parent))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``; on failure (e.g. ENOSPC) the
    temporary is removed and ``path`` is untouched. The file's mode follows the umask (0o644 under 022)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
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


def atomic_write_set(out_dir: Path, files: Mapping[str, bytes | str | None]) -> list[Path]:
    """Write ``files`` (file name → bytes, or text written as UTF-8; None removes that file, so that no stale
    member of an older set stays beside a new one) into ``out_dir`` as one set: all new or, when an
    ``OSError`` or an interrupt stops it, all old (files the set would have added are absent, removed ones
    are back). Returns the written paths. Names are plain file names (no directories)."""
    out_dir = Path(out_dir)
    for name in files:
        if not name or Path(name).name != name or name in (".", ".."):
            raise ValueError(f"{name!r} is not a plain file name")
    token = secrets.token_hex(6)
    staged: dict[str, Path] = {}
    replaced: list[tuple[Path, Path | None]] = []  # (final path, its kept old version or None)
    with interrupts.deferred():
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                if content is not None:
                    stage = out_dir / f".{name[:NAME_KEPT]}.{token}.new.tmp"
                    atomic_write_bytes(stage, content.encode("utf-8") if isinstance(content, str) else content)
                    staged[name] = stage
            for name in files:
                final = out_dir / name
                kept = _keep_old(final, out_dir / f".{name[:NAME_KEPT]}.{token}.old.tmp")
                try:
                    if name in staged:
                        os.replace(staged[name], final)
                    elif os.path.lexists(final):  # to be removed (the rename fallback may have moved it already)
                        final.unlink()
                except BaseException:
                    if kept is not None and not os.path.lexists(final):  # the rename fallback moved it away
                        os.replace(kept, final)
                        kept = None
                    _remove(kept)
                    raise
                replaced.append((final, kept))
        except BaseException:
            _roll_back(replaced)
            raise
        else:
            for _, kept in replaced:
                _remove(kept)
        finally:
            for stage in staged.values():
                _remove(stage)
    return [out_dir / name for name in staged]


def _keep_old(final: Path, backup: Path) -> Path | None:
    """Keep ``final``'s current version as ``backup`` (None when there is none): a hard link, or a rename
    where hard links are not supported."""
    if not os.path.lexists(final):
        return None
    try:
        os.link(final, backup, follow_symlinks=False)
    except OSError:
        if final.is_dir() and not final.is_symlink():
            raise IsADirectoryError(21, "Is a directory", str(final)) from None
        os.replace(final, backup)
    return backup


def _roll_back(replaced: list[tuple[Path, Path | None]]) -> None:
    """Put the old versions back, last replaced first; one that cannot be put back stays on disk under its
    kept name (reported), never deleted."""
    for final, kept in reversed(replaced):
        try:
            if kept is None:
                final.unlink(missing_ok=True)
            else:
                os.replace(kept, final)
        except OSError as exc:
            log.warning("could not restore %s (%s); its previous version is kept as %s", final, exc.strerror, kept)


def _remove(path: Path | None) -> None:
    if path is not None:
        try:
            path.unlink()
        except OSError:  # gone already; a leftover .tmp is harmless
            pass


def write_files(out_dir: Path, files: dict[str, str | bytes], what: str = "the board") -> list[Path]:
    """Write ``files`` (name → text or bytes) into ``out_dir`` as one set (:func:`dememo.files.atomic_write_set`):
    when one cannot be written, every previous file is left as it was (an earlier board stays whole) and the
    error is one line. An interrupt that arrives while the set is written stops the program after it."""
    from dememo.errors import UserError, storage_advice

    before = interrupts.pending()
    try:
        written = atomic_write_set(out_dir, files)
    except OSError as exc:
        raise UserError(f"cannot write {what} to {out_dir}: {storage_advice(exc, '--out')}; the previous files there "
                        "are unchanged") from None
    if interrupts.pending() > before:  # held off while the set was written
        raise KeyboardInterrupt
    return written
