"""`nextsweep status` and `nextsweep dashboard`."""

from __future__ import annotations


from search.storage import load_study, open_storage, redact
from search.sweep import tally


def print_status(storage_url: str, study_name: str | None) -> None:
    study = load_study(storage_url, study_name)
    c = tally(study)
    cpu = sum(t.user_attrs.get("cpu_s", 0.0) for t in study.get_trials(deepcopy=False))
    print(f"study      {study.study_name}  ({redact(storage_url)})")
    print(f"space      {study.user_attrs.get('space_name')}  budget {study.user_attrs.get('budget') or 'none'}")
    print("trials     " + ", ".join(f"{v} {k}" for k, v in c.items()))
    print(f"cpu time   {cpu / 60:.1f} CPU-minutes in trials")
    try:
        best = study.best_trial
    except ValueError:
        print("best       no complete trial yet")
        return
    print(f"best       trial {best.number}: {study.user_attrs.get('metric', 'value')} {best.value:.4f}, "
          f"{best.user_attrs.get('n_params', 0):,} parameters, best epoch {best.user_attrs.get('best_epoch')}")
    width = {k: v for k, v in best.user_attrs.items() if k == "d_model"}
    for k, v in {**width, **best.params}.items():
        print(f"  {k:<16} {v}")


def run_dashboard(storage_url: str, host: str, port: int) -> None:
    """Serve optuna-dashboard on `host` (loopback by default) until interrupted."""
    import optuna_dashboard
    storage = open_storage(storage_url)
    print(f"optuna-dashboard for {redact(storage_url)} at http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    optuna_dashboard.run_server(storage, host=host, port=port)
