"""The one exception type of search: a mistake the user must fix, told in one clear line."""

from __future__ import annotations


class SearchError(Exception):
    """A sweep the user must fix (bad storage URL, study name clash...): one clear line."""
