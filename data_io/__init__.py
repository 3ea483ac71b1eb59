"""Reading mobility tables, the Geolife protocol, synthetic data, the dataset format, batches;
vector datasets (category / vector tasks: `vectors`, their files `vector_io` and `columns`, what
each task's target is `targets`), and grouped splits and folds."""

from data_io.dataset import Dataset, DatasetInfo, SplitArrays, load_dataset, read_info
from data_io.errors import DataError
from data_io.folds import fold_view, grouped_folds, grouped_split
from data_io.prepare import SEQ_FEATURES, SPLITS, PrepareParams
from data_io.vector_io import (EventColumns, VectorColumns, events_from_files, vector_facts, vectors_from_files,
                               write_vector_dataset)
from data_io.vectors import Events, VectorParams, VectorSamples, events_dataset, vector_dataset

__all__ = ["Dataset", "DatasetInfo", "SplitArrays", "load_dataset", "read_info", "DataError",
           "SEQ_FEATURES", "SPLITS", "PrepareParams",
           "fold_view", "grouped_folds", "grouped_split",
           "EventColumns", "VectorColumns", "events_from_files", "vector_facts", "vectors_from_files",
           "write_vector_dataset", "Events", "VectorParams", "VectorSamples", "events_dataset", "vector_dataset"]
