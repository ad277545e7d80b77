"""How a stage fails: :class:`StageFailure` (one line naming the plugin, the traceback, whether shared data
was modified), and the rules that tell a plugin's failure from a stop of the whole run."""

from __future__ import annotations

from dememo import interrupts
from dememo.errors import BudgetViolation, ContractViolation, StorageError, UserError


class StageFailure(Exception):
    """A stage raised: one-line ``message`` and the full ``trace``; shared by every cell that needs it.
    ``mutated``: the plugin modified shared data in place (what is held in memory was dropped)."""

    def __init__(self, stage: str, message: str, trace: str, mutated: bool = False):
        super().__init__(f"{stage}: {message}")
        self.stage, self.message, self.trace, self.mutated = stage, message, trace, mutated


def escaped(exc: BaseException, who: str) -> str | None:
    """The one-line reason for an exception that is not an ordinary plugin bug but must still fail only the
    plugin's stage (None for an ordinary ``Exception``)."""
    if isinstance(exc, SystemExit):
        return f"{who} called sys.exit({exc.code!r}); a plugin must raise an exception instead of ending the process"
    if isinstance(exc, KeyboardInterrupt):
        return f"{who} raised KeyboardInterrupt, and no Ctrl-C or SIGTERM was received"
    if isinstance(exc, UserError):
        return f"{who} raised {type(exc).__name__}: {first_line(exc)}"
    if not isinstance(exc, Exception):
        return f"{who} raised {type(exc).__name__}"
    return None


def user_stop(exc: BaseException) -> bool:
    """Whether an exception stops the run rather than failing a stage: dememo's own cache or results
    directory cannot be written, or the user's interrupt."""
    return (isinstance(exc, StorageError) and exc.harness) or (isinstance(exc, KeyboardInterrupt)
                                                               and interrupts.from_user(exc))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message ("" when it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def one_line(exc: BaseException) -> str:
    text = first_line(exc)
    if isinstance(exc, (BudgetViolation, ContractViolation)):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
