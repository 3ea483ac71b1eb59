"""The dataset a space names: a prepared directory, raw Geolife files, or synthetic settings."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from data_io import Dataset, DataError, PrepareParams, load_dataset
from data_io.dataset import in_memory
from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
from data_io.prepare import build_samples
from data_io.synthetic import SynthParams, generate_staypoints
from data_io.tables import read_id_list, read_staypoints
from spaces.schema import Space, SpaceError


def load_space_data(space: Space) -> Dataset:
    """Load (or generate / prepare in memory) the space's dataset; errors name the space file."""
    return load_data(space.data, space.path)


def load_data(spec: dict, where) -> Dataset:
    """A data reference ({synthetic: settings} | {geolife: DIR} | {path: DIR}) -> Dataset;
    errors are SpaceErrors that name `where` (the file holding the reference)."""
    kind, value = next(iter(spec.items()))
    value = value if kind == "synthetic" else Path(value)
    try:
        if kind == "synthetic":
            p = SynthParams(**value)
            splits, vocab = build_samples(generate_staypoints(p), PrepareParams(), source="synthetic")
            return in_memory("synthetic", splits, vocab, PrepareParams(), {"synthetic": asdict(p)})
        if kind == "geolife":
            sp_file, ids_file = value / "dataSet_geolife.csv", value / "valid_ids_geolife.csv"
            splits, vocab = build_samples(read_staypoints(sp_file, GEOLIFE_COLUMNS), GEOLIFE_PARAMS,
                                          read_id_list(ids_file), source=sp_file)
            source = {"preset": "geolife", "staypoints": str(sp_file), "valid_ids": str(ids_file)}
            return in_memory("geolife", splits, vocab, GEOLIFE_PARAMS, source)
        return load_dataset(value)
    except DataError as exc:
        raise SpaceError(f"{where}: data.{kind}: {exc}") from None


def load_space_info(space: Space):
    """Only the DatasetInfo (the budget needs class and feature counts, not the samples)."""
    kind, value = next(iter(space.data.items()))
    if kind == "path":
        from data_io import read_info
        try:
            return read_info(value)
        except DataError as exc:
            raise SpaceError(f"{space.path}: data.path: {exc}") from None
    return load_space_data(space).info
