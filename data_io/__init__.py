"""Reading mobility tables, the Geolife protocol, synthetic data, the dataset format, batches;
vector datasets (category / vector tasks: `vectors`, their files `vector_io` and `columns`, what
each task's target is `targets`), and grouped splits and folds.

Layout, lowest first: `dataset_types` (split names, DatasetInfo, SplitArrays, Dataset,
`read_info`), `staging` (atomic directory writing), then each task's on-disk format: `dataset`
(location, Parquet) and `vector_io` (category / vector, .npz). `load_dataset` sits here, above
both formats, so neither imports the other.
"""

from pathlib import Path

from data_io.dataset import load_location_dataset
from data_io.dataset_types import SPLITS, Dataset, DatasetInfo, SplitArrays, read_info
from data_io.errors import DataError
from data_io.folds import fold_view, grouped_folds, grouped_split
from data_io.prepare import SEQ_FEATURES, PrepareParams
from data_io.vector_io import (EventColumns, VectorColumns, events_from_files, load_vector_dataset, vector_facts,
                               vectors_from_files, write_vector_dataset)
from data_io.vectors import Events, VectorParams, VectorSamples, events_dataset, vector_dataset


def load_dataset(path: str | Path) -> Dataset:
    """The dataset at `path`, read in the format of the task its `dataset.json` names."""
    path = Path(path)
    info = read_info(path)
    if info.task != "location":  # given per-step vectors: .npz splits (data_io.vector_io)
        return load_vector_dataset(path, info)
    return load_location_dataset(path, info)


__all__ = ["Dataset", "DatasetInfo", "SplitArrays", "load_dataset", "read_info", "DataError",
           "SEQ_FEATURES", "SPLITS", "PrepareParams",
           "fold_view", "grouped_folds", "grouped_split",
           "EventColumns", "VectorColumns", "events_from_files", "vector_facts", "vectors_from_files",
           "write_vector_dataset", "Events", "VectorParams", "VectorSamples", "events_dataset", "vector_dataset"]
