"""The YAML search-space schema: parsing and validation with one clear line per error.

A space file:

    name: geolife_500k
    data: {geolife: ../../shared/data/geolife}    # or {path: DIR} or {synthetic: {users: 50}}
    objective: {metric: val_hit5, mode: max, then: [val_acc1, val_mrr], tolerance: 0.002}
    budget: {max_params: 500000, width: d_model}  # width: the int param fitted to the budget
    asha: {max_epochs: 12, grace_period: 2, reduction_factor: 3}  # and brackets: N, strict: true, rank_by: epoch, fidelity: data, pause: true
    params:
      family: {type: categorical, choices: [transformer, pointer, gru]}
      d_model: {type: int, low: 32, high: 256, step: 16}
      heads: {type: categorical, choices: [2, 4], when: {family: [transformer, pointer]}}
      lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
      batch_size: 128                            # a fixed value

Relative paths are resolved against the space file's folder. `objective.then` (optional) names
secondary metrics that order trials whose objective differs by no more than `tolerance` (or by the
confirmed seed std, see search/ranking.py ranked()); ASHA still prunes on `metric` alone.
"""

from __future__ import annotations

import copy
import difflib
import math
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Sequence

import yaml

from models.bank_pointer import LOSS as POINTER_LOSS, loss_problem
from models.class_copy import CLASS_KEYS
from models.config import FAMILIES, LOSSES, SAMPLERS, SCHEDULES, ModelConfig, TrainConfig, metric_mode
from data_io.kinds import KINDS
from models.tasks import TASKS
from spaces.facts import DEFAULT_TOLERANCE, SpaceError


NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")  # exponent numbers PyYAML leaves as strings
TOP_KEYS = ("name", "description", "task", "data", "objective", "budget", "asha", "folds", "forbid", "params")
SPEC_KEYS = ("type", "low", "high", "step", "log", "choices", "when")
DATA_KINDS = ("synthetic", "path", "geolife")
# Keys the sweep sets itself, so a space may not: epochs (from asha), seed (per trial), metric (objective).
RESERVED = {"epochs": "set asha.max_epochs instead", "seed": "the sweep gives each trial its seed",
            "metric": "set objective.metric instead", "folds": "set the top-level folds: K instead"}
TASK_CHECKED = {"family": "families", "loss": "losses"}  # params whose values the task must allow
ENUMS = {"family": FAMILIES, "loss": LOSSES, "sampler": SAMPLERS, "schedule": SCHEDULES}
FIELD_TYPES = {f.name: f.type for f in fields(ModelConfig) + fields(TrainConfig)}


@dataclass
class ParamSpec:
    name: str
    kind: str  # int | float | categorical | fixed
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list = field(default_factory=list)
    value: Any = None  # kind == fixed
    when: dict[str, list] = field(default_factory=dict)

    def active(self, chosen: dict) -> bool:
        """A conditional parameter exists only when every named parameter has an allowed value."""
        return all(chosen.get(k) in allowed for k, allowed in self.when.items())

    def values(self) -> list:
        """The extreme or listed values (used to bound the parameter count over the space)."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        return [self.low, self.high]


RANK_BY = ("best", "epoch")  # asha.rank_by: a trial's best epoch so far, or the rung epoch's own value
FIDELITIES = ("epochs", "data")  # asha.fidelity: what grows at each rung (search.asha.data_fractions)


@dataclass
class Asha:
    max_epochs: int = 20
    grace_period: int = 1
    reduction_factor: float = 3.0
    brackets: int = 1  # Hyperband-style: bracket s has its first rung at grace_period * reduction_factor**s
    strict: bool = False  # the ASHA paper's rule: pass a rung only in the top floor(n / rf) of its n results
    rank_by: str = "best"  # a trial's value at a rung: its best epoch so far, or that epoch's own ("epoch")
    fidelity: str = "epochs"  # "data": epochs before the later rungs train on a share of the training samples
    pause: bool = False  # the paper's promotions: a trial not yet in its rung's top waits paused, not stopped


@dataclass
class Space:
    name: str
    path: Path
    data: dict
    task: str = "location"
    folds: int = 0  # > 1: each trial trains the dataset's grouped CV folds, the objective is their mean
    forbid: list[dict[str, list]] = field(default_factory=list)  # combinations never trained
    metric: str = "val_hit5"
    mode: str = "max"
    then: list[str] = field(default_factory=list)  # tie-breaking metrics, ranking only (not ASHA)
    tolerance: float = DEFAULT_TOLERANCE  # objectives within this of each other tie
    max_params: int | None = None
    width: str | None = None
    asha: Asha = field(default_factory=Asha)
    params: list[ParamSpec] = field(default_factory=list)
    description: str = ""
    overrides: list[str] = field(default_factory=list)  # the --set KEY=VALUE applied to the file

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


class _Checker:
    def __init__(self, path: Path):
        self.path = path

    def fail(self, key: str, msg: str) -> SpaceError:
        return SpaceError(f"{self.path}: {key}: {msg}", key, msg)

    def unknown(self, key: str, name: str, allowed: tuple) -> SpaceError:
        near = difflib.get_close_matches(str(name), allowed, n=1)
        hint = f"did you mean '{near[0]}'?" if near else f"allowed: {', '.join(allowed)}"
        return self.fail(key, f"unknown key '{name}'; {hint}")

    def mapping(self, key: str, value, allowed: tuple | None = None) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__} {value!r}")
        for k in value:
            if allowed is not None and k not in allowed:
                raise self.unknown(f"{key}.{k}" if key else str(k), k, allowed)
        return value

    def number(self, key: str, value, kind: type = float, minimum: float | None = None):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind is int:
            ok = ok and float(value).is_integer()
        if not ok:
            raise self.fail(key, f"must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value!r}")
        return kind(value)


def _parse_tolerance(c: _Checker, value) -> float:
    """A finite tolerance >= 0: NaN ties nothing, not even a trial with itself, and inf ties everything."""
    tolerance = c.number("objective.tolerance", value, float, 0)
    if not math.isfinite(tolerance):
        raise c.fail("objective.tolerance", f"must be a finite number, got {tolerance!r}; give e.g. "
                     f"{DEFAULT_TOLERANCE} or leave it out")
    return tolerance


def _check_value(c: _Checker, key: str, name: str, value) -> None:
    """A value the engine accepts for `name` (type and, for enumerations, the allowed set)."""
    if name in ENUMS and value not in ENUMS[name]:
        raise c.fail(key, f"'{value}' is not supported for {name}; use one of {', '.join(ENUMS[name])}")
    kind = FIELD_TYPES[name]
    if kind == "bool" and not isinstance(value, bool):
        raise c.fail(key, f"{name} must be true or false, got {value!r}")
    if kind in ("int", "float"):
        c.number(key, value, int if kind == "int" else float)
    if kind == "str" and not isinstance(value, str):
        raise c.fail(key, f"{name} must be a string, got {value!r}")


def _parse_param(c: _Checker, name: str, raw, declared: dict[str, ParamSpec]) -> ParamSpec:
    key = f"params.{name}"
    if name in RESERVED:
        raise c.fail(key, f"'{name}' cannot be searched: {RESERVED[name]}")
    if name not in FIELD_TYPES:
        raise c.unknown("params", name, tuple(k for k in FIELD_TYPES if k not in RESERVED))
    if not isinstance(raw, dict):
        _check_value(c, key, name, raw)
        return ParamSpec(name, "fixed", value=raw)
    c.mapping(key, raw, SPEC_KEYS)
    kind = raw.get("type", "categorical" if "choices" in raw else None)
    if kind not in ("int", "float", "categorical"):
        raise c.fail(f"{key}.type", f"must be int, float or categorical, got {kind!r}")
    spec = ParamSpec(name, kind, when=_parse_when(c, key, raw.get("when"), declared))
    if kind == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise c.fail(f"{key}.choices", "must be a non-empty list")
        for i, v in enumerate(choices):
            _check_value(c, f"{key}.choices[{i}]", name, v)
        spec.choices = choices
        return spec
    if FIELD_TYPES[name] not in ("int", "float") or (kind == "float" and FIELD_TYPES[name] == "int"):
        raise c.fail(f"{key}.type", f"{name} takes {FIELD_TYPES[name]} values; use type: "
                     f"{'int' if FIELD_TYPES[name] == 'int' else 'categorical'}")
    num = int if kind == "int" else float
    for k in ("low", "high"):
        if k not in raw:
            raise c.fail(key, f"a {kind} parameter needs '{k}'")
    spec.low, spec.high = c.number(f"{key}.low", raw["low"], num), c.number(f"{key}.high", raw["high"], num)
    if spec.low > spec.high:
        raise c.fail(key, f"empty range: low {spec.low} > high {spec.high}")
    spec.log = bool(raw.get("log", False))
    if spec.log and spec.low <= 0:
        raise c.fail(f"{key}.low", f"log scale needs low > 0, got {spec.low}")
    if "step" in raw:
        spec.step = c.number(f"{key}.step", raw["step"], num)
        if spec.step <= 0:
            raise c.fail(f"{key}.step", f"must be > 0, got {spec.step}")
        if spec.log:
            raise c.fail(key, "step and log cannot be combined (Optuna forbids it)")
    for k in ("low", "high"):
        _check_value(c, f"{key}.{k}", name, getattr(spec, k))
    return spec


def _parse_when(c: _Checker, key: str, raw, declared: dict[str, ParamSpec]) -> dict[str, list]:
    if raw is None:
        return {}
    when = {}
    for other, allowed in c.mapping(f"{key}.when", raw).items():
        if other not in declared:
            hint = " (declare it above this parameter)" if other in FIELD_TYPES else ""
            raise c.fail(f"{key}.when.{other}", f"names unknown parameter '{other}'{hint}")
        allowed = allowed if isinstance(allowed, list) else [allowed]
        possible = declared[other].values() if declared[other].kind in ("categorical", "fixed") else None
        for v in allowed:
            if possible is not None and v not in possible:
                raise c.fail(f"{key}.when.{other}", f"value {v!r} is never taken by {other} (it takes {possible})")
        when[other] = allowed
    return when


def _parse_data(c: _Checker, raw, task: str) -> dict:
    data = c.mapping("data", raw, DATA_KINDS)
    if len(data) != 1:
        raise c.fail("data", f"give exactly one of {', '.join(DATA_KINDS)}")
    kind, value = next(iter(data.items()))
    if kind == "synthetic":  # the generator settings are the task's data kind's (data_io.kinds)
        synth = KINDS[task]
        settings = c.mapping("data.synthetic", value or {}, synth.synth_keys)
        return {"synthetic": {k: c.number(f"data.synthetic.{k}", v, float) if k in synth.synth_floats else
                              c.number(f"data.synthetic.{k}", v, int, 0 if k in ("seed", "n_folds") else 1)
                              for k, v in settings.items()}}
    if not isinstance(value, str):
        raise c.fail(f"data.{kind}", f"must be a path, got {value!r}")
    return {kind: (c.path.parent / value).resolve()}


def parse_space(raw: Any, path: Path) -> Space:
    c = _Checker(path)
    top = c.mapping("", raw, TOP_KEYS)
    for k in ("name", "data", "params"):
        if k not in top:
            raise c.fail(k, "required key is missing")
    if not isinstance(top["name"], str) or not top["name"].strip():
        raise c.fail("name", "must be a non-empty string")
    task = top.get("task", "location")
    if task not in TASKS or task not in KINDS:  # a task is its models.tasks Task and its data_io data kind
        raise c.fail("task", f"{task!r} is not a task; use one of {', '.join(t for t in TASKS if t in KINDS)}")
    space = Space(name=top["name"], path=path, data=_parse_data(c, top["data"], task), task=task,
                  description=str(top.get("description", "")))
    obj = c.mapping("objective", top.get("objective", {}), ("metric", "mode", "then", "tolerance"))
    space.metric = obj.get("metric", TASKS[task].objective)
    if space.metric not in TASKS[task].metrics:
        raise c.fail("objective.metric", f"'{space.metric}' is not reported by the {task} task; "
                     f"use one of {', '.join(TASKS[task].metrics)}")
    space.mode = obj.get("mode", metric_mode(space.metric))
    if space.mode not in ("max", "min"):
        raise c.fail("objective.mode", f"must be max or min, got {space.mode!r}")
    if space.mode != metric_mode(space.metric):  # the engine's best epoch and export follow the metric
        raise c.fail("objective.mode", f"{space.metric} is better when {'higher' if metric_mode(space.metric) == 'max' else 'lower'}, "
                     f"so mode {space.mode} would select the worst models; set mode: {metric_mode(space.metric)} or leave it out")
    space.then = _parse_then(c, obj.get("then", []), space)
    space.tolerance = _parse_tolerance(c, obj.get("tolerance", DEFAULT_TOLERANCE))
    asha = c.mapping("asha", top.get("asha", {}), ("max_epochs", "grace_period", "reduction_factor", "brackets",
                                                         "strict", "rank_by", "fidelity", "pause"))
    space.asha = Asha(c.number("asha.max_epochs", asha.get("max_epochs", 20), int, 1),
                      c.number("asha.grace_period", asha.get("grace_period", 1), int, 1),
                      c.number("asha.reduction_factor", asha.get("reduction_factor", 3), float, 1.01),
                      c.number("asha.brackets", asha.get("brackets", 1), int, 1),
                      asha.get("strict", False), asha.get("rank_by", "best"), asha.get("fidelity", "epochs"),
                      asha.get("pause", False))
    for key in ("strict", "pause"):
        if not isinstance(getattr(space.asha, key), bool):
            raise c.fail(f"asha.{key}", f"must be true or false, got {getattr(space.asha, key)!r}")
    if space.asha.pause and space.asha.brackets != 1:
        raise c.fail("asha.pause", f"works with one bracket, got brackets {space.asha.brackets}; drop one of the two")
    if space.asha.rank_by not in RANK_BY:
        raise c.fail("asha.rank_by", f"must be {' or '.join(RANK_BY)}, got {space.asha.rank_by!r}")
    if space.asha.fidelity not in FIDELITIES:
        raise c.fail("asha.fidelity", f"must be {' or '.join(FIDELITIES)}, got {space.asha.fidelity!r}")
    if space.asha.grace_period > space.asha.max_epochs:
        raise c.fail("asha.grace_period", f"{space.asha.grace_period} exceeds max_epochs {space.asha.max_epochs}")
    declared: dict[str, ParamSpec] = {}
    params = c.mapping("params", top["params"])
    if not params:
        raise c.fail("params", "declare at least one parameter")
    for name, spec in params.items():
        declared[name] = _parse_param(c, name, spec, declared)
    space.params = list(declared.values())
    _check_task_values(c, space)
    _check_bank_pointer(c, space)
    _check_class_keys(c, space)
    space.folds = c.number("folds", top.get("folds", 0), int, 0)
    if space.folds == 1:
        raise c.fail("folds", "1 fold is no cross-validation; use 0 (the train/val split) or >= 2")
    space.forbid = _parse_forbid(c, top.get("forbid", []), declared)
    _parse_budget(c, space, top.get("budget", {}))
    return space


def _parse_then(c: _Checker, raw, space: Space) -> list[str]:
    """objective.then: other metrics of the task, each once; their directions come from metric_mode."""
    if not isinstance(raw, list) or not all(isinstance(m, str) for m in raw):
        raise c.fail("objective.then", f"must be a list of metric names (e.g. [val_acc1, val_mrr]), got {raw!r}")
    allowed = TASKS[space.task].metrics
    for i, m in enumerate(raw):
        if m not in allowed:
            raise c.fail(f"objective.then[{i}]", f"'{m}' is not reported by the {space.task} task; "
                         f"use one of {', '.join(x for x in allowed if x != space.metric)}")
        if m == space.metric or m in raw[:i]:
            raise c.fail(f"objective.then[{i}]", f"'{m}' is already {'the objective' if m == space.metric else 'listed'}; "
                         "name each tie-breaking metric once, other than objective.metric")
    return list(raw)


def _check_task_values(c: _Checker, space: Space) -> None:
    """Families and losses the space's task cannot train are refused before any sweep."""
    task = TASKS[space.task]
    for name, attr in TASK_CHECKED.items():
        p = space.param(name)
        allowed = getattr(task, attr)
        for v in (p.values() if p is not None else []):
            if v not in allowed:
                raise c.fail(f"params.{name}", f"{v!r} is not available for the {space.task} task; "
                             f"use {', '.join(allowed)}")


def _check_bank_pointer(c: _Checker, space: Space) -> None:
    """bank_pointer: true only for a task that points over a bank (the vector task), and only
    with its loss among the space's losses (proposals pairing it with another loss are unbuildable)."""
    p = space.param("bank_pointer")
    if p is None or True not in p.values():
        return
    if not TASKS[space.task].copies_history:
        raise c.fail("params.bank_pointer", f"true is not available for the {space.task} task (only the vector task "
                     "points over a candidate bank); set it false or remove it")
    loss = space.param("loss")
    losses = loss.values() if loss is not None else [TASKS[space.task].default_loss]
    if POINTER_LOSS not in losses:
        raise c.fail("params.bank_pointer", loss_problem(True, losses[0]))


def _check_class_keys(c: _Checker, space: Space) -> None:
    """history_classes / class_copy: true only for a task that reads each history step's class."""
    for key in CLASS_KEYS:
        p = space.param(key)
        if p is not None and True in p.values() and not TASKS[space.task].reads_history_classes:
            raise c.fail(f"params.{key}", f"true is not available for the {space.task} task (only the category "
                         "task reads the history's classes); set it false or remove it")


def _parse_forbid(c: _Checker, raw, declared: dict[str, ParamSpec]) -> list[dict[str, list]]:
    """forbid: a rule or a list of rules {param: value or [values], ...}; a proposal matching
    every key of a rule is never trained (e.g. weighted_ce with the balanced sampler)."""
    rules = raw if isinstance(raw, list) else [raw]
    out = []
    for i, rule in enumerate(rules):
        key = f"forbid[{i}]"
        rule = c.mapping(key, rule)
        if not rule:
            raise c.fail(key, "an empty rule would forbid everything; name at least one parameter")
        parsed = {}
        for name, values in rule.items():
            if name not in declared:
                raise c.fail(f"{key}.{name}", f"names unknown parameter '{name}'; declare it in params")
            values = values if isinstance(values, list) else [values]
            spec = declared[name]
            possible = spec.values() if spec.kind in ("categorical", "fixed") else None
            for v in values:
                if possible is not None and v not in possible:
                    raise c.fail(f"{key}.{name}", f"value {v!r} is never taken by {name} (it takes {possible})")
            parsed[name] = values
        out.append(parsed)
    return out


def _parse_budget(c: _Checker, space: Space, raw) -> None:
    budget = c.mapping("budget", raw, ("max_params", "width"))
    if "max_params" in budget:
        space.max_params = c.number("budget.max_params", budget["max_params"], int, 1)
    default = "d_model" if (p := space.param("d_model")) is not None and p.kind == "int" else None
    space.width = budget.get("width", default)
    if space.width is None:
        return
    spec = space.param(space.width)
    if spec is None or spec.kind != "int":
        raise c.fail("budget.width", f"'{space.width}' must name an int parameter of params (the width fitted to the budget)")
    for p in space.params:
        if space.width in p.when:
            raise c.fail(f"params.{p.name}.when.{space.width}", "conditions on the fitted width are not supported")


def load_space(path: str | Path, overrides: Sequence[str] = ()) -> Space:
    """The space of a YAML file; `overrides` ("KEY=VALUE" with a dotted key, as `--set` gives
    them) replace fields of the parsed document before it is validated like the file itself."""
    path = Path(path)
    sets = [parse_override(text) for text in overrides]  # a malformed --set fails before any reading
    if not path.is_file():
        raise SpaceError(f"{path}: file not found; give a space YAML file (see spaces/*.yaml)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else "?"
        raise SpaceError(f"{path}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not sets:
        return parse_space(raw, path)
    try:
        space = parse_space(apply_overrides(raw, sets, path), path)
    except SpaceError as exc:
        raise _blame(exc, sets, path) from None
    space.overrides = [text.strip() for text in overrides]
    return space


def parse_override(text: str) -> tuple[str, Any]:
    """"asha.max_epochs=20" -> ("asha.max_epochs", 20): the value read as YAML (a number, true,
    a string, or a flow list such as [gru, lstm])."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key or "" in key.split("."):
        raise SpaceError(f"--set {text!r}: expected KEY=VALUE with a dotted key, e.g. --set asha.max_epochs=20")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        raise SpaceError(f"--set {key}: {value!r} is not a YAML value; check its brackets and quotes") from None
    if isinstance(parsed, str) and NUMBER.fullmatch(parsed.strip()):
        parsed = float(parsed)  # YAML 1.1 reads 1e-4 (no dot) as a string; on a command line it is a number
    return key, parsed


def apply_overrides(raw: Any, sets: list[tuple[str, Any]], path: Path) -> Any:
    """A copy of the parsed document with each (dotted key, value) set; missing mappings on the
    way are created (e.g. budget.max_params in a file without a budget)."""
    doc = copy.deepcopy(raw)
    if not isinstance(doc, dict):
        return doc  # parse_space says what is wrong with the file
    for key, value in sets:
        node, parts = doc, key.split(".")
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(parts[:depth + 1])
                hint = f"set --set {where}=VALUE instead" if where.startswith("params.") else "it takes no sub-keys"
                raise SpaceError(f"--set {key}: {where} is {child!r} in {path}, not a mapping; {hint}")
            node = child
        node[parts[-1]] = value
    return doc


def _blame(exc: SpaceError, sets: list[tuple[str, Any]], path: Path) -> SpaceError:
    """The validation error of an overridden space, naming the --set it comes from where the key
    paths show it (the same key, one inside the other), else every --set beside the file."""
    if exc.key is None:
        return exc
    inside = lambda inner, outer: inner.startswith(outer + ".") or inner.startswith(outer + "[")
    related = [k for k, _ in sets if k == exc.key or inside(k, exc.key) or inside(exc.key, k)]
    if related:
        # Best: the same key; next: a key below the error's whose next part the message names
        # (params: unknown key 'foo' <- --set params.foo=1); else the last related one.
        below = lambda k: k.startswith(exc.key + ".") and f"'{k[len(exc.key) + 1:].split('.')[0]}'" in exc.detail
        key = next((k for k in related if k == exc.key), None) or next((k for k in related if below(k)), related[-1])
        where = "" if key == exc.key else f"{exc.key}: "
        return SpaceError(f"--set {key}: {where}{exc.detail} (space {path})", exc.key, exc.detail)
    given = ", ".join(f"--set {k}" for k, _ in sets)
    return SpaceError(f"{path} with {given}: {exc.key}: {exc.detail}", exc.key, exc.detail)
