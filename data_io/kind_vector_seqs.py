"""The category and vector tasks' data kinds: sequences of given D-dim vectors (`vector_seqs`),
stored as .npz splits (`vector_seq_files`), their targets per kind (`targets`), from files, events, the
Geolife-derived presets (`geolife_derived`) or the chain generators (`synthetic_vector_seqs`)."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from data_io.dataset_types import Dataset, DatasetInfo
from data_io.errors import DataError
from data_io.geolife_derived import DerivedParams, geolife_category, geolife_vector
from data_io.kinds import DataKind
from data_io.staging import check_output_dir
from data_io.synthetic_vector_seqs import CategorySynthParams, VectorSynthParams, synthetic_category, synthetic_vector
from data_io.targets import facts_at, target_kind
from data_io.vector_seq_files import load_vector_dataset, write_vector_dataset


class VectorsKind(DataKind):
    """What the category and vector kinds share; `params` is the generator's settings type."""

    params: type
    generate = staticmethod(lambda p: None)  # settings -> Dataset

    def __init__(self):
        keys = [f for f in fields(self.params) if f.name != "shares"]  # a tuple: not a YAML scalar
        self.synth_keys = tuple(f.name for f in keys)
        self.synth_floats = tuple(f.name for f in keys if f.type in (float, "float"))

    def load(self, path: Path, info: DatasetInfo) -> Dataset:
        return load_vector_dataset(path, info)

    def synthetic(self, settings: dict) -> Dataset:
        return self.generate(self.params(**settings))

    def synthesize(self, out: Path, cli: dict, overwrite: bool = False) -> tuple[DatasetInfo, dict | None]:
        """--users groups, --days steps per group, --locations items."""
        if cli.get("table"):
            raise DataError("--table: the raw staypoint table exists only for --task location; drop --table")
        p = self.params(groups=cli["users"], steps=cli["days"], items=cli["locations"], dim=cli["dim"],
                        train_frac=cli["train_frac"], val_frac=cli["val_frac"], n_folds=cli["folds"], seed=cli["seed"])
        check_output_dir(Path(out), overwrite)
        ds = self.generate(p)
        return write_vector_dataset(out, ds, overwrite), self.facts(ds)

    def facts(self, ds: Dataset) -> dict | None:
        return target_kind(ds.info.task).facts(ds)

    def facts_at(self, path: Path) -> dict | None:
        return facts_at(path, self.name)

    def describe(self, info: DatasetInfo, facts: dict | None) -> list[str]:
        s = info.split_sizes
        return [f"dataset      {info.name}",
                f"task         {info.task}",
                f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}",
                f"inputs       vectors of dimension {info.input_dim}, up to {info.max_history} steps"
                + ("; each step's class known (history_classes)" if info.history_classes else ""),
                *target_kind(info.task).describe(info, facts),
                f"groups       {info.n_groups:,}",
                f"folds        {f'{info.n_folds} grouped folds over train + val' if info.n_folds else 'none'}",
                "params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()),
                f"source       {info.source}",
                f"fingerprint  {info.fingerprint}"]


class CategoryKind(VectorsKind):
    name = "category"
    params = CategorySynthParams
    generate = staticmethod(synthetic_category)

    def geolife(self, folder: Path) -> Dataset:
        return geolife_category(folder / "dataSet_geolife.csv", folder / "valid_ids_geolife.csv",
                                folder / "locations_geolife.csv", DerivedParams())


class VectorKind(VectorsKind):
    name = "vector"
    params = VectorSynthParams
    generate = staticmethod(synthetic_vector)

    def geolife(self, folder: Path) -> Dataset:
        return geolife_vector(folder / "dataSet_geolife.csv", folder / "valid_ids_geolife.csv", DerivedParams())

    def headline(self, info: DatasetInfo) -> str:
        return f"target vectors of dimension {info.target_dim}"

