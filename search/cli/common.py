"""Options more than one command group shares: where the study lives (--storage, --storage-file,
--dir, --study) and --set overrides of a space file; `storage` turns the first into a URL."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def storage_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--storage", help="Optuna RDB URL. Where it holds a password use --storage-file or "
                                     "$NEXTSWEEP_STORAGE instead: a command line is visible in ps. Precedence: "
                                     "--storage, --storage-file, $NEXTSWEEP_STORAGE, sqlite:///DIR/nextsweep.db")
    g.add_argument("--storage-file", metavar="PATH", help="read the storage URL from this file "
                                                          "(e.g. ~/.nextsweep_pg_url on the cluster's head)")


def study_options(p: argparse.ArgumentParser) -> None:
    storage_options(p)
    p.add_argument("--dir", default="runs", help="sweep directory holding the default SQLite file (default runs)")
    p.add_argument("--study", help="study name (default: the newest study in the storage)")


def set_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                   help="override a field of the space file, validated like the file (repeatable): a dotted key "
                        "and a YAML value, e.g. --set asha.max_epochs=20, --set budget.max_params=100000, "
                        "--set params.lr.high=0.01, --set params.batch_size=512, "
                        "--set params.family.choices=[gru,transformer]. A --resume must repeat the same --set")


def storage(a: argparse.Namespace) -> str:
    """The storage URL the options name (a warning on stderr where --storage shows a password)."""
    from search.storage import STORAGE_ENV, storage_url
    from search.url_redact import has_password
    if a.storage and has_password(a.storage):  # argv is public: ps, Ray's job entrypoint
        print(f"nextsweep: warning: the password in --storage is visible to other users (ps); "
              f"use --storage-file PATH or ${STORAGE_ENV} instead", file=sys.stderr)
    return storage_url(a.storage, a.storage_file, Path(a.dir))
