"""search/internals/parzen.py gives Optuna's Parzen estimators and mixture densities bit for bit, and
ColumnTPE's relative search space is Optuna's intersection search space."""

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights
from optuna.trial import TrialState

from search.internals.parzen import mixture_log_pdf
from search.internals.tpe import ColumnTPE

SPACE = {
    "family": CategoricalDistribution(["gru", "lstm", "transformer"]),
    "tied": CategoricalDistribution([True, False]),
    "d_model": IntDistribution(16, 256, step=16),
    "layers": IntDistribution(1, 4),
    "batch": IntDistribution(16, 512, log=True),
    "dropout": FloatDistribution(0.0, 0.5),
    "lr": FloatDistribution(1e-4, 1e-1, log=True),
    "wd": FloatDistribution(0.0, 0.1, step=0.01),
}


def estimator(n: int, seed: int, multivariate: bool = True, cls=_ParzenEstimator) -> _ParzenEstimator:
    rng = np.random.default_rng(seed)
    sampler = optuna.samplers.RandomSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    trials = [study.ask(SPACE) for _ in range(n)]
    obs = {name: np.asarray([d.to_internal_repr(t.params[name]) for t in trials], dtype=float)
           for name, d in SPACE.items()}
    params = _ParzenEstimatorParameters(prior_weight=rng.choice([0.5, 1.0]), consider_magic_clip=seed != 2,
                                        consider_endpoints=bool(rng.integers(2)), weights=default_weights,
                                        multivariate=multivariate)
    return cls(obs, SPACE, params)


@pytest.mark.parametrize("n", [0, 1, 7, 300, 2000])
def test_mixture_log_pdf_is_optunas_bit_for_bit(n):
    for seed in range(3):
        mpe = estimator(n, seed, multivariate=seed != 1)
        samples = mpe.sample(np.random.RandomState(seed), 24)
        x = mpe._transform(samples)
        assert np.array_equal(mixture_log_pdf(mpe._mixture_distribution, x), mpe.log_pdf(samples))


def test_candidates_outside_the_range_take_optunas_path():
    mpe = estimator(50, 0)
    x = mpe._transform(mpe.sample(np.random.RandomState(0), 24))
    cols = list(SPACE)
    x[0, cols.index("dropout")] = 0.7  # above its high: density zero there
    x[1, cols.index("lr")] = 1e-6  # below its low (log scale)
    ours, stock = mixture_log_pdf(mpe._mixture_distribution, x), mpe._mixture_distribution.log_pdf(x)
    assert np.isneginf(ours[:2]).all() and np.array_equal(ours, stock)


def test_relative_search_space_is_optunas_intersection():
    """Trials with a parameter whose range changed, a conditional one, failed and running trials:
    ColumnTPE's relative space is TPESampler's after every trial."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ours, stock = ColumnTPE(seed=0, multivariate=True, constant_liar=True), \
        optuna.samplers.TPESampler(seed=0, multivariate=True, constant_liar=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    rng = np.random.default_rng(0)
    spaces = []
    for i in range(40):
        trial = study.ask()
        trial.suggest_float("lr", 1e-4, 1e-1 if i < 25 else 1.0, log=True)  # its range changes at 25
        trial.suggest_int("layers", 1, 4)
        if trial.suggest_categorical("family", ["gru", "transformer"]) == "transformer":
            trial.suggest_int("heads", 1, 4)
        trial.suggest_categorical("fixed", ["only"])  # single-valued: never in the relative space
        state = [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING][rng.integers(4)]
        if state != TrialState.RUNNING:
            study.tell(trial, float(rng.random()) if state == TrialState.COMPLETE else None, state=state)
        frozen = study.ask()._cached_frozen_trial  # the next trial, as Trial() hands it to the sampler
        study._thread_local.cached_all_trials = None
        spaces.append((ours.infer_relative_search_space(study, frozen), stock.infer_relative_search_space(study, frozen)))
        study.tell(frozen.number, state=TrialState.FAIL)
    assert all(a == b and list(a) == list(b) for a, b in spaces)
    assert {"lr", "layers", "family"} <= set(spaces[20][0]) and "lr" not in spaces[-1][0]


@pytest.mark.parametrize("n", [0, 1, 30, 2000])
def test_column_parzen_builds_optunas_estimator(n):
    from search.internals.parzen import ColumnParzen
    for seed in range(3):
        theirs, ours = estimator(n, seed, cls=_ParzenEstimator), estimator(n, seed, cls=ColumnParzen)
        for a, b in zip(theirs._mixture_distribution.distributions, ours._mixture_distribution.distributions):
            assert type(a) is type(b) and all(np.array_equal(x, y) for x, y in zip(a, b))
        assert np.array_equal(theirs._mixture_distribution.weights, ours._mixture_distribution.weights)
