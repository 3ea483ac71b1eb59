"""`nextsweep predict`: a retrained model's top-k predictions for one split of its data, as
Parquet (sample_id, target, pred_1..k, score_1..k), so the model is usable, not only measured.
What a prediction is (a location id, a class label, a bank row) is the task's business
(Task.top_k in models/tasks/)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch

from models import build_predictor
from models.tasks import get_task
from search.errors import SearchError
from search.export import read_export, refuse_simulated_export
from search.retrain import torch_threads
from spaces.data import load_data

MODEL_FILE = "best_model.pt"  # what `retrain` writes into its output folder


def default_model(export: str | Path) -> Path:
    """The best_model.pt of `retrain EXPORT` with its default output folder (EXPORT without .yaml)."""
    return Path(export).with_suffix("") / MODEL_FILE


def predict(export: str | Path, out: str | Path, model_path: str | Path | None = None, split: str = "test",
            k: int = 5) -> int:
    """Write the top-k predictions of `split` to `out` (atomically); returns the number of rows."""
    export, out = Path(export), Path(out)
    model_path = Path(model_path) if model_path else default_model(export)
    doc = read_export(export)
    refuse_simulated_export(doc, export, "predict")
    if not model_path.is_file():
        raise SearchError(f"{model_path}: model file not found; run `nextsweep retrain {export}` first or pass --model PATH")
    task = get_task(doc.get("task", "location"))
    data = load_data(doc["data"], export, task.name)
    if doc.get("fingerprint") and data.info.fingerprint != doc["fingerprint"]:
        raise SearchError(f"{export}: fingerprint: the data now differs from the sweep's ({data.info.fingerprint[:12]} vs "
                          f"{doc['fingerprint'][:12]}); predict on the data the model was trained on")
    if split not in data.splits:
        raise SearchError(f"--split {split}: the dataset has {', '.join(data.splits)}")
    model = _load_model(model_path, doc["config"], data.info, export)
    with torch_threads(doc.get("threads")):
        top = task.top_k(model, data, split, k)
    columns = {"sample_id": data[split].sample_id, "target": top["target"]}
    columns.update({f"pred_{i + 1}": top["pred"][:, i] for i in range(k)})
    columns.update({f"score_{i + 1}": top["score"][:, i] for i in range(k)})
    _write_parquet(pa.table(columns), out)
    return len(top["target"])


def _load_model(path: Path, config: dict, info, export: Path) -> torch.nn.Module:
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")  # never unpickle arbitrary objects
    except Exception as exc:  # a truncated file, a pickle with code in it, not a torch file at all
        raise SearchError(f"{path}: not a model saved by `nextsweep retrain` ({_first_line(exc)})") from None
    state = saved.get("state_dict") if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise SearchError(f"{path}: holds no 'state_dict'; pass the best_model.pt that `nextsweep retrain` wrote")
    states = saved.get("fold_states") or [state]  # a k-fold retrain: its folds' ensemble, as retrain measured it
    if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
        raise SearchError(f"{path}: 'fold_states' is not a list of state dicts; pass the best_model.pt that "
                          f"`nextsweep retrain` wrote")
    try:
        return build_predictor(config, info, states)
    except RuntimeError as exc:  # missing / unexpected keys, size mismatches
        detail = [line.strip() for line in str(exc).splitlines()[1:] if line.strip()] or [_first_line(exc)]
        raise SearchError(f"{path}: does not match the config of {export} ({detail[0][:200]}); pass the "
                          f"model that `nextsweep retrain {export}` wrote") from None


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _write_parquet(table: pa.Table, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        pq.write_table(table, tmp)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
