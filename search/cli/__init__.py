"""The `nextsweep` command line. Errors a user can cause print one line and exit with code 2.

One module per command group, each registering its sub-parsers and holding its commands: `data`
(prepare, synth, info; its options in `data_options`, what it prints in `data_info`), `space`
(check), `sweep`, `results` (status, dashboard, export, confirm, report, retrain, predict);
`common` holds the options several groups share.
"""

from __future__ import annotations

import argparse
import os
import sys

from data_io import DataError
from models import ModelError
from search.cli import data, results, space, sweep
from search.errors import SearchError
from spaces import SpaceError

USER_ERRORS: tuple[type[Exception], ...] = (DataError, ModelError, SpaceError, SearchError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nextsweep", description=(
        "Hyperparameter search for small sequence models (next location, next category, next vector) under a hard parameter budget."))
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (data, space, sweep, results):  # the order `nextsweep --help` lists them in
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"nextsweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("nextsweep: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
