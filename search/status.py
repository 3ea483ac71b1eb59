"""`nextsweep status`: what a study holds, in a few lines."""

from __future__ import annotations

from search import ranking
from search.baselines import baseline_lines, margin_line
from search.outcomes import study_tally
from search.storage import load_study
from search.study_reads import whole_trials
from search.study_record import read
from search.summary import SIMULATED_LINE, confirmed_text, tally_line, then_text
from search.url_redact import redact


def print_status(storage_url: str, study_name: str | None) -> None:
    study = load_study(storage_url, study_name)
    meta = read(study)
    c, cpu = study_tally(study)
    print(f"study      {study.study_name}  ({redact(storage_url)})")
    print(f"space      {meta.space_name}  task {meta.task}  budget {meta.budget or 'none'}")
    if meta.simulated:
        print(SIMULATED_LINE)
    print("trials     " + tally_line(c))
    print(f"cpu time   {cpu / 60:.1f} CPU-minutes in trials")
    top = ranking.ranked(study, complete=ranking.complete_showing(study))  # as export ranks it
    _print_baselines(meta.baselines or {}, meta.metric, top)
    if not top:
        print("best       no complete trial yet")
        return
    best, metric = whole_trials(study, top[:1])[0], meta.metric
    print(f"best       trial {best.number}: {metric} {best.value:.4f}"
          f"{then_text(best, list(meta.then), metric)}, "
          f"{best.user_attrs.get('n_params', 0):,} parameters, best epoch {best.user_attrs.get('best_epoch')}")
    if ranking.confirmation(best, metric):
        print(f"confirmed  {metric} {confirmed_text(best, metric)} seeds (validation)")
    width = {k: v for k, v in best.user_attrs.items() if k == "d_model"}
    for k, v in {**width, **best.params}.items():
        print(f"  {k:<16} {v}")


def _print_baselines(baselines: dict, metric: str, complete: list) -> None:
    """The study's no-search baselines and how far the best trial is past them."""
    for i, line in enumerate(baseline_lines(baselines, metric)):
        print(f"{'baselines' if i == 0 else '':<10} {line}")
    margin = margin_line(baselines, metric, complete)
    if margin:
        print(f"{'':<10} {margin}")
