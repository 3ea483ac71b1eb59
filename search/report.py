"""`nextsweep report`: one self-contained HTML page reviewing a sweep (settings, outcomes, curves,
size against objective, importances, the top trials with their confirmed and retrained figures).

The plots are Plotly figures (Optuna's own where one fits); Plotly's JavaScript is embedded once,
so the page opens offline. The page is written to a temporary file and renamed into place.
What the page says is here; its HTML (sections, tables, escaping) is in search.report_html.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState

from search.advice import sweep_warnings
from search.asha import asha_text, rungs  # ASHA's rungs, computed as the sweep checkpoints at them
from search.baselines import beats_bar, margin_line
from search.outcomes import outcome, study_tally
from search.ranking import complete_showing, ranked
from search.report_html import Page, duration, esc, num, shown, table
from search.report_plots import best_so_far, curves, importances, parallel, pareto, view_study
from search.errors import SearchError
from search.storage import load_study
from search.study_reads import time_span, trials_showing, whole_trials
from search.study_record import StudyMeta, read
from search.summary import sampled_text
from search.url_redact import redact



def write_report(storage_url: str, study_name: str | None, out: str | Path, exports: str | Path | None = None,
                 top: int = 10) -> Path:
    """Write the report of a study to `out` (atomically); returns the path."""
    if top < 1:
        raise SearchError(f"--top {top}: must be >= 1")
    study = load_study(storage_url, study_name)
    retrained = read_retrained(exports, study.study_name) if exports else {}
    page = build_html(study, redact(storage_url), retrained, top)
    out = Path(out)
    if out.is_dir():
        raise SearchError(f"--out {out}: is a folder; give a file name such as {out / 'report.html'}")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        raise SearchError(f"--out {out}: cannot write it ({exc.strerror}); choose a writable place") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_retrained(folder: str | Path, study_name: str) -> dict[int, dict]:
    """retrain.json files under `folder` (written by `nextsweep retrain`) of this study, by trial number.
    The study and trial come from the export YAML each one names (or the YAML beside its folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SearchError(f"--exports {folder}: not a folder; give the folder `nextsweep export --out` wrote")
    found = {}
    for path in sorted(folder.rglob("retrain.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise SearchError(f"{path}: not a readable retrain.json ({exc}); retrain again or remove it") from None
        export = _export_of(doc, path)
        if export.get("study") == study_name and isinstance(export.get("trial"), int):
            found[export["trial"]] = doc
    return found


def _export_of(doc: dict, path: Path) -> dict:
    if "study" in doc and "trial" in doc:
        return doc
    for yml in (Path(str(doc.get("export", ""))), path.parent.with_suffix(".yaml")):
        if yml.is_file():
            try:
                meta = yaml.safe_load(yml.read_text())
            except yaml.YAMLError:
                continue
            if isinstance(meta, dict):
                return meta
    return {}


def build_html(study: optuna.Study, storage: str, retrained: dict[int, dict], top: int = 10) -> str:
    meta = read(study)
    metric = meta.metric
    # 50,000 trials read whole took 4.6 s: of the COMPLETE ones what ranked() and the size plot read;
    # the trials it draws or lists it reads whole (search/study_reads.py)
    complete = complete_showing(study, ("n_params",))
    done = ranked(study, complete=complete)
    counts, cpu = study_tally(study)
    p = Page()
    p.add(f"<h1>Sweep report: {esc(study.study_name)}</h1>")
    verdict = margin_line(meta.baselines or {}, metric, done)
    if verdict:  # first: a model is only better than the rules that need no search when it beats them
        p.section("Against the no-search baselines")
        beaten = beats_bar(meta.baselines or {}, metric, done)
        p.add(f'<p class="{"note" if beaten else "warn"}">{esc(verdict)}</p>')
    p.section("Settings")
    p.add(table(["setting", "value"], _settings(study, meta, storage, cpu)))
    p.section("Warnings")
    found = sweep_warnings(study, counts, complete)
    p.add("<ul>" + "".join(f'<li class="warn">{esc(w)}</li>' for w in found) + "</ul>" if found
          else '<p class="note">none: the sweep looks well set (or holds too few complete trials to judge)</p>')
    p.section("Trials by outcome")
    p.add(table(["outcome", "trials"], [(k.replace("_", " "), v) for k, v in counts.items()]
                 + [("total", sum(counts.values()))]))
    if counts["failed"]:
        p.section("Why trials failed")
        p.add(table(["error (its last line)", "trials", "which"], _failures(study)))
    p.section("Best so far, with the reference baselines")
    best_so_far(p, study, meta.baselines, metric, done)
    p.section("Learning curves (per-epoch objective) by outcome, with ASHA's rungs")
    curves(p, study, meta.asha, metric)
    p.section("Objective against parameter count; the Pareto front (best model at each size)")
    pareto(p, study, meta.budget, metric, done)
    view = view_study(study, meta, done)
    p.section("Parameter importances")
    importances(p, view, metric, done)
    p.section("Parallel coordinates")
    parallel(p, view, metric, done)
    p.section(f"Top {min(top, len(done))} trials, ranked as `nextsweep export` ranks them")
    _top_table(p, meta.width, metric, whole_trials(study, done[:top]), retrained)
    return p.document(f"nextsweep report: {study.study_name}")


def _failures(study: optuna.Study, shown_at_most: int = 8) -> list[tuple]:
    """The failed trials (not those the sweep stopped) grouped by their error's last line, the
    commonest first, with the first trial numbers of each (the dashboard shows a trial's whole error)."""
    groups: dict[str, list[int]] = {}
    for t in trials_showing(study, ("error", "config", "rejected"), states=(TrialState.FAIL,)):
        if outcome(t) == "failed":
            lines = [x for x in str(t.user_attrs.get("error", "")).splitlines() if x.strip()]
            groups.setdefault(lines[-1].strip() if lines else "(no error text)", []).append(t.number)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[1][0]))
    return [(error, len(ns), ", ".join(map(str, ns[:shown_at_most])) + (", ..." if len(ns) > shown_at_most else ""))
            for error, ns in ordered]


def _settings(study: optuna.Study, m: StudyMeta, storage: str, cpu: float) -> list[tuple]:
    asha = m.asha
    start, end = time_span(study)
    wall = duration((end - start).total_seconds()) if start and end else "-"
    budget = m.budget
    return [("study", study.study_name), ("storage", storage),
            ("space", f"{shown(m.space_name)}  ({shown(m.space_file)})"), ("task", m.task),
            ("objective", f"{m.metric} ({study.direction.name.lower()})"),
            ("data", json.dumps(m.data) if m.data else "-"), ("data fingerprint", shown(m.fingerprint)),
            ("budget", f"{budget:,} parameters" if budget else "none"),
            ("width fitted to the budget", m.width or "-"),
            ("ASHA", f"{asha_text(asha)}; rungs at epochs {', '.join(map(str, rungs(*asha[:4])))}" if asha else "-"),
            ("sampler", f"{shown(m.sampler, 'not recorded')} (seed {shown(m.seed)})"),
            ("code version", m.code_version or _trial_attr(study, "code_version")),
            ("started", shown(m.started)), ("command", shown(m.command)),
            ("wall time", f"{wall} from the first trial's start to the last one's end"),
            ("CPU time", f"{duration(cpu)} in trials ({cpu / 3600:.2f} CPU-hours)")]


def _top_table(p: Page, width: str | None, metric: str, top: list[FrozenTrial], retrained: dict[int, dict]) -> None:
    if not top:
        p.note("no COMPLETE trial yet")
        return
    others = sorted({k for t in top for k in t.user_attrs.get("best_metrics", {}) if k != metric})
    head = ["rank", "trial", metric, *others, "parameters", *([width] if width else []), "best / run epochs",
            "confirmed (mean ± std, seeds)", "retrained test (mean ± std)", "sampled values"]
    rows = []
    for rank, t in enumerate(top, 1):
        a, m = t.user_attrs, t.user_attrs.get("best_metrics", {})
        sampled = sampled_text(t)  # the search's choices
        rows.append((rank, t.number, num(t.value), *(num(m.get(k)) for k in others), f"{a.get('n_params', 0):,}",
                     *([a.get(width, "-")] if width else []), f"{a.get('best_epoch', '-')} / {a.get('epochs_run', '-')}",
                     _confirmed(a.get("confirmed")), _retrained(retrained.get(t.number)), sampled))
    p.add(table(head, rows))
    if not retrained:
        p.note("retrained test figures: none given (pass --exports DIR, the folder of `nextsweep export` "
               "whose configs `nextsweep retrain` trained)")


def _confirmed(c) -> str:
    if not isinstance(c, dict) or "mean" not in c:
        return "-"
    then = ", ".join(f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in (c.get("then") or {}).items()
                     if isinstance(v, dict) and "mean" in v and "std" in v)
    return (f"{c.get('metric', '')} {c['mean']:.4f} ± {c.get('std', 0.0):.4f} ({len(c.get('seeds', []))} seeds)"
            + (f"; {then}" if then else ""))


def _retrained(r) -> str:
    if not r or not isinstance(r.get("test"), dict):
        return "-"
    return (", ".join(f"{k} {v['mean']:.4f} ± {v['std']:.4f}" for k, v in r["test"].items() if k != "loss")
            + f" ({len(r.get('seeds', []))} seeds)")


def _trial_attr(study: optuna.Study, key: str) -> str:
    """A value the trials recorded (studies from before it was kept on the study)."""
    values = sorted({str(t.user_attrs[key]) for t in trials_showing(study, (key,)) if key in t.user_attrs})
    return ", ".join(values) or "-"

