"""What makes a trial reproducible is recorded with it (the kernel path, the CPU model, torch's
thread count, the code version), and retrain / confirm say in one line when they run on another
kernel path or CPU than the trial did: the same config and seed then give other metrics."""

import platform
from pathlib import Path

import pytest
import torch
import yaml

from models import native
from search.confirm import ConfirmOptions, run_confirm
from search.export import export_top
from search.retrain import retrain
from search.ranking import ranked
from search.storage import load_study, set_finished_trial_attr
from search.study_record import code_version
from search.sweep import SweepOptions, run_sweep

NOTICE = "results may differ from the trial's: it ran on "
SPACE = """
name: repro
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
objective: {metric: val_hit5}
budget: {max_params: 20000}
asha: {max_epochs: 1, grace_period: 1, reduction_factor: 2}
params:
  family: gru
  d_model: {type: int, low: 16, high: 24, step: 8}
  dropout: 0.2
  lr: {type: float, low: 3.0e-3, high: 1.0e-2, log: true}
  batch_size: 128
"""


def cpu_model() -> str:
    """The CPU's model as /proc/cpuinfo names it (what runtime_facts must record)."""
    try:
        names = [ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                 if ln.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else platform.processor() or platform.machine()


def test_runtime_facts_name_the_kernel_path_the_cpu_and_the_threads(monkeypatch):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        facts = native.runtime_facts()
    finally:
        torch.set_num_threads(before)
    key = Path(native.kernels()._name).stem.removeprefix("kernels-")  # the cache key of the loaded library
    assert facts == {"kernels": f"native-{key}", "cpu_model": cpu_model(), "torch_threads": 3}
    monkeypatch.setenv("NEXTSWEEP_NATIVE", "0")
    assert native.runtime_facts()["kernels"] == "pytorch"


def test_the_notice_names_both_sides_and_why_only_where_they_differ():
    here = native.runtime_facts()
    assert native.runtime_notice(dict(here)) is None
    assert native.runtime_notice({**here, "torch_threads": here["torch_threads"] + 1}) is None  # retrain sets threads
    assert native.runtime_notice({}) is None  # a trial from before these were recorded: nothing to compare
    other_cpu = native.runtime_notice({**here, "cpu_model": "Other CPU 9000"})
    assert other_cpu.startswith(NOTICE) and "Other CPU 9000, this runs on " in other_cpu
    assert other_cpu.endswith(f"{here['cpu_model']} (float rounding may differ)")
    off = native.runtime_notice({**here, "kernels": "pytorch"})
    assert off == (f"{NOTICE}the PyTorch path on {here['cpu_model']}, this runs on native kernels "
                   f"{here['kernels'].removeprefix('native-')} on {here['cpu_model']} (dropout masks differ)")


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repro")
    (tmp / "space.yaml").write_text(SPACE)
    opts = SweepOptions(space=str(tmp / "space.yaml"), study="r", samples=2, dir=str(tmp), seed=0,
                        storage=f"sqlite:///{tmp / 'db.sqlite'}")
    run_sweep(opts)
    return tmp, opts.storage


@pytest.mark.ray
@pytest.mark.slow
def test_a_swept_trial_records_its_kernels_cpu_threads_and_code_version(swept):
    _, url = swept
    done = ranked(load_study(url, "r"))
    assert len(done) == 2
    for t in done:
        assert {"kernels", "cpu_model", "torch_threads", "code_version"} <= set(t.user_attrs)
    here = native.runtime_facts()
    for t in done:  # the local Ray's workers: this machine, one thread each (cpus_per_trial 1)
        a = t.user_attrs
        assert (a["kernels"], a["cpu_model"], a["torch_threads"]) == (here["kernels"], here["cpu_model"], 1)
        assert a["code_version"] == code_version()


@pytest.mark.ray
@pytest.mark.slow
def test_confirm_says_when_the_trial_ran_on_another_cpu(swept, capsys):
    _, url = swept
    study = load_study(url, "r")
    best = ranked(study, use_confirmed=False)[0]
    real = best.user_attrs["cpu_model"]
    set_finished_trial_attr(study, best._trial_id, "cpu_model", "Other CPU 9000")  # as if swept elsewhere
    try:
        run_confirm(ConfirmOptions(storage=url, study="r", top=1, seeds=1))
    finally:
        set_finished_trial_attr(study, best._trial_id, "cpu_model", real)
    notices = [ln for ln in capsys.readouterr().out.splitlines() if NOTICE in ln]
    assert len(notices) == 1 and "Other CPU 9000, this runs on " in notices[0]
    assert notices[0].endswith(f"{real} (float rounding may differ)")

    run_confirm(ConfirmOptions(storage=url, study="r", top=1, seeds=2))  # trains the second seed: same CPU
    assert NOTICE not in capsys.readouterr().out


@pytest.mark.ray
@pytest.mark.slow
def test_retrain_says_when_it_runs_on_another_kernel_path_than_the_trial(swept, capsys, monkeypatch):
    tmp, url = swept
    path = export_top(url, "r", 1, tmp / "ex")[0]
    doc = yaml.safe_load(path.read_text())
    trial = load_study(url, "r").trials[doc["trial"]]
    assert doc["runtime"] == {k: trial.user_attrs[k] for k in ("kernels", "cpu_model", "torch_threads")}
    retrain(path, 1, tmp / "same")
    assert NOTICE not in capsys.readouterr().out
    monkeypatch.setenv("NEXTSWEEP_NATIVE", "0")  # really another path: torch's dropout and GRU
    retrain(path, 1, tmp / "off")
    notices = [ln for ln in capsys.readouterr().out.splitlines() if NOTICE in ln]
    assert len(notices) == 1 and notices[0].endswith("(dropout masks differ)")
    assert f"it ran on native kernels {doc['runtime']['kernels'].removeprefix('native-')} on " in notices[0]
    assert "this runs on the PyTorch path on " in notices[0]
