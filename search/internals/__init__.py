"""Everything that reaches into Optuna's or Ray's private internals, tied to the pinned versions
(pyproject.toml: optuna==5.0.0, ray==2.60.0), beside the version guard that decides whether it may
run. Where the guard says no (another version, or NEXTSWEEP_STOCK=1), each caller takes the stock
path: the same trials and decisions, slower; strict ASHA alone changes behaviour (Ray's rule runs).

- compat.py: the guard (optuna_fast, ray_fast, NEXTSWEEP_STOCK); touches nothing private.
- rdb.py and rdb_writes.py, for search/storage.py: SQL on Optuna's tables (optuna.storages._rdb,
  schema v3.2.0.a): trial reads (rdb.py); an epoch's intermediate value, bulk inserts,
  user-attribute upserts (rdb_writes.py). Stock: Optuna's RDBStorage, also for an untested backend
  or schema. Attributes on a finished trial (`nextsweep confirm`) have no stock path.
- draft.py, for search/searcher.py: trials sampled in memory through optuna.Trial's private layout.
  Stock: AskedTrial, study.ask().
- tpe.py and parzen.py, for search/samplers.py: the column TPE on optuna.samplers._tpe (TPESampler's
  private methods, the Parzen estimator and its batched distributions). Stock: Optuna's TPESampler.
- bracket.py, for search/asha/scheduler.py: strict ASHA, a subclass of Ray's private
  async_hyperband._Bracket swapped into ASHAScheduler._brackets. Stock: Ray's own promotion rule.

Outside this package only long-stable private attributes remain, used on either path:
`study._storage`, `study._study_id` and `_trial_id` (search/storage.py, progress.py, searcher.py,
sweep.py, confirm.py), and the cached storage's `_backend` (storage.py, read with getattr and a default).
"""
