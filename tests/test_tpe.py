"""ColumnTPE suggests exactly what Optuna's TPESampler suggests, from the same seed and history:
COMPLETE, PRUNED (with and without intermediate values), FAIL, infeasible (budget-rejected)
and still-RUNNING trials (constant liar), conditional parameters sampled independently."""

import random

import optuna
import pytest
from optuna.trial import TrialState

from data_io.geolife import GEOLIFE_SHAPE
from search.internals.tpe import ColumnTPE
from search.samplers import make_sampler
from spaces import CompiledSpace, load_space, record_rejection

SPACE = "spaces/geolife_500k.yaml"


def drive(sampler, compiled, seed, n=70):
    """n asks of a study whose trials end in every way, some left running for a while."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng, running, asked = random.Random(seed), [], []
    for _ in range(n):
        trial = study.ask()
        p = compiled.propose(trial)
        asked.append(dict(trial.params))
        if rng.random() < 0.1:  # a budget rejection: PRUNED with a positive constraint
            p.rejected, p.n_params = "over budget", compiled.space.max_params * 2
            record_rejection(trial, p, compiled.space.max_params)
            study.tell(trial, state=TrialState.PRUNED)
            continue
        running.append((trial, p))
        while running and rng.random() < 0.6:
            trial, p = running.pop(rng.randrange(len(running)))
            end = rng.random()
            if end < 0.45:
                study.tell(trial, p.n_params / 5e5 + rng.choice([0.0, rng.gauss(0, 0.05)]))  # ties too
            elif end < 0.8:
                for step in range(1, rng.randrange(0, 4) + 1):
                    trial.report(rng.random(), step)
                study.tell(trial, state=TrialState.PRUNED)
            else:
                study.tell(trial, state=TrialState.FAIL)
    return asked


@pytest.mark.parametrize("seed", [0, 1])
def test_column_tpe_suggests_what_optunas_tpe_suggests(seed):
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    stock = drive(optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True), compiled, seed)
    ours = drive(ColumnTPE(seed=seed, multivariate=True, constant_liar=True), compiled, seed)
    assert len(ours) == 70 and ours == stock
    assert len({str(sorted(p.items())) for p in ours}) > 60  # past the start-up, and not one repeated answer


def test_a_pickled_sampler_leaves_its_history_behind_and_rebuilds_it():
    import pickle
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    sampler = ColumnTPE(seed=0, multivariate=True, constant_liar=True)
    drive(sampler, compiled, 0, n=30)
    assert len(sampler._history.number) > 10
    copy = pickle.loads(pickle.dumps(sampler))
    assert copy._history.number == [] and copy._read_for is None
    assert len(sampler._history.number) > 10  # the original keeps its own


def test_the_sweep_uses_column_tpe():
    assert isinstance(make_sampler("tpe", 0).base, ColumnTPE)  # in its start-up rounds


def test_startup_trials_sets_the_samplers_start_up(tmp_path, capsys):
    from search.cli import main
    assert make_sampler("tpe", 0, 3).base._n_startup_trials == 3 == make_sampler("tpe", 0, 3).n_startup_trials
    assert make_sampler("tpe", 0).base._n_startup_trials == 10 == make_sampler("tpe", 0).n_startup_trials  # Optuna's default
    for args in (["--sampler", "random", "--startup-trials", "3"], ["--startup-trials", "0"]):
        assert main(["sweep", str(SPACE), "--dir", str(tmp_path), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--startup-trials" in err, err
    assert not any(tmp_path.iterdir())  # refused before any storage was made


def startup_families(sampler, compiled, n, study=None):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = study or optuna.create_study(direction="maximize", sampler=sampler)
    study.sampler = sampler
    families = []
    while len(families) < n:
        trial = study.ask()
        compiled.propose(trial)
        families.append(trial.params["family"])
        study.tell(trial, 0.5)
    return families


@pytest.mark.parametrize("seed", [0, 4])
def test_the_sweeps_start_up_tries_every_family_once_per_round(seed):
    # seed 4's independent start-up draws four GRUs and a transformer: TPE then took dozens of
    # trials to try a pointer (bench/startup_coverage.py)
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    choices = set(compiled.space.param("family").choices)
    families = startup_families(make_sampler("tpe", seed, startup=10), compiled, 10)
    assert set(families[:5]) == choices and set(families[5:]) == choices
    assert families == startup_families(make_sampler("tpe", seed, startup=10), compiled, 10)  # seeded
    assert families != startup_families(make_sampler("tpe", seed + 1, startup=10), compiled, 10)


@pytest.mark.parametrize("before", [3, 5, 7])
def test_a_resumed_start_up_goes_on_with_the_rounds_it_was_in(before):
    # `sweep --resume` gives the sampler a fresh seed and the rounds the sweep's own: they skip the
    # draws the study holds, so the families are those of a sweep that never stopped
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    whole = startup_families(make_sampler("tpe", 2, startup=12), compiled, 12)

    def resumed(rounds_seed):
        study = optuna.create_study(direction="maximize")
        first = startup_families(make_sampler("tpe", 2, startup=12), compiled, before, study)
        sampler = make_sampler("tpe", 99, startup=12, rounds_seed=rounds_seed)
        return first + startup_families(sampler, compiled, 12 - before, study)

    assert resumed(2) == whole
    assert resumed(None) != whole  # the test can fail: with the fresh seed the rounds start anew


def test_without_cover_the_start_up_draws_are_optunas():
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    ours = startup_families(make_sampler("tpe", 4, startup=10, cover_startup=False), compiled, 10)
    stock = startup_families(optuna.samplers.TPESampler(seed=4, multivariate=True, constant_liar=True,
                                                        n_startup_trials=10), compiled, 10)
    assert ours == stock and len(set(ours[:5])) < 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_enqueued_trials_take_no_draw_of_the_start_up_rounds(seed):
    # an --enqueue trial's family is fixed, not drawn: the sampler's own first k draws still go
    # through every one of the k families (seeds 0, 1, 2 repeated one when the enqueued trial counted)
    compiled = CompiledSpace(load_space(SPACE), GEOLIFE_SHAPE)
    choices = compiled.space.param("family").choices
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"family": choices[0]})
    families = startup_families(make_sampler("tpe", seed, startup=10), compiled, 1 + len(choices), study)
    assert families[0] == choices[0] and sorted(families[1:]) == sorted(choices), families


def test_past_above_max_the_above_estimator_keeps_the_most_recent_trials(monkeypatch):
    """The one departure from Optuna's TPE (past 10,000 finished trials; lowered here): the "not
    good" estimator is fitted on the ABOVE_MAX most recent of them, the "good" one on the best of all."""
    import search.internals.tpe as tpe
    monkeypatch.setattr(tpe, "ABOVE_MAX", 5)
    fitted = []
    sampler = ColumnTPE(seed=0, multivariate=True, n_startup_trials=3)

    class Recording(sampler._parzen_estimator_cls):
        def __init__(self, observations, *args):
            fitted.append(observations["x"].copy())
            super().__init__(observations, *args)
    sampler._parzen_estimator_cls = Recording
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=sampler)  # minimize x: the first trials are the best
    study.add_trials([optuna.trial.create_trial(params={"x": float(i)}, value=float(i),
                                                distributions={"x": optuna.distributions.FloatDistribution(0, 100)})
                      for i in range(40)])
    study.ask({"x": optuna.distributions.FloatDistribution(0, 100)})
    below, above = fitted
    assert sorted(below.tolist()) == [0.0, 1.0, 2.0, 3.0]  # gamma(40) = 4: the best of all 40
    assert sorted(above.tolist()) == [35.0, 36.0, 37.0, 38.0, 39.0]  # the 5 most recent of the rest


def test_a_resume_of_a_large_study_gets_a_seed_numpy_accepts():
    """The resumed stream's seed grows with the study: past 4,294 trials it left NumPy's range and
    `--resume` crashed before its first trial."""
    from search.samplers import resumed_seed
    seeds = {resumed_seed(name, 7, n) for name in ("tpe", "random", "cmaes") for n in (1, 4_295, 50_000, 10**9)}
    assert all(0 <= s < 2**32 for s in seeds) and len(seeds) == 4
    for name in ("tpe", "random", "cmaes"):
        make_sampler(name, resumed_seed(name, 7, 50_000))
