"""Writing a dataset directory atomically, for every data kind: refuse an `out` that is not
ours before any work (`check_output_dir`), write into a temp dir beside it (`staged_dir`), and
swap that in (`swap_in`), so `out` never holds a partial dataset. Its own module so the location
format (`dataset`) and the vector format (`vector_seq_files`) share it without importing each other.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from data_io.dataset_types import INFO_FILE, SPLITS
from data_io.errors import DataError


def check_output_dir(out: Path, overwrite: bool) -> None:
    """Refuse before any work: an existing `out` needs --overwrite and must be a dataset of ours."""
    if out.exists() and not overwrite:
        raise DataError(f"{out}: already exists; choose another --out or pass --overwrite")
    if out.exists():
        check_replaceable(out)


@contextmanager
def staged_dir(out: Path):
    """A temp dir beside `out` to write the dataset into; swapped in as `out` when the block ends,
    removed if it fails, so `out` never holds a partial dataset."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def check_replaceable(out: Path) -> None:
    """--overwrite deletes `out`, so it must be a dataset we wrote (or empty), never other files."""
    ours = {INFO_FILE, *(f"{s}{ext}" for s in SPLITS for ext in (".parquet", ".npz")), *(f"bank_{s}.npy" for s in SPLITS)}
    names = {p.name for p in out.iterdir()} if out.is_dir() else {None}
    if not names:
        return
    try:
        written_by_us = names <= ours and "fingerprint" in json.loads((out / INFO_FILE).read_text())
    except (OSError, ValueError, TypeError):
        written_by_us = False
    if not written_by_us:
        raise DataError(f"{out}: not a nextsweep dataset (no {INFO_FILE} or other files in it), so --overwrite "
                        "will not delete it; choose another --out or remove it yourself")


def swap_in(new: Path, out: Path) -> None:
    """Rename `new` to `out`; an old `out` is renamed aside first and deleted only once the new
    one is in place (put back if that fails), so one complete dataset always exists."""
    if not out.exists():
        os.rename(new, out)
        return
    old = out.with_name(new.name + "-old")
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
