"""Errors a user can cause, each rendered as one line that says what to do (exit code 2)."""

from __future__ import annotations

import difflib


class UserError(Exception):
    """An error caused by the user's input; the CLI prints it on one line and exits with code 2."""

    exit_code = 2


def closest(name: str, known: list[str] | tuple[str, ...]) -> str | None:
    """The known name the user most likely meant: the same name in other case (``EM`` → ``em``), else the
    closest by spelling, compared case-insensitively; None when nothing is close."""
    folded = {k.casefold(): k for k in known}
    if name.casefold() in folded:
        return folded[name.casefold()]
    close = difflib.get_close_matches(name.casefold(), list(folded), n=1)
    return folded[close[0]] if close else None


def did_you_mean(name: str, known: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or the empty string."""
    close = closest(name, known)
    return f" (did you mean {close!r}?)" if close else ""


class UnknownPluginError(UserError):
    def __init__(self, family: str, name: str, known: list[str]):
        hint = did_you_mean(name, known)
        super().__init__(
            f"unknown {family} {name!r}{hint}; run 'dememo-bench --list' to see the installed ones"
        )
        self.family, self.name = family, name


class ParameterError(UserError):
    """A hyper-parameter value that does not fit its declared type."""


class SuiteError(UserError):
    """A malformed suite file or an unknown suite name."""


class PluginConflictError(UserError):
    """Two plugins register the same name in one family."""


class DatasetError(UserError):
    """Missing or malformed dataset files."""


class StorageError(UserError):
    """The results or cache directory cannot be written (disk full, permissions, a read-only mount).
    Finished cells are on disk already; the run stops with this one line (exit code 74, EX_IOERR)."""

    exit_code = 74
    #: raised by dememo's own storage (``harness_storage``): only these stop a run; a StorageError a plugin
    #: raises is that plugin's failure like any other exception
    harness = False


def harness_storage(message: str) -> StorageError:
    """A StorageError of dememo's own cache or results directory (it stops the run)."""
    error = StorageError(message)
    error.harness = True
    return error


class BudgetViolation(Exception):
    """A poisoner returned images outside the threat model. Fails that cell only."""


class ContractViolation(Exception):
    """A plugin returned something the harness cannot accept (wrong type, shape, NaN). Fails that cell."""


def storage_advice(exc: OSError, option: str) -> str:
    """What an ``OSError`` from writing or reading the disk means and what to do, as one clause, chosen by
    errno (``option`` is the flag that picks another place, e.g. ``--out`` or ``--cache-dir``). Why by errno:
    telling someone to free space when the file is another user's or the mount is read-only sends them the
    wrong way."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    reason = " ".join(str(exc.strerror or exc).split()) + where
    code = exc.errno
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return f"{reason}; free space or give another {option}"
    if code in (errno.EACCES, errno.EPERM):
        return (f"{reason}; fix the permissions (e.g. chmod -R g+rwX on a shared directory) "
                f"or give another {option}")
    if code == errno.EROFS:
        return f"{reason}; give another {option} on a writable disk"
    return f"{reason}; check the disk or give another {option}"
