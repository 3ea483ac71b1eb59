"""The dataset a space names: a prepared directory, raw Geolife files, or synthetic settings,
each read for the space's task."""

from __future__ import annotations

from pathlib import Path

from data_io import Dataset, DataError, get_kind, load_dataset, read_info
from spaces.facts import SpaceError
from spaces.schema import Space


def load_space_data(space: Space) -> Dataset:
    """Load (or generate / prepare in memory) the space's dataset; errors name the space file."""
    data = load_data(space.data, space.path, space.task)
    if space.folds and data.info.n_folds != space.folds:
        raise SpaceError(f"{space.path}: folds: {space.folds}, but the dataset has {data.info.n_folds or 'no'} grouped "
                         f"folds; set folds: {data.info.n_folds} (0 = the train/val split) or prepare it with --folds "
                         f"{space.folds}")
    return data


def load_data(spec: dict, where, task: str = "location") -> Dataset:
    """A data reference ({synthetic: settings} | {geolife: DIR} | {path: DIR}) -> the Dataset of
    `task`; errors are SpaceErrors that name `where` (the file holding the reference)."""
    kind, value = next(iter(spec.items()))
    value = value if kind == "synthetic" else Path(value)
    try:
        data = _read(kind, value, task)
    except DataError as exc:
        raise SpaceError(f"{where}: data.{kind}: {exc}") from None
    _check_task(data.info.task, task, f"{where}: data.{kind}: {value}")
    return data


def _check_task(held: str, wanted: str, where: str) -> None:
    if held != wanted:
        raise SpaceError(f"{where} holds a {held} dataset, but the space's task is {wanted}; set task: {held} or "
                         f"name a {wanted} dataset")


def _read(kind: str, value, task: str) -> Dataset:
    """What `synthetic:` and `geolife:` mean is the task's data kind's (data_io.kinds)."""
    return load_dataset(value) if kind == "path" else get_kind(task).read(kind, value)


def load_space_info(space: Space):
    """Only the DatasetInfo (the budget needs class and feature counts, not the samples)."""
    kind, value = next(iter(space.data.items()))
    if kind == "path":
        try:
            info = read_info(value)
        except DataError as exc:
            raise SpaceError(f"{space.path}: data.path: {exc}") from None
        _check_task(info.task, space.task, f"{space.path}: data.path: {value}")
        return info
    return load_space_data(space).info
