"""``dememo-bench plan``: what a run with the same flags would do — its cells by track, dataset and forget set,
how many are cached, the stages left to compute and their estimated cost — without running anything."""

from __future__ import annotations

import argparse
import json

from dememo.api.launch import Launch
from dememo.api.preview import preview
from dememo.cli.run import add_run_arguments, options


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dememo-bench plan",
        description="Show what 'dememo-bench' with the same flags would run: cells per track, dataset and forget "
        "set, how many are already cached, the stages left to compute and an estimate of their compute time "
        "(from this cache's measurements, else the shipped ones). Nothing is computed; the datasets are loaded.",
    )
    add_run_arguments(p)
    return p


def main(args: argparse.Namespace) -> int:
    plan = preview(Launch(options(args)))
    print(json.dumps(plan.to_json(), indent=1) if args.format == "json" else plan.render())
    return 0
