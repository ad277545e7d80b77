"""``dememo-bench``: one module per subcommand, each with ``parser()`` and ``main(args)``.

``dememo-bench [--all ...]`` is :mod:`dememo.cli.run`; ``tune``, ``report``, ``submit``, ``verify`` and
``leaderboard`` are the modules of the same names, imported only when used (start-up time).
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

from dememo import interrupts
from dememo.errors import UserError
from dememo.params import printable

#: subcommand → its module under dememo.cli
SUBCOMMANDS = {"tune": "tune", "report": "report", "submit": "submit", "verify": "verify", "leaderboard": "leaderboard"}


def main(argv: list[str] | None = None) -> int:
    """Run ``dememo-bench`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    logging.basicConfig(level=logging.WARNING, format="dememo-bench: %(levelname)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    with interrupts.handling():  # Ctrl-C and SIGTERM are told apart from a plugin raising KeyboardInterrupt
        return _dispatch(argv)


def _dispatch(argv: list[str]) -> int:
    name = SUBCOMMANDS.get(argv[0]) if argv else None
    command = importlib.import_module(f"dememo.cli.{name or 'run'}")
    try:
        return command.main(command.parser().parse_args(argv[1:] if name else argv))
    except UserError as exc:
        print(f"dememo-bench: error: {printable(str(exc))}", file=sys.stderr)  # one line, whatever the input held
        return exc.exit_code


def entry() -> None:
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `dememo-bench --list | head` ends quietly
    # SIGTERM (a CI time limit, `kill`) stops like Ctrl-C (``interrupts.handling`` in main): finished cells
    # are already on disk, and the partial results.json and leaderboards are written before exiting
    sys.exit(main())
