"""Reading mobility tables, the Geolife protocol, synthetic data, the dataset format, batches."""

from data_io.dataset import Dataset, DatasetInfo, SplitArrays, load_dataset, read_info
from data_io.errors import DataError
from data_io.prepare import SEQ_FEATURES, SPLITS, PrepareParams

__all__ = ["Dataset", "DatasetInfo", "SplitArrays", "load_dataset", "read_info", "DataError",
           "SEQ_FEATURES", "SPLITS", "PrepareParams"]
