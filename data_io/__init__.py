"""Reading mobility tables, the Geolife protocol, synthetic data, the dataset format, batches;
vector datasets (category / vector tasks: `vector_seqs`, their files `vector_seq_files` and `columns`, what
each task's target is `targets`), and grouped splits and folds.

Layout, lowest first: `dataset_types` (split names, DatasetInfo, SplitArrays, Dataset, reading
`dataset.json`), `staging` (atomic directory writing), then each task's on-disk format: `dataset`
(location, Parquet) and `vector_seq_files` (category / vector, .npz). Each task's data is one data kind
(`kinds`: the registry, `load_dataset`, `read_info`), the built-in ones in `kind_location` and
`kind_vector_seqs`, registered here, so whenever data_io is imported.
"""

from data_io.dataset_types import SPLITS, Dataset, DatasetInfo, SplitArrays
from data_io.errors import DataError
from data_io.kinds import DataKind, get_kind, load_dataset, read_info, register_kind
from data_io.folds import fold_view, grouped_folds, grouped_split
from data_io.kind_location import LocationKind
from data_io.kind_vector_seqs import CategoryKind, VectorKind
from data_io.prepare import SEQ_FEATURES, PrepareParams
from data_io.vector_seq_files import (EventColumns, VectorColumns, events_from_files, vector_facts,
                               vectors_from_files, write_vector_dataset)
from data_io.vector_seqs import Events, VectorParams, VectorSamples, events_dataset, vector_dataset

for _kind in (LocationKind(), CategoryKind(), VectorKind()):  # the built-in data kinds, in this order
    register_kind(_kind)

__all__ = ["Dataset", "DatasetInfo", "SplitArrays", "load_dataset", "read_info", "DataError",
           "DataKind", "get_kind", "register_kind",
           "SEQ_FEATURES", "SPLITS", "PrepareParams",
           "fold_view", "grouped_folds", "grouped_split",
           "EventColumns", "VectorColumns", "events_from_files", "vector_facts", "vectors_from_files",
           "write_vector_dataset", "Events", "VectorParams", "VectorSamples", "events_dataset", "vector_dataset"]
