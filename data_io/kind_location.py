"""The location task's data kind: staypoints cut into per-user histories of location ids and
context codes, stored as Parquet (`dataset`), from tables, the Geolife protocol or the
synthetic staypoint generator."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from data_io.dataset import in_memory, load_location_dataset
from data_io.dataset_types import Dataset, DatasetInfo
from data_io.geolife import GEOLIFE_COLUMNS, GEOLIFE_PARAMS
from data_io.kinds import DataKind
from data_io.prepare import PrepareParams, build_samples
from data_io.synthetic import SynthParams, generate_staypoints, synthesize
from data_io.tables import read_id_list, read_staypoints


class LocationKind(DataKind):
    name = "location"
    synth_keys = ("users", "days", "locations", "seed")

    def load(self, path: Path, info: DatasetInfo) -> Dataset:
        return load_location_dataset(path, info)

    def synthetic(self, settings: dict) -> Dataset:
        p = SynthParams(**settings)
        splits, vocab = build_samples(generate_staypoints(p), PrepareParams(), source="synthetic")
        return in_memory("synthetic", splits, vocab, PrepareParams(), {"synthetic": asdict(p)})

    def geolife(self, folder: Path) -> Dataset:
        sp_file, ids_file = folder / "dataSet_geolife.csv", folder / "valid_ids_geolife.csv"
        splits, vocab = build_samples(read_staypoints(sp_file, GEOLIFE_COLUMNS), GEOLIFE_PARAMS,
                                      read_id_list(ids_file), source=sp_file)
        source = {"preset": "geolife", "staypoints": str(sp_file), "valid_ids": str(ids_file)}
        return in_memory("geolife", splits, vocab, GEOLIFE_PARAMS, source)

    def synthesize(self, out: Path, cli: dict, overwrite: bool = False) -> tuple[DatasetInfo, dict | None]:
        p = SynthParams(cli["users"], cli["days"], cli["locations"], cli["seed"])
        return synthesize(p, out, cli["prepare"], cli.get("table"), overwrite), None

    def describe(self, info: DatasetInfo, facts: dict | None) -> list[str]:
        s = info.split_sizes
        return [f"dataset      {info.name}",
                f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}",
                f"locations    {info.n_classes:,} classes (0 = padding, 1 = unseen in train)",
                f"users        {info.n_groups:,}",
                f"history      up to {info.max_history} stays",
                "features     " + ", ".join(f"{k} {v}" for k, v in info.cardinalities.items()),
                "params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()),
                f"source       {info.source}",
                f"fingerprint  {info.fingerprint}"]

    def headline(self, info: DatasetInfo) -> str:
        return f"{info.n_classes:,} location classes"

