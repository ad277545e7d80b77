"""``dememo-bench suite``: the shipped suites — ``list`` them, ``export NAME DIR`` copies one with its tuning
file, to edit and run as ``--suite DIR/NAME.toml``."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from dememo.errors import StorageError, SuiteError, did_you_mean, storage_advice
from dememo.planning.suite import load_suite, shipped


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dememo-bench suite", description="The shipped suites: list them, or copy one "
                                "(with the tuning file it names) to a directory to edit.")
    sub = p.add_subparsers(dest="action", required=True, metavar="{list,export}")
    sub.add_parser("list", help="the shipped suites, one line each")
    export = sub.add_parser("export", help="copy a shipped suite and its tuning file to DIR")
    export.add_argument("name", help="a shipped suite (dememo-bench suite list)")
    export.add_argument("dir", type=Path, help="where to write NAME.toml (and its tuning file)")
    export.add_argument("--force", action="store_true", help="replace files of the same names in DIR")
    return p


def export(name: str, where: Path, force: bool = False) -> list[Path]:
    """Copy shipped suite ``name`` (and the tuning file it names) into ``where``; the paths written."""
    names = shipped()
    if name not in names:
        raise SuiteError(f"unknown suite {name!r}{did_you_mean(name, names)}; shipped suites: {', '.join(names)}")
    suite = load_suite(name, apply_tuning=False)
    files = [f"{name}.toml"] + ([suite.tuning] if suite.tuning else [])
    targets = [where / f for f in files]
    clash = [t for t in targets if t.exists()]
    if clash and not force:
        raise SuiteError(f"{clash[0]} exists; give another directory, or --force to replace it")
    try:
        where.mkdir(parents=True, exist_ok=True)
        for f, target in zip(files, targets):
            target.write_bytes(resources.files("dememo.suites").joinpath(f).read_bytes())
    except OSError as exc:
        raise StorageError(f"cannot write the suite to {where}: {storage_advice(exc, 'directory')}") from None
    return targets


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in shipped():
            suite = load_suite(name, apply_tuning=False)
            datasets = ", ".join(e.name for e in suite.datasets)
            print(f"{name:<14} {datasets:<28} {suite.seeds} seeds, tracks {', '.join(suite.tracks)}")
        return 0
    written = export(args.name, args.dir, args.force)
    print(f"wrote {', '.join(map(str, written))}; run it with: dememo-bench --all --suite {written[0]}", file=sys.stderr)
    return 0
