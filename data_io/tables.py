"""Reading generic staypoint / check-in tables (CSV or Parquet) into plain numpy columns.

A table has one row per stay: who (user), where (location), when it started (a timestamp, or a
day number plus minutes after midnight) and how long (a duration in minutes, or an end time).
Column names are mapped by `Columns`; everything downstream sees a `Staypoints`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from data_io.errors import DataError

CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class Columns:
    """Which column holds what. Set `start` for timestamps, or `day` + `minute` for day numbers."""

    user: str = "user_id"
    location: str = "location_id"
    start: str | None = None  # timestamp of the start
    day: str | None = "start_day"  # integer day number (any origin)
    minute: str | None = "start_min"  # minutes after midnight
    duration: str | None = "duration"  # minutes
    end: str | None = None  # timestamp of the end (with `start`)
    end_day: str | None = None  # with `day`, together with `end_minute`
    end_minute: str | None = None
    weekday: str | None = None  # 0 = Monday; derived from timestamps, else day % 7
    id: str | None = None  # staypoint id (for --valid-ids); default: row number


@dataclass
class Staypoints:
    """One entry per stay, in file order. Times are integer days and minutes after midnight."""

    id: np.ndarray
    user: np.ndarray
    location: np.ndarray
    day: np.ndarray
    minute: np.ndarray
    weekday: np.ndarray
    duration: np.ndarray  # minutes, float64, >= 0

    def __len__(self) -> int:
        return len(self.id)


def read_frame(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; errors name the file and what to do."""
    path = Path(path)
    name = path.name.lower()
    if not path.exists():
        raise DataError(f"{path}: file not found; check the path")
    if not path.is_file():
        raise DataError(f"{path}: not a file; give a CSV or Parquet file")
    try:
        if name.endswith(PARQUET_SUFFIXES):
            frame = pd.read_parquet(path)
        elif name.endswith(CSV_SUFFIXES):
            frame = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
        else:
            raise DataError(
                f"{path}: unknown file type; use {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
            )
    except DataError:
        raise
    except Exception as exc:  # parser errors from pandas / pyarrow
        raise DataError(f"{path}: cannot be read ({type(exc).__name__}: {exc}); give a valid CSV or Parquet file") from None
    if len(frame) == 0:
        raise DataError(f"{path}: the table is empty; give a file with at least one row")
    return frame


def column(frame: pd.DataFrame, path: Path, name: str, option: str) -> pd.Series:
    """Column `name` of `frame`, or one DataError naming the file, the columns it has and `option`."""
    if name not in frame.columns:
        have = ", ".join(map(str, frame.columns[:12]))
        raise DataError(
            f"{path}: column '{name}' not found (columns: {have}); name the right one with {option}"
        )
    return frame[name]


def integer_column(frame: pd.DataFrame, path: Path, name: str, option: str) -> np.ndarray:
    """An integer column: whole numbers with no gaps; floats like 3.0 are accepted."""
    col = column(frame, path, name, option)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{name}' must hold integers, row {row} has {col.iloc[row]!r}; "
            f"fix the value or map another column with {option}"
        )
    return values.astype(np.int64)


def number_column(frame: pd.DataFrame, path: Path, name: str, option: str) -> np.ndarray:
    col = column(frame, path, name, option)
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{name}' must hold numbers, row {row} has {col.iloc[row]!r}; fix the value"
        )
    return values


OFFSET = r"\s*(?:Z|[+-]\d\d:?\d\d)$"  # a UTC offset ending a timestamp's text


def time_column(frame: pd.DataFrame, path: Path, name: str, option: str) -> tuple[pd.Series, pd.Series]:
    """(wall clock, UTC instant) of each timestamp: the time of day as written, offset or zone left
    out (the rhythm of a day is local), and the instant, which durations subtract (offsets that
    differ, as across daylight saving, still compare right). Naive timestamps count as UTC."""
    col = column(frame, path, name, option)
    if pd.api.types.is_numeric_dtype(col):
        raise DataError(f"{path}: column '{name}' holds numbers (row 0 has {col.iloc[0]}), not timestamps; "
                        f"write them as timestamps (2008-10-23 02:53:04) or use --day-col/--minute-col")
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return col.dt.tz_localize(None), col.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_dtype(col):
        return col, col.dt.tz_localize("UTC")
    text = col.astype("string")
    wall = pd.to_datetime(text.str.replace(OFFSET, "", regex=True), errors="coerce", format="mixed")
    instant = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
    bad = (wall.isna() | instant.isna()).to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{name}' must hold timestamps, row {row} has {col.iloc[row]!r}; "
            f"fix the value or use --day-col/--minute-col for day numbers"
        )
    return wall, instant


def _start_times(frame, path, cols: Columns, user: np.ndarray):
    """(day, minute, weekday, start instants or None) from either timestamps or day + minute columns."""
    if cols.start:
        ts, instant = time_column(frame, path, cols.start, "--start-col")
        midnight = ts.dt.normalize()
        epoch_day = ((midnight - pd.Timestamp("1970-01-01")) // pd.Timedelta(days=1)).to_numpy(np.int64)
        first = pd.Series(epoch_day).groupby(user).transform("min").to_numpy()
        day = epoch_day - first
        minute = (ts.dt.hour * 60 + ts.dt.minute).to_numpy(np.int64)
        weekday = ts.dt.day_of_week.to_numpy(np.int64)
        return day, minute, weekday, instant
    if not (cols.day and cols.minute):
        raise DataError(f"{path}: no start time; give --start-col (timestamps) or --day-col and --minute-col")
    day = integer_column(frame, path, cols.day, "--day-col")
    minute = integer_column(frame, path, cols.minute, "--minute-col")
    if (day < 0).any():
        raise DataError(f"{path}: column '{cols.day}' has negative day numbers (row {int(np.argmax(day < 0))}); days must be >= 0")
    out = (minute < 0) | (minute >= 1440)
    if out.any():
        row = int(np.flatnonzero(out)[0])
        raise DataError(f"{path}: column '{cols.minute}' row {row} is {minute[row]}; minutes after midnight must be in 0..1439")
    if cols.weekday:
        weekday = integer_column(frame, path, cols.weekday, "--weekday-col")
        if ((weekday < 0) | (weekday > 6)).any():
            raise DataError(f"{path}: column '{cols.weekday}' must be 0..6 (0 = Monday)")
    else:  # no calendar: a relative weekday still carries the weekly rhythm
        weekday = day % 7
    return day, minute, weekday, None


def _durations(frame, path, cols: Columns, day, minute, start_ts) -> np.ndarray:
    if cols.duration:
        duration = number_column(frame, path, cols.duration, "--duration-col")
        name = cols.duration
    elif cols.end and start_ts is not None:
        end = time_column(frame, path, cols.end, "--end-col")[1]
        duration = ((end - start_ts) / pd.Timedelta(minutes=1)).to_numpy(np.float64)
        name = cols.end
    elif cols.end_day and cols.end_minute:
        end_day = integer_column(frame, path, cols.end_day, "--end-day-col")
        end_min = integer_column(frame, path, cols.end_minute, "--end-minute-col")
        duration = ((end_day - day) * 1440 + end_min - minute).astype(np.float64)
        name = cols.end_day
    else:
        raise DataError(f"{path}: no duration; give --duration-col, --end-col, or --end-day-col and --end-minute-col")
    if (duration < 0).any():
        row = int(np.flatnonzero(duration < 0)[0])
        raise DataError(
            f"{path}: column '{name}' gives a negative duration at row {row} ({duration[row]:g} min); "
            "fix the row, or check that start and end are not swapped"
        )
    return duration


def read_staypoints(path: str | Path, cols: Columns = Columns()) -> Staypoints:
    """Read and check a staypoint table; raise DataError with one clear line on bad input."""
    path = Path(path)
    frame = read_frame(path)
    user = integer_column(frame, path, cols.user, "--user-col")
    location = integer_column(frame, path, cols.location, "--location-col")
    ids = integer_column(frame, path, cols.id, "--id-col") if cols.id else np.arange(len(frame), dtype=np.int64)
    day, minute, weekday, start_ts = _start_times(frame, path, cols, user)
    duration = _durations(frame, path, cols, day, minute, start_ts)
    return Staypoints(ids, user, location, day.astype(np.int64), minute, weekday.astype(np.int64), duration)


def read_id_list(path: str | Path, column: str = "id") -> np.ndarray:
    """A one-column table of integer ids (e.g. the staypoints that may be prediction targets)."""
    path = Path(path)
    frame = read_frame(path)
    if column not in frame.columns and frame.shape[1] == 1:
        column = frame.columns[0]
    return integer_column(frame, path, column, "--valid-ids-col")
