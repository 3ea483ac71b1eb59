"""The sweep's summary on the console (ranked trials, best, commands to paste, warnings) and the
one-line texts of a study and its trials (tally, config, confirmed mean, tie-breaks) that status,
confirm, the CLI and the report print. No Ray."""

from __future__ import annotations

import json
import shlex
import sys

import optuna
from optuna.trial import FrozenTrial

from search.advice import sweep_warnings
from search.baselines import margin_line
from search.outcomes import tally
from search.ranking import confirmation, ranked, then_value
from search.url_redact import has_password, redact
from search.study_record import read


SIMULATED_LINE = "simulated  the trials trained nothing (sweep --simulate): their values are a stand-in curve"


def tally_line(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())


def print_summary(study: optuna.Study, storage_url: str, top: int = 5) -> None:
    print()
    print(f"study      {study.study_name}")
    print(f"storage    {redact(storage_url)}")
    meta = read(study)
    if meta.simulated:
        print(SIMULATED_LINE)
    print("trials     " + tally_line(tally(study.get_trials(deepcopy=False))))
    name = shlex.quote(study.study_name)  # the commands below are pasted into a shell
    done = ranked(study)
    metric, then = meta.metric, list(meta.then)
    confirmed = any(confirmation(t, metric) for t in done[:top])
    if done:
        print(f"\n{'trial':>5}  {metric:>9}  " + "".join(f"{m:>9}  " for m in then)
              + (f"{'confirmed':>20}  " if confirmed else "") + f"{'params':>9}  {'epoch':>5}  config")
        for t in done[:top]:
            cfg = config_text(t)
            extra = "".join(f"{num_text(then_value(t, m, metric, False)):>9}  " for m in then)
            extra += f"{confirmed_text(t, metric):>20}  " if confirmed else ""
            print(f"{t.number:>5}  {t.value:>9.4f}  {extra}{t.user_attrs.get('n_params', 0):>9,}  "
                  f"{t.user_attrs.get('best_epoch', '-'):>5}  {cfg}")
        best = done[0]
        print(f"\nbest       trial {best.number}: {metric} {best.value:.4f}{then_text(best, then, metric)} with "
              f"{best.user_attrs.get('n_params', 0):,} parameters, best epoch {best.user_attrs.get('best_epoch')}")
        print("config     " + ", ".join(f"{k}={short(v)}" for k, v in json.loads(best.user_attrs["config"]).items()))
    margin = margin_line(meta.baselines or {}, metric, done)
    if margin:  # right under the winner: whether it beats the rules that need no search
        print(f"baseline   {margin}")
    if done:
        print(f"export     nextsweep export {_storage_arg(storage_url)} --study {name} --top 3 --out exports/")
    print(f"dashboard  nextsweep dashboard {_storage_arg(storage_url)}")
    print(f"report     nextsweep report {_storage_arg(storage_url)} --study {name} --out report.html")
    print_warnings(study)
    sys.stdout.flush()


def print_warnings(study: optuna.Study) -> None:
    found = sweep_warnings(study)
    if found:
        print("\nwarnings (the sweep may be mis-set)")
        for line in found:
            print(f"  - {line}")


def _storage_arg(url: str) -> str:
    """A storage option the user can paste: never the password, never a redacted URL."""
    return "--storage-file PATH (or $NEXTSWEEP_STORAGE)" if has_password(url) else f"--storage '{url}'"


def then_text(t: FrozenTrial, then: list[str], metric: str | None) -> str:
    """' (val_acc1 0.4512, val_mrr 0.5530)': the tie-breaking metrics of one run, for a summary line."""
    shown = [f"{m} {num_text(then_value(t, m, metric, False))}" for m in then]
    return f" ({', '.join(shown)})" if shown else ""


def confirmed_text(t: FrozenTrial, metric: str | None) -> str:
    """'0.7812 +- 0.0031 (5)': the confirmed mean +- std over its seeds, or '-'."""
    c = confirmation(t, metric)
    return f"{c['mean']:.4f} +- {c['std']:.4f} ({len(c['values'])})" if c else "-"


def num_text(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def sampled_text(t: FrozenTrial) -> str:
    """The sampler's choices of a trial (the width's position `*_frac` left out)."""
    return ", ".join(f"{k}={short(v)}" for k, v in t.params.items() if not k.endswith("_frac"))


def config_text(t: FrozenTrial) -> str:
    """The trained width first (e.g. d_model=48), then the sampler's choices."""
    width = [f"{k}={t.user_attrs[k]}" for k in ("d_model",) if k in t.user_attrs]
    return ", ".join([*width, sampled_text(t)])
