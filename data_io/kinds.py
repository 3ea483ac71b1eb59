"""Data kinds: what a task's data is, one object per task name behind `DataKind`, so the rest of
nextsweep asks the kind and never branches on the task's name. A kind knows how to read its
dataset from disk (`load`), how to build it from a space's `synthetic:` settings or a Geolife
folder (`read`), what `nextsweep data synth` writes for it (`synthesize`), and how `data info`
and `space check` describe it (`describe`, `headline`).

The built-in kinds live in `kind_location` (staypoints, Parquet) and `kind_vector_seqs` (category and
vector, .npz); `data_io/__init__` registers them, so they are there whenever data_io is imported. A new
task registers its own kind with `register_kind` (its models side: `models.tasks.register_task`).
"""

from __future__ import annotations

from pathlib import Path

from data_io.dataset_types import Dataset, DatasetInfo, INFO_FILE
from data_io.dataset_types import read_info as read_info_file
from data_io.errors import DataError

SOURCES = ("synthetic", "geolife")  # the data references a kind may build itself (besides path:)


class DataKind:
    """One task's data. Subclasses set `name` (the task name, DatasetInfo.task) and implement
    `load`; the other methods have defaults that refuse with a clear DataError or say little."""

    name: str
    synth_keys: tuple[str, ...] = ()  # the keys a space's `data: {synthetic: {...}}` may set
    synth_floats: tuple[str, ...] = ()  # ... of them, the float ones (the others are ints)

    def load(self, path: Path, info: DatasetInfo) -> Dataset:
        """The dataset at `path`, whose `dataset.json` gave `info`."""
        raise DataError(f"{path}: the {self.name} task has no on-disk format; build its data in memory")

    def synthetic(self, settings: dict) -> Dataset:
        """The dataset a space's `synthetic:` settings (keys from `synth_keys`) describe."""
        raise DataError(f"no synthetic generator for the {self.name} task; name a prepared dataset with path:")

    def geolife(self, folder: Path) -> Dataset:
        """The dataset a space's `geolife: DIR` (the published Geolife files) gives for this task."""
        raise DataError(f"the Geolife files have no {self.name} reading; name a prepared dataset with path:")

    def read(self, source: str, value) -> Dataset:
        """A space's data reference other than path: (`synthetic` or `geolife`)."""
        if source not in SOURCES:
            raise DataError(f"unknown data source {source!r}; use path: or one of {', '.join(SOURCES)}")
        return getattr(self, source)(value)

    def synthesize(self, out: Path, cli: dict, overwrite: bool = False) -> tuple[DatasetInfo, dict | None]:
        """`nextsweep data synth --task NAME`: generate and write the dataset at `out`; returns its
        info and its facts. `cli`: users, days, locations, dim, folds, seed, train_frac, val_frac,
        prepare (a PrepareParams), table (a CSV path or None)."""
        raise DataError(f"--task {self.name}: `data synth` cannot write this task's data; use its own generator")

    def facts(self, ds: Dataset) -> dict | None:
        """Figures `describe` shows beyond the DatasetInfo (class counts, bank sizes), in memory."""
        return None

    def facts_at(self, path: Path) -> dict | None:
        """The same for a dataset on disk, reading only what they need."""
        return None

    def describe(self, info: DatasetInfo, facts: dict | None) -> list[str]:
        """The lines `nextsweep data info` prints about a dataset of this kind."""
        s = info.split_sizes
        return [f"dataset      {info.name}", f"task         {info.task}",
                f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}",
                f"source       {info.source}", f"fingerprint  {info.fingerprint}"]

    def headline(self, info: DatasetInfo) -> str:
        """What `space check` says the targets are, e.g. "400 location classes"."""
        return f"{info.n_classes:,} classes"


KINDS: dict[str, DataKind] = {}


def register_kind(kind: DataKind) -> DataKind:
    """Make `kind` the data of the task `kind.name` (a later registration of the name replaces it)."""
    KINDS[kind.name] = kind
    return kind


def get_kind(task: str, where: str = "task") -> DataKind:
    if task not in KINDS:
        raise DataError(f"{where}: unknown task {task!r} (this nextsweep reads {', '.join(KINDS)}); "
                        "update nextsweep or prepare the dataset again")
    return KINDS[task]


def read_info(path: str | Path) -> DatasetInfo:
    """The DatasetInfo at `path`, whose task must be a registered kind."""
    info = read_info_file(path)
    get_kind(info.task, str(Path(path) / INFO_FILE))
    return info


def load_dataset(path: str | Path) -> Dataset:
    """The dataset at `path`, read in the format of the task its `dataset.json` names."""
    path = Path(path)
    info = read_info(path)
    return get_kind(info.task).load(path, info)
