"""The parameter budget: the count range over buildable configs, and the structure-keyed cache."""

from pathlib import Path

import optuna
import pytest

from data_io import DatasetInfo
from models import ModelError, count_params
from spaces import CompiledSpace, ParamCounter, check_feasible, count_range, parse_space
from spaces.facts import COUNT_FREE
from spaces.check import check_space

# Geolife's shape (as SHAPE had it when the numbers below were measured), pinned here
# so the exact counts do not move when the prepared dataset's shape does.
SHAPE = DatasetInfo(
    name="geolife-shape", n_locations=1187, n_users=46, split_sizes={}, max_history=54, params={},
    cardinalities={"loc": 1187, "user": 46, "weekday": 7, "tod": 96, "dur": 96, "days_before": 8, "position": 54})


def _space(params: dict, max_params: int | None = 200_000):
    raw = {"name": "t", "data": {"synthetic": {"users": 5}}, "params": params}
    if max_params:
        raw["budget"] = {"max_params": max_params}
    return parse_space(raw, Path("t.yaml"))


def _proposals(space, n: int, fit_width: bool = True, seed: int = 0):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    compiled = CompiledSpace(space, SHAPE, fit_width=fit_width)
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(compiled.propose(trial))
        study.tell(trial, 0.0)
    return compiled, out


# d_model's low end (30) cannot be built with either head count: the old range search tried
# only low/high, so it called 200K impossible (smallest 239,971 at d_model 64) and gave inf as the max.
ODD_LOW = {"family": "transformer", "heads": {"type": "categorical", "choices": [4, 8]},
           "d_model": {"type": "int", "low": 30, "high": 64}}


def test_range_is_over_buildable_widths():
    space = _space(ODD_LOW)
    (n_min, cmin), (n_max, cmax) = count_range(space, ParamCounter(SHAPE))
    assert (n_min, cmin["d_model"]) == (104_195, 32) and (n_max, cmax["d_model"]) == (239_971, 64)
    assert n_min == count_params(cmin, SHAPE) and n_max == count_params(cmax, SHAPE)
    assert check_feasible(space, ParamCounter(SHAPE))[0] == 104_195  # 200K is possible
    props = _proposals(space, 30, True)[1] + _proposals(space, 30, False)[1]  # fitted and naive widths
    found = [p.n_params for p in props if p.n_params >= 0]
    assert 135_067 in found and n_min <= min(found) and max(found) <= n_max


def test_range_follows_step_grids():
    # Optuna never suggests d_model 70 or layers 4 here: the grids are 32, 48, 64 and 1, 3.
    space = _space({"family": "transformer", "heads": 2, "layers": {"type": "int", "low": 1, "high": 4, "step": 2},
                    "d_model": {"type": "int", "low": 32, "high": 70, "step": 16}}, None)
    _, (n_max, cmax) = count_range(space, ParamCounter(SHAPE))
    assert (cmax["d_model"], cmax["layers"]) == (64, 3) and n_max == count_params(cmax, SHAPE)


def test_check_report_range_is_finite():
    r = check_space(_space(ODD_LOW), SHAPE, samples=10)
    assert (r.n_min, r.n_max, r.feasible_fitted) == (104_195, 239_971, 1.0)


def test_no_buildable_width_is_reported():
    space = _space({**ODD_LOW, "d_model": {"type": "int", "low": 30, "high": 66, "step": 4}})  # all 2 mod 4
    (n_min, _), (n_max, _) = count_range(space, ParamCounter(SHAPE))
    assert n_min == n_max == float("inf")
    with pytest.raises(Exception, match="no configuration of the space can be built"):
        check_feasible(space, ParamCounter(SHAPE))


def test_count_free_keys_do_not_change_the_count():
    base = {"family": "hrm", "d_model": 48, "layers": 1, "heads": 2, "dropout": 0.0, "h_cycles": 1, "l_cycles": 1}
    n = count_params(base, SHAPE)
    for key, value in {"dropout": 0.3, "heads": 4, "h_cycles": 3, "l_cycles": 3}.items():
        assert count_params({**base, key: value}, SHAPE) == n, key
    assert set(COUNT_FREE) == {"dropout", "heads", "h_cycles", "l_cycles"}


def test_cache_is_keyed_on_structure():
    # Two structures (gru; transformer, since heads adds no weights) x 7 widths = 14 cache keys
    # at most, whatever dropout and lr are. The widest fit is searched once per structure and
    # width grid (gru; transformer with heads 2 or 4: 3 binary searches of 3 steps over 7
    # widths); after that a proposal looks up only its chosen width.
    space = _space({"family": {"type": "categorical", "choices": ["gru", "transformer"]},
                    "heads": {"type": "categorical", "choices": [2, 4], "when": {"family": ["transformer"]}},
                    "d_model": {"type": "int", "low": 32, "high": 128, "step": 16},
                    "dropout": {"type": "float", "low": 0.0, "high": 0.5},
                    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}, 150_000)
    compiled, props = _proposals(space, 20)
    count = compiled.count
    print(f"exact counts {count.calls}, cache hits {count.hits}")
    assert count.calls <= 14 and len(count.widest) <= 3
    assert count.calls + count.hits <= 20 + 3 * 3
    for p in props:
        assert p.feasible and p.n_params == count_params(p.config, SHAPE)


def test_cache_keeps_errors_exact():
    count = ParamCounter(SHAPE)
    count({"family": "transformer", "d_model": 48, "heads": 4})
    with pytest.raises(ModelError, match="must divide"):
        count({"family": "transformer", "d_model": 48, "heads": 5})  # same structure key, not buildable
    with pytest.raises(ModelError, match="dropout"):
        count({"family": "transformer", "d_model": 48, "heads": 4, "dropout": 1.5})
