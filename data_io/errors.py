"""The one exception type a user of data_io can cause."""


class DataError(Exception):
    """Bad input data or options: the message names the file, the column/key, the value and the fix."""
