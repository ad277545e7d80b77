"""``dememo-bench new FAMILY NAME``: write a new plugin's installable distribution (``dememo.api.scaffold``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from dememo.api.scaffold import FAMILIES, new


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench new",
        description="Write dememo-plugin-NAME/: an installable distribution of a new plugin (pyproject.toml with the "
        "dememo entry point, the plugin class with a working placeholder and the docstring sections dememo asks "
        "for, tests on the contract kit, a README with the steps to a leaderboard entry). It passes its tests and "
        "runs with 'dememo-bench --smoke' before you change a line.",
    )
    p.add_argument("family", choices=FAMILIES, help="the kind of plugin")
    p.add_argument("name", help="its name: lower-case kebab-case, e.g. my-method")
    p.add_argument("--dir", type=Path, default=Path("."), help="where to create dememo-plugin-NAME/ (default: here)")
    return p


def main(args: argparse.Namespace) -> int:
    print(new(args.family, args.name, args.dir).next_steps())
    return 0
