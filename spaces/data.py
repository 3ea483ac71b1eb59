"""The dataset a space names: a prepared directory, raw Geolife files, or synthetic settings,
each read for the space's task."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from data_io import Dataset, DataError, PrepareParams, load_dataset
from data_io.dataset import in_memory
from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
from data_io.geolife_derived import DerivedParams, geolife_category, geolife_vector
from data_io.prepare import build_samples
from data_io.synthetic import SynthParams, generate_staypoints
from data_io.synthetic_vectors import CategorySynthParams, VectorSynthParams, synthetic_category, synthetic_vector
from data_io.tables import read_id_list, read_staypoints
from spaces.schema import Space, SpaceError


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


def _synthetic_location(settings: dict) -> Dataset:
    p = SynthParams(**settings)
    splits, vocab = build_samples(generate_staypoints(p), PrepareParams(), source="synthetic")
    return in_memory("synthetic", splits, vocab, PrepareParams(), {"synthetic": asdict(p)})


def _geolife_location(folder: Path) -> Dataset:
    sp_file, ids_file = folder / "dataSet_geolife.csv", folder / "valid_ids_geolife.csv"
    splits, vocab = build_samples(read_staypoints(sp_file, GEOLIFE_COLUMNS), GEOLIFE_PARAMS,
                                  read_id_list(ids_file), source=sp_file)
    source = {"preset": "geolife", "staypoints": str(sp_file), "valid_ids": str(ids_file)}
    return in_memory("geolife", splits, vocab, GEOLIFE_PARAMS, source)


# What `synthetic:` and `geolife:` mean for each task: one row per task, so a new task adds a row.
READERS = {
    "location": {"synthetic": _synthetic_location, "geolife": _geolife_location},
    "category": {"synthetic": lambda s: synthetic_category(CategorySynthParams(**s)),
                 "geolife": lambda d: geolife_category(d / "dataSet_geolife.csv", d / "valid_ids_geolife.csv",
                                                       d / "locations_geolife.csv", DerivedParams())},
    "vector": {"synthetic": lambda s: synthetic_vector(VectorSynthParams(**s)),
               "geolife": lambda d: geolife_vector(d / "dataSet_geolife.csv", d / "valid_ids_geolife.csv", DerivedParams())},
}


def _read(kind: str, value, task: str) -> Dataset:
    return load_dataset(value) if kind == "path" else READERS[task][kind](value)


def load_space_info(space: Space):
    """Only the DatasetInfo (the budget needs class and feature counts, not the samples)."""
    kind, value = next(iter(space.data.items()))
    if kind == "path":
        from data_io import read_info
        try:
            info = read_info(value)
        except DataError as exc:
            raise SpaceError(f"{space.path}: data.path: {exc}") from None
        _check_task(info.task, space.task, f"{space.path}: data.path: {value}")
        return info
    return load_space_data(space).info
