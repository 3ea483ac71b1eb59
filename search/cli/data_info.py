"""What `data info` and every `data prepare` / `data synth` print about a dataset: its DatasetInfo,
one printer per kind (the location task's, the vector datasets' with their data_io.vector_facts)."""

from __future__ import annotations


def print_info(info, facts: dict | None = None, path=None) -> None:
    """`facts` (vector datasets, from data_io.vector_facts: class counts or bank sizes) or the
    dataset's `path` to read them from."""
    printer = {"location": _print_location_info, "category": _print_vector_info, "vector": _print_vector_info}
    printer[info.task](info, facts, path)


def _print_location_info(info, facts: dict | None, path) -> None:
    s = info.split_sizes
    print(f"dataset      {info.name}")
    print(f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}")
    print(f"locations    {info.n_locations:,} classes (0 = padding, 1 = unseen in train)")
    print(f"users        {info.n_users - 1:,}")
    print(f"history      up to {info.max_history} stays")
    print("features     " + ", ".join(f"{k} {v}" for k, v in info.cardinalities.items()))
    print("params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()))
    print(f"source       {info.source}")
    print(f"fingerprint  {info.fingerprint}")


def _print_vector_info(info, facts: dict | None, path) -> None:
    from data_io.targets import target_kind
    from data_io.vector_io import vector_facts
    s = info.split_sizes
    print(f"dataset      {info.name}")
    print(f"task         {info.task}")
    print(f"samples      train {s['train']:,} / val {s['val']:,} / test {s['test']:,}")
    print(f"inputs       vectors of dimension {info.input_dim}, up to {info.max_history} steps")
    for line in target_kind(info.task).describe(info, vector_facts(path) if facts is None and path else facts):
        print(line)
    print(f"groups       {info.n_users - 1:,}")
    print(f"folds        {f'{info.n_folds} grouped folds over train + val' if info.n_folds else 'none'}")
    print("params       " + ", ".join(f"{k}={v}" for k, v in info.params.items()))
    print(f"source       {info.source}")
    print(f"fingerprint  {info.fingerprint}")
