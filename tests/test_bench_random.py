"""bench/search_efficiency.py's random search (a): an over-budget draw is redrawn from a stream of
its own. Seeded like the study's sampler, that stream replayed the study's draws, so (a) and the
one-epoch baseline (d) trained up to half their configs twice (Geolife 500K, seed 3: 21 distinct
configs in the first 40)."""

import json
import sys
from pathlib import Path

import optuna

from spaces import CompiledSpace, parse_space
from tests.test_budget import SHAPE

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from search_efficiency import DefineByRun  # noqa: E402


def test_redrawn_configs_do_not_repeat_the_studys_draws():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = parse_space({"name": "t", "data": {"synthetic": {"users": 5}}, "budget": {"max_params": 150_000},
                         "params": {"family": {"type": "categorical", "choices": ["gru", "lstm"]},
                                    "d_model": {"type": "int", "low": 16, "high": 256, "step": 16},
                                    "layers": {"type": "int", "low": 1, "high": 3},
                                    "lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}}, Path("t.yaml"))
    draw = DefineByRun(CompiledSpace(space, SHAPE, fit_width=False), seed=0, redraw=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    configs = []
    for _ in range(30):
        trial = study.ask()
        config = draw(trial)
        study.tell(trial, 0.0)
        assert config["n_params"] <= 150_000
        configs.append(json.dumps({k: v for k, v in config["engine"].items() if k != "seed"}, sort_keys=True))
    over = sum(not CompiledSpace(space, SHAPE, fit_width=False).propose(t).feasible for t in study.trials)
    assert over >= 10  # the redraw path is taken often
    assert len(set(configs)) == 30  # lr is continuous: a repeat is a replayed draw
