"""Errors a user can cause, each rendered as one line that says what to do (exit code 2)."""

from __future__ import annotations

import difflib


class UserError(Exception):
    """An error caused by the user's input; the CLI prints it on one line and exits with code 2."""

    exit_code = 2


class UnknownPluginError(UserError):
    def __init__(self, family: str, name: str, known: list[str]):
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
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


class BudgetViolation(Exception):
    """A poisoner returned images outside the threat model. Fails that cell only."""


class ContractViolation(Exception):
    """A plugin returned something the harness cannot accept (wrong type, shape, NaN). Fails that cell."""
