"""``dememo-bench``: one module per subcommand, each with ``parser()`` and ``main(args)``.

``dememo-bench [--all ...]`` is :mod:`dememo.cli.run`; the subcommands (:mod:`dememo.cli.commands`: ``plan``,
``suite``, ``tune``, ``report``, ``submit``, ``verify``, ``leaderboard``) are the modules of the same names,
imported only when used (start-up time).
"""

from __future__ import annotations

import importlib
import signal
import sys

from dememo import interrupts
from dememo.cli.commands import COMMANDS
from dememo.errors import UserError
from dememo.params import printable
from dememo.progress import log_lines

#: subcommand → its module under dememo.cli
SUBCOMMANDS = {name: module for name, (module, _) in COMMANDS.items()}

#: names the one-module CLI had, and where they live now (read through ``dememo.cli`` for one more release;
#: ``dememo.cli.run``, once a function, is now the module of the main command)
MOVED = {
    "parser": "dememo.cli.run:parser", "default_cache_dir": "dememo.cli.run:default_cache_dir",
    "list_plugins": "dememo.cli.run:list_plugins", "LARGE_PLAN": "dememo.engine.session:LARGE_PLAN",
    "check_plan_size": "dememo.engine.session:check_plan_size", "columns_meta": "dememo.engine.session:columns_meta",
    "load_datasets": "dememo.engine.session:load_datasets", "output_files": "dememo.board.writer:output_files",
    "write_outputs": "dememo.board.writer:write_outputs", "PARTIAL_DIR": "dememo.board.writer:PARTIAL_DIR",
    "resolve_device": "dememo.engine.devices:resolve_device", "set_deterministic": "dememo.engine.devices:set_deterministic",
    **{f"{name}_parser": f"dememo.cli.{name}:parser" for name in ("tune", "report", "submit", "verify", "leaderboard")},
    **{f"run_{name}": f"dememo.cli.{name}:main" for name in ("tune", "report", "submit", "verify", "leaderboard")},
}


def __getattr__(name: str) -> object:
    """A name of the old one-module CLI, with a DeprecationWarning saying where it lives now (a read-only
    forward: to patch it, patch its new home)."""
    if name not in MOVED:
        raise AttributeError(f"module 'dememo.cli' has no attribute {name!r}")
    module, attr = MOVED[name].split(":")
    import warnings

    warnings.warn(f"dememo.cli.{name} moved to {module}.{attr}; the old name goes in the next release",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(module), attr)


def main(argv: list[str] | None = None) -> int:
    """Run ``dememo-bench`` with ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    log_lines()
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
    status = main()
    quick_exit_gc()
    sys.exit(status)


def quick_exit_gc() -> None:
    """Collect the garbage now, then exempt the live objects from the collections that run again at
    interpreter shutdown: with torch imported those traverse ~10^6 objects for nothing (`dememo-bench --list`
    2.20 → 2.05 s, median of 7). What is garbage now is finalized here; atexit handlers (multiprocessing, Ray,
    logging, temporary directories) run as always; objects that are still alive and sit in reference cycles
    are not finalized at shutdown, which Python never promised (the harness holds no open writer at exit)."""
    import gc

    gc.collect()
    gc.freeze()
