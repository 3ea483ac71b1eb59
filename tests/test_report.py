"""`nextsweep report` on hand-built studies: what the page holds, small studies, bad input; and
the page opened in a real headless Chromium (Debian's package) with its plots rendered."""

import json
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from handmade import add, make_study, well_set
from search.cli import main
from search.asha import rungs

ROOT = Path(__file__).resolve().parents[1]
BASELINES = {"most_frequent": {"val_hit5": 0.31, "val_acc1": 0.12}, "markov": {"val_hit5": 0.52, "val_acc1": 0.30}}


def reviewed_study(url: str, name: str = "review"):
    """7 complete trials (the best confirmed), 2 pruned by ASHA, 1 failed, 2 over budget, 1 forbidden."""
    study = well_set(make_study(url, name=name, baselines=BASELINES))
    confirmed = {"metric": "val_hit5", "seeds": [7, 8, 9], "values": [0.64, 0.65, 0.66], "mean": 0.65, "std": 0.01,
                 "then": {"val_acc1": {"mean": 0.3, "std": 0.02}}}
    add(study, 0.7, d_model=48, best_epoch=4, epochs=6, n=9, extra={"confirmed": confirmed})  # the best
    add(study, d_model=24, best_epoch=2, epochs=2, outcome="pruned", n=10)
    add(study, d_model=32, best_epoch=1, epochs=2, outcome="pruned", n=11)
    add(study, d_model=48, best_epoch=1, epochs=1, outcome="failed", n=12)
    for i, why in enumerate(["over_budget", "over_budget", "forbidden"]):
        add(study, outcome=why, n=20 + i)
    return study, 6


def write_retrain(folder: Path, study: str, trial: int) -> None:
    """What `nextsweep export` + `nextsweep retrain` leave: the YAML and its folder's retrain.json."""
    yml = folder / f"{study}-rank1-trial{trial}.yaml"
    yml.write_text(yaml.safe_dump({"nextsweep_export": 1, "study": study, "trial": trial}))
    out = yml.with_suffix("")
    out.mkdir()
    (out / "retrain.json").write_text(json.dumps({"export": str(yml), "seeds": [0, 1, 2],
                                                  "test": {"acc1": {"mean": 0.474, "std": 0.015},
                                                           "loss": {"mean": 2.0, "std": 0.1}}}))


def test_rungs():
    assert rungs(6, 1, 2) == [1, 2, 4] and rungs(27, 1, 3) == [1, 3, 9, 27] and rungs(10, 2, 2) == [2, 4, 8]


def test_rungs_are_the_ones_ray_uses():
    """The report's formula against Ray's milestones, float edges of the log included
    (log(1000) / log(10) < 3, so Ray has no rung at 1000)."""
    from search.asha import make_asha, rung_epochs
    from spaces.schema import Asha
    assert rungs(1000, 1, 10) == [1, 10, 100]
    for max_epochs in (1, 2, 3, 8, 9, 12, 27, 64, 100, 125, 243, 1000):
        for grace in (1, 2, 3, 5):
            for rf in (2, 3, 4, 5, 10):
                if grace <= max_epochs:
                    asha = make_asha(Asha(max_epochs=max_epochs, grace_period=grace, reduction_factor=rf, brackets=1))
                    assert rungs(max_epochs, grace, rf) == rung_epochs(asha), (max_epochs, grace, rf)


def test_report_holds_every_section(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    _, best = reviewed_study(url)
    exports = tmp_path / "exports"
    exports.mkdir()
    write_retrain(exports, "review", best)
    write_retrain(exports, "another-study", best)  # same trial number, other study: not shown
    out = tmp_path / "sub" / "report.html"
    assert main(["report", "--storage", url, "--study", "review", "--out", str(out), "--exports", str(exports)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    page = out.read_text()
    for text in ["Sweep report: review", "f" * 64, "40,000 parameters", "rungs at epochs 2, 4", "tpe (seed",
                 "0.1.0+test", "Pareto front", "most_frequent", "markov", "val_hit5 0.6500 ± 0.0100 (3 seeds)",
                 "val_acc1 0.3000 ± 0.0200", "acc1 0.4740 ± 0.0150 (3 seeds)", "Parameter importances",
                 "Warnings", "Why trials failed", "RuntimeError: boom"]:
        assert text in page, text
    assert page.count("acc1 0.4740") == 1
    assert re.search(r"<td>over budget</td><td>2</td>", page) and re.search(r"<td>pruned</td><td>2</td>", page)
    assert re.search(r"<td>complete</td><td>7</td>", page) and re.search(r"<td>forbidden</td><td>1</td>", page)
    assert page.count("<script") >= 5 and not re.search(r"<script[^>]*src=", page)  # all JavaScript inline
    assert not list(out.parent.glob(".*tmp"))
    study = optuna.load_study(study_name="review", storage=url)
    study.set_user_attr("space_signature", {**study.user_attrs["space_signature"], "asha": [6, 2, 2, 2]})
    assert main(["report", "--storage", url, "--study", "review", "--out", str(out)]) == 0
    assert "reduction factor 2, 2 brackets; rungs at epochs 2, 4" in out.read_text()


def test_results_commands_load_neither_torch_nor_ray(tmp_path):
    """status, export and report read a study: torch's import alone (~1 s) would eat half their
    2-s target at 50,000 trials (issue 46), so they never load the model code."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reviewed_study(url)
    code = ("import sys\nfrom search.cli import main\n"
            f"for argv in (['status'], ['export', '--top', '2', '--out', {str(tmp_path / 'x')!r}],"
            f" ['report', '--out', {str(tmp_path / 'r.html')!r}]):\n"
            f"    assert main(argv + ['--storage', {url!r}]) == 0, argv\n"
            "print(sorted(m for m in ('torch', 'ray') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert len(list((tmp_path / "x").glob("*.yaml"))) == 2 and (tmp_path / "r.html").is_file()


def test_report_of_old_and_tiny_studies(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    empty = make_study(url, name="empty")
    add(make_study(url, name="one"), 0.5, n=0)
    out = tmp_path / "one.html"
    assert main(["report", "--storage", url, "--study", "one", "--out", str(out)]) == 0
    page = out.read_text()
    assert "importances need at least 2 COMPLETE trials" in page and "no reference baselines recorded" in page
    assert empty.study_name == "empty"
    assert main(["report", "--storage", url, "--study", "empty", "--out", str(tmp_path / "empty.html")]) == 0
    assert "no COMPLETE trial yet" in (tmp_path / "empty.html").read_text()


def test_report_bad_input_is_one_line(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reviewed_study(url)
    out = tmp_path / "report.html"
    assert main(["report", "--storage", url, "--study", "nope", "--out", str(out)]) == 2
    assert "study 'nope' not found" in capsys.readouterr().err
    assert main(["report", "--storage", url, "--out", str(out), "--exports", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nextsweep: error: --exports") and "not a folder" in err
    bad = tmp_path / "bad"
    (bad / "x").mkdir(parents=True)
    (bad / "x" / "retrain.json").write_text("{not json")
    assert main(["report", "--storage", url, "--out", str(out), "--exports", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "retrain.json" in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written
    assert main(["report", "--storage", url, "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err


# --- what a user names is shown as text, never run as markup ------------------------------------------
NASTY = "<script>alert(1)</script>\"'"  # in a study name, a choice, a baseline, an error, the command


def nasty_study(url: str):
    """Every user-named string the report shows holds markup and both quotes."""
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState, create_trial
    study = well_set(make_study(url, name=NASTY, baselines={NASTY: {"val_hit5": 0.4}}))
    study.set_user_attr("command", f"nextsweep sweep --study '{NASTY}'")
    dists = {"norm": CategoricalDistribution(["layer", NASTY])}
    config = json.dumps({"family": "gru", "norm": NASTY, "d_model": 32, "seed": 0})
    attrs = {"config": config, "n_params": 30000, "d_model": 32, "best_epoch": 1, "epochs_run": 1,
             "best_metrics": {"val_hit5": 0.9}}
    study.add_trial(create_trial(state=TrialState.COMPLETE, value=0.9, params={"norm": NASTY}, distributions=dists,
                                 user_attrs=attrs, intermediate_values={1: 0.9}))
    study.add_trial(create_trial(state=TrialState.FAIL, params={"norm": NASTY}, distributions=dists,
                                 user_attrs={**attrs, "error": f"ValueError: {NASTY}"}, intermediate_values={1: 0.1}))
    return study


def test_user_named_strings_are_escaped_in_the_page(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    nasty_study(url)
    out = tmp_path / "report.html"
    assert main(["report", "--storage", url, "--study", NASTY, "--out", str(out)]) == 0
    page = out.read_text()
    assert "alert(1)</script>" not in page and "<script>alert" not in page  # neither as HTML nor inside a script
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#x27;"
    for text in [f"<h1>Sweep report: {escaped}</h1>", f"<title>nextsweep report: {escaped}</title>",
                 f"<td>{escaped}</td><td>0.4000</td>", f"norm={escaped}"]:  # name, baseline row, sampled values
        assert text in page, text


@pytest.mark.browser
@pytest.mark.slow
def test_user_named_strings_show_literally_in_chromium(tmp_path):
    from browser import chromium_page
    url = f"sqlite:///{tmp_path / 'r.db'}"
    nasty_study(url)
    out = tmp_path / "report.html"
    assert main(["report", "--storage", url, "--study", NASTY, "--out", str(out)]) == 0
    plots = out.read_text().count('class="plotly-graph-div"')
    with chromium_page() as (page, errors):
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.add_init_script("window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));")
        page.goto(out.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}")
        text, title = page.inner_text("body"), page.title()
        alerts = page.evaluate("window.__alerts")
        scripts = page.evaluate("[...document.scripts].filter(s => s.textContent.includes('alert(1)')"
                                " && !s.textContent.includes('Plotly.newPlot')).length")
    assert (dialogs, alerts, scripts) == ([], [], 0)  # no alert ran, no script element was injected
    assert errors.all() == []
    assert title == f"nextsweep report: {NASTY}"
    assert f"Sweep report: {NASTY}" in text and f"norm={NASTY}" in text and f"{NASTY}\t0.4000" in text


# --- in a real browser ---------------------------------------------------------------------------
@pytest.mark.browser
@pytest.mark.slow
def test_report_renders_in_chromium(tmp_path):
    from browser import chromium_page, distinct_colours
    url = f"sqlite:///{tmp_path / 'r.db'}"
    reviewed_study(url, name="browser-review")
    out = tmp_path / "report.html"
    assert main(["report", "--storage", url, "--out", str(out)]) == 0
    plots = out.read_text().count('class="plotly-graph-div"')
    assert plots == 5  # best so far, curves, Pareto, importances, parallel coordinates
    with chromium_page() as (page, errors):
        fetched = []
        page.on("request", lambda r: fetched.append(r.url))
        page.goto(out.as_uri())
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {plots}")
        text = page.inner_text("body")
        colours = distinct_colours(page, page.screenshot(full_page=True))
        shown = page.locator(".js-plotly-plot")
        per_plot = [distinct_colours(page, shown.nth(i).screenshot()) for i in range(shown.count())]
        curves = shown.nth(1).locator(".scatterlayer .trace").count()  # one line per trial that ran an epoch
    assert errors.all() == []
    assert [u for u in fetched if not u.startswith(("file:", "data:", "blob:"))] == []  # opens offline
    assert "Sweep report: browser-review" in text
    for row in ["complete\t7", "pruned\t2", "failed\t1", "over budget\t2", "forbidden\t1", "total\t13"]:
        assert row in text, row
    assert colours > 500, "the screenshot is (nearly) blank"
    assert len(per_plot) == plots and min(per_plot) > 200, per_plot  # a page of text alone gives about 150
    assert curves == 10  # 7 complete, 2 pruned, 1 failed


@pytest.mark.parametrize("where", ["sqlite", "memory"])
def test_a_large_study_is_drawn_from_a_sample_that_keeps_the_best(where, tmp_path, monkeypatch):
    """Past a plot's limit the report draws the best half and an even spread of the rest, and says
    so; the best-so-far line still runs over every trial. (Limits lowered: the same code as 50,000.)
    On SQLite the curves are chosen in the database; in memory from Optuna's trials."""
    import search.report_plots as plots
    from search.report import build_html
    from search.storage import load_study
    monkeypatch.setattr(plots, "POINTS", 20)
    monkeypatch.setattr(plots, "CURVES", 10)
    url = f"sqlite:///{tmp_path / 'large.db'}" if where == "sqlite" else None
    study = well_set(make_study(url, name="large", baselines=BASELINES))
    for i in range(60):
        add(study, 0.3 + 0.005 * ((i * 37) % 60), d_model=16 + 8 * (i % 10), n_params=10_000 + 997 * i, n=100 + i)
    study = load_study(url, "large") if url else study
    done = [t for t in study.get_trials() if t.value is not None]
    drawn = plots.sample(done, 20, lambda t: -t.value)
    best = sorted(done, key=lambda t: -t.value)[:10]
    assert len(drawn) == 20 and {t.number for t in best} <= {t.number for t in drawn}
    assert [t.number for t in drawn] == sorted(t.number for t in drawn)
    assert plots.sample(done[:5], 20, lambda t: -t.value) == sorted(done[:5], key=lambda t: t.number)
    page = build_html(study, "memory", {})
    for what, shown in (("objective values", 20), ("learning curves", 10), ("importances fitted", 20),
                        ("parallel coordinates", 20)):
        assert f"{what}: {shown:,} of " in page, what
    assert f"{max(t.value for t in done):.4f}" in page
