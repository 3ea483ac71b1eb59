"""Files and Arrow columns to checked numpy arrays (vector datasets): .npy / .npz read without
pickle, Parquet list columns turned into padded cubes and matrices with no per-row Python, and
the NaN / length / type checks, each failing with one line that names the file and column."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from data_io.errors import DataError
from data_io.tables import CSV_SUFFIXES, PARQUET_SUFFIXES

VECTOR_SUFFIXES = PARQUET_SUFFIXES + (".npy", ".npz")


def load_npy(file: Path) -> np.ndarray:
    if not file.is_file():
        raise DataError(f"{file}: missing file; prepare the dataset again")
    try:
        return np.load(file, allow_pickle=False)
    except ValueError:
        raise DataError(f"{file}: holds Python objects, which nextsweep never unpickles; save a plain numeric array") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{file}: cannot be read ({exc}); give a valid .npy file") from None



def load_npz(file: Path, fix: str = "give a valid .npz file") -> dict[str, np.ndarray]:
    if not file.is_file():
        raise DataError(f"{file}: file not found; {fix}")
    try:
        with np.load(file, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError:  # an object array: loading it would unpickle
        raise DataError(f"{file}: holds Python objects, which nextsweep never unpickles; save plain numeric or "
                        "string arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file}: cannot be read ({exc}); {fix}") from None



def check_lengths(lengths: np.ndarray, file: Path, col: str, width: int | None = None) -> None:
    if (lengths < 1).any():
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(lengths < 1))} is an empty sequence; every "
                        "sample needs at least one vector, drop those rows")
    if width is not None and (lengths > width).any():
        raise DataError(f"{file}: 'lengths' row {int(np.argmax(lengths > width))} exceeds the {width} steps of "
                        f"'{col}'; fix the lengths")



def check_finite(values: np.ndarray, file: Path, col: str) -> None:
    bad = ~np.isfinite(values).reshape(len(values), -1).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(bad))} holds NaN or inf ({int(bad.sum())} rows "
                        "do); clean or drop those rows")



def is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)



def list_lengths(arr: pa.Array) -> np.ndarray:
    return pc.list_value_length(arr).to_numpy(zero_copy_only=False).astype(np.int64)



def floats(arr: pa.Array, file: Path, col: str) -> np.ndarray:
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' holds missing (null) values; fill or drop those rows")
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
        raise DataError(f"{file}: column '{col}' must hold numbers, it holds {arr.type}; fix the column")
    return arr.to_numpy(zero_copy_only=False).astype(np.float32)



def sequences(arr: pa.Array, file: Path, col: str, dim: int | None,
              max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A list<list<float>> column (or list<float> with `dim` floats per step) -> right-padded
    float32 [N, L, D] and lengths; with `max_steps`, each sequence's last `max_steps` steps."""
    if not is_list(arr.type):
        raise DataError(f"{file}: column '{col}' must hold a list of vectors (list<list<float>>), or a flat list "
                        f"of floats with --dim; it holds {arr.type}")
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' row {int(np.argmax(arr.is_null().to_numpy(zero_copy_only=False)))} "
                        "is missing; drop the row")
    if is_list(arr.type.value_type):
        lengths = list_lengths(arr)
        steps = matrix(arr.flatten(), file, col, rows=np.repeat(np.arange(len(arr)), lengths))
        if dim is not None and steps.shape[1] != dim:
            raise DataError(f"{file}: column '{col}' holds vectors of dimension {steps.shape[1]}, not --dim {dim}")
    else:
        if not dim:
            raise DataError(f"{file}: column '{col}' is a flat list of floats; give --dim D (floats per step), or "
                            "store a list of vectors")
        flat = list_lengths(arr)
        if (flat % dim).any():
            row = int(np.argmax(flat % dim))
            raise DataError(f"{file}: column '{col}' row {row} has {flat[row]} floats, not a multiple of --dim {dim}; "
                            "every step needs exactly D floats")
        lengths = flat // dim
        steps = floats(arr.flatten(), file, col).reshape(-1, dim)
    check_lengths(lengths, file, col)
    if max_steps is not None:  # before the cube: one long sequence must not size it
        steps, lengths = last_steps(steps, lengths, max_steps)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    check_finite_steps(steps, rows, file, col)
    check_fits(file, col, (len(lengths), int(lengths.max()), steps.shape[1]))
    x = np.zeros((len(lengths), int(lengths.max()), steps.shape[1]), dtype=np.float32)
    x[rows, np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)] = steps
    return x, lengths



def last_steps(steps: np.ndarray, lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps stored sequence after sequence -> each sequence's last `cap` ones (the newest history)."""
    from_end = np.repeat(np.cumsum(lengths), lengths) - np.arange(len(steps))  # 1 at a sequence's last step
    return steps[from_end <= cap], np.minimum(lengths, cap)


def last_padded(x: np.ndarray, lengths: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded [N, L, D] -> each sequence's last `cap` steps, right-padded [N, min(L, cap), D]."""
    width = min(cap, x.shape[1])
    at = np.maximum(lengths - cap, 0)[:, None] + np.arange(width)[None, :]  # < L: short rows keep their padding
    return np.take_along_axis(x, at[:, :, None], axis=1), np.minimum(lengths, cap)


def check_fits(file: Path, col: str, shape: tuple[int, int, int]) -> None:
    """Refuse a float32 cube larger than the memory left, before numpy fails with a traceback."""
    need, free = 4 * shape[0] * shape[1] * shape[2], available_memory()
    if free is not None and need > free:
        raise DataError(f"{file}: column '{col}' pads to {' x '.join(f'{v:,}' for v in shape)} float32 "
                        f"({need / 2**30:.1f} GiB; the longest sequence has {shape[1]:,} steps), more than the "
                        f"{free / 2**30:.1f} GiB of memory available; keep each sequence's last steps with "
                        "--max-history N")


def available_memory() -> int | None:
    """Bytes still free for this process: the kernel's MemAvailable (free pages + reclaimable cache,
    else the free pages alone), within a cgroup v2 memory limit where one is set; None if unknown."""
    free = _meminfo_available()
    if free is None and hasattr(os, "sysconf"):
        try:
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            pass
    limit = _cgroup_room()
    return limit if free is None else free if limit is None else min(free, limit)


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            line = next((line for line in f if line.startswith("MemAvailable:")), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def _cgroup_room() -> int | None:
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
    except OSError:
        return None
    return max(int(limit) - int(used), 0) if limit.isdigit() and used.isdigit() else None


def check_finite_steps(steps: np.ndarray, rows: np.ndarray, file: Path, col: str) -> None:
    bad = ~np.isfinite(steps).all(axis=1)
    if bad.any():
        raise DataError(f"{file}: column '{col}' row {int(rows[np.argmax(bad)])} holds NaN or inf; clean or drop "
                        "those rows")



def matrix(arr: pa.Array, file: Path, col: str, rows: np.ndarray | None = None) -> np.ndarray:
    """A list<float> column of equal-length vectors -> float32 [N, D]. `rows` maps entries to
    the file's rows (for a flattened list of vectors)."""
    if not is_list(arr.type):
        raise DataError(f"{file}: column '{col}' must hold vectors (list<float>), it holds {arr.type}")
    if arr.null_count:
        raise DataError(f"{file}: column '{col}' holds missing (null) vectors; drop those rows")
    sizes = list_lengths(arr)
    if len(sizes) and (sizes != sizes[0]).any():
        i = int(np.argmax(sizes != sizes[0]))
        row = i if rows is None else int(rows[i])
        raise DataError(f"{file}: column '{col}' mixes vector lengths ({sizes[0]} and {sizes[i]}, row {row}); "
                        "every vector needs the same dimension")
    values = floats(arr.flatten(), file, col).reshape(len(arr), -1 if len(arr) else 0)
    if rows is None:
        check_finite(values, file, col)
    return values



def scalars(col: pa.ChunkedArray, file: Path, name: str) -> np.ndarray:
    if col.null_count:
        row = int(np.argmax(col.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(f"{file}: column '{name}' row {row} is missing; fill or drop the row")
    if is_list(col.type):
        raise DataError(f"{file}: column '{name}' must hold one value per row, it holds {col.type}")
    return col.to_numpy()



def read_parquet(file: Path) -> pa.Table:
    try:
        table = pq.read_table(file)
    except Exception as exc:  # pyarrow's parser errors
        raise DataError(f"{file}: cannot be read ({type(exc).__name__}: {exc}); give a valid Parquet file") from None
    if table.num_rows == 0:
        raise DataError(f"{file}: the table is empty; give a file with at least one row")
    return table



def file_kind(file: Path, allowed: tuple[str, ...]) -> str:
    """The file's type among `allowed` ('.parquet' for any Parquet suffix, '.csv' for any CSV one)."""
    if not file.is_file():
        raise DataError(f"{file}: file not found; check the path")
    name = file.name.lower()
    for suffix in allowed:
        if name.endswith(suffix):
            return ".parquet" if suffix in PARQUET_SUFFIXES else ".csv" if suffix in CSV_SUFFIXES else suffix
    raise DataError(f"{file}: unknown file type; use {', '.join(allowed)}")



def comparable(values: np.ndarray) -> np.ndarray:
    """Whole numbers as int64, anything else as str (so ids read from CSV and Parquet match)."""
    if values.dtype.kind in "iub":
        return values.astype(np.int64)
    if values.dtype.kind == "f" and np.isfinite(values).all() and (values == np.round(values)).all():
        return values.astype(np.int64)
    return values.astype(str)


def read_vectors(file: str | Path, col: str = "vector", what: str = "vectors") -> np.ndarray:
    """Float32 [M, D] from .npy, .npz ('vectors') or a Parquet list<float> column `col`."""
    file = Path(file)
    kind = file_kind(file, VECTOR_SUFFIXES)
    if kind == ".parquet":
        table = read_parquet(file)
        if col not in table.column_names:
            raise DataError(f"{file}: column '{col}' not found (columns: {', '.join(table.column_names[:12])}); "
                            f"name the column of {what}")
        return matrix(table.column(col).combine_chunks(), file, col)
    z = {"vectors": load_npy(file)} if kind == ".npy" else load_npz(file)
    if "vectors" not in z:
        raise DataError(f"{file}: no array 'vectors' (arrays: {', '.join(z)}); save the {what} as 'vectors'")
    values = z["vectors"]
    if values.ndim != 2 or values.dtype.kind not in "fiu" or not len(values):
        raise DataError(f"{file}: {what} must be numbers of shape [M, D], got {values.dtype} {values.shape}")
    values = values.astype(np.float32)
    check_finite(values, file, "vectors")
    return values
