"""What `data info` and every `data prepare` / `data synth` print about a dataset: its task's data
kind describes it (data_io.kinds: `describe`, with `facts` such as class counts or bank sizes)."""

from __future__ import annotations


def print_info(info, facts: dict | None = None, path=None) -> None:
    """`facts` (from the kind's `facts`: class counts or bank sizes) or the dataset's `path` to
    read them from."""
    from data_io import get_kind
    kind = get_kind(info.task)
    for line in kind.describe(info, kind.facts_at(path) if facts is None and path else facts):
        print(line)
