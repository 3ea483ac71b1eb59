"""Draft trials (search/internals/draft.py): sampled in memory, written once, and the same trials
`study.ask()` would have made."""

import optuna
import pytest
import sqlalchemy

from search.asha.scheduler import RecordingASHA
from search.internals.draft import DraftTrial
from search.searcher import BudgetSearcher
from search.storage import open_storage
from search.samplers import make_sampler
from spaces import CompiledSpace, load_space, load_space_data

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = """
name: drafts
data: {synthetic: {users: 12, days: 40, locations: 60, seed: 2}}
budget: {max_params: 20000}
asha: {max_epochs: 4, grace_period: 1, reduction_factor: 2}
params:
  family: {type: categorical, choices: [gru, transformer]}
  heads: {type: categorical, choices: [2, 4], when: {family: transformer}}
  d_model: {type: int, low: 16, high: 64, step: 8}
  lr: {type: float, low: 1.0e-3, high: 1.0e-2, log: true}
  dropout: {type: float, low: 0.0, high: 0.3}
  batch_size: 128
"""


@pytest.fixture
def compiled(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(SPACE)
    space = load_space(path)
    return CompiledSpace(space, load_space_data(space).info)


def _study(url: str, name: str) -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_storage(url), direction="maximize",
                               sampler=make_sampler("tpe", 7))


def _grow(study, compiled, draft: bool, n: int, running_every: int = 4) -> list[optuna.Trial]:
    """n proposals, by drafts or by ask(); every `running_every`-th is left RUNNING (the constant
    liar's input), the others told a value that depends on their params."""
    trials, known = [], {}
    for i in range(n):
        trial = DraftTrial(study) if draft else study.ask()
        p = compiled.propose(trial)
        if draft:
            trial = trial.commit(known)
        if i % running_every:
            study.tell(trial, float(p.n_params % 97) + trial.params["lr"])
        trials.append(trial)
    return trials


def _stored(study) -> list[tuple]:
    return [(t.number, t.state, t.params, t.distributions, t.user_attrs,
             {k: v for k, v in t.system_attrs.items() if k.startswith("tpe:")}) for t in study.get_trials()]


def test_drafts_store_exactly_the_trials_ask_would(tmp_path, compiled):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    by_ask, by_draft = _study(url, "ask"), _study(url, "draft")
    _grow(by_ask, compiled, draft=False, n=30)  # past TPE's 10 start-up trials, with running ones
    _grow(by_draft, compiled, draft=True, n=30)
    assert _stored(by_draft) == _stored(by_ask)
    relative = [s for *_, s in _stored(by_draft) if s]
    assert relative  # the constant liar's shared relative params reached the stored trials


def test_a_draft_is_written_in_one_transaction(tmp_path, compiled):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    study = _study(url, "one")
    _grow(study, compiled, draft=True, n=12)
    engine = study._storage._backend.engine
    events = []
    sqlalchemy.event.listen(engine, "commit", lambda conn: events.append("commit"))
    sqlalchemy.event.listen(engine, "before_cursor_execute",
                            lambda conn, cursor, sql, *a: events.append(sql.split()[0].upper()))
    draft = DraftTrial(study)
    compiled.propose(draft)
    assert not {"INSERT", "UPDATE", "DELETE"} & set(events)  # sampling only reads
    events.clear()
    trial = draft.commit({})
    assert events.count("commit") == 1 and events[-1] == "commit"
    assert 3 <= len(events) <= 10  # a handful of statements, not a few per parameter
    stored = study._storage.get_trial(trial._trial_id)
    assert stored.params == trial.params and stored.number == trial.number == 12


def test_a_draft_refuses_a_parameter_stored_with_another_distribution(tmp_path, compiled):
    study = _study(f"sqlite:///{tmp_path / 'd.db'}", "changed")
    draft = DraftTrial(study)
    draft.suggest_int("d_model", 16, 64, step=8)
    with pytest.raises(ValueError):
        draft.commit({"d_model": optuna.distributions.CategoricalDistribution([16, 32])})  # as ask() refuses it
    assert study.get_trials() == []


def test_the_searcher_hands_out_enqueued_trials_first_through_ask(tmp_path, compiled):
    study = _study(f"sqlite:///{tmp_path / 'd.db'}", "enqueued")
    _grow(study, compiled, draft=True, n=3)
    wanted = {"family": "gru", "d_model_frac": 0.25, "lr": 0.004, "dropout": 0.1}
    study.enqueue_trial(wanted)
    searcher = BudgetSearcher(study, compiled, RecordingASHA(time_attr="epoch", max_t=4), seed=0, cpus=1,
                              attrs={}, orphans=[])
    searcher.suggest("first")
    assert searcher.live["first"].params == wanted
    searcher.suggest("second")  # a draft again
    numbers = [t.number for t in study.get_trials()]
    assert numbers == list(range(len(numbers))) and len(numbers) == 5


@pytest.fixture
def stock(monkeypatch):
    from search.internals import compat
    monkeypatch.setenv(compat.STOCK_ENV, "1")  # as an Optuna other than the tested one would


def test_stock_drafts_are_asked_trials_and_store_what_ask_would(tmp_path, compiled, stock):
    url = f"sqlite:///{tmp_path / 'd.db'}"
    by_ask, by_draft = _study(url, "ask"), _study(url, "draft")
    assert type(by_draft._storage._backend) is optuna.storages.RDBStorage
    _grow(by_ask, compiled, draft=False, n=14)
    _grow(by_draft, compiled, draft=True, n=14)
    assert _stored(by_draft) == _stored(by_ask)
    draft = DraftTrial(by_draft)
    assert not isinstance(draft, DraftTrial)
    draft.suggest_int("d_model", 16, 64, step=8)
    known: dict = {}
    trial = draft.commit(known, lambda number: {"seed": 10 + number})
    assert type(trial) is optuna.Trial and known == {"d_model": trial.distributions["d_model"]}
    assert by_draft._storage.get_trial(trial._trial_id).user_attrs == {"seed": 24} and trial.number == 14


def test_stock_searcher_hands_out_enqueued_trials_then_drafts(tmp_path, compiled, stock):
    test_the_searcher_hands_out_enqueued_trials_first_through_ask(tmp_path, compiled)
