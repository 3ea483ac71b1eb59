"""The version guard: whether the fast paths of this package (search/internals/, listed in its
__init__) may run. They were written and tested against exactly TESTED_OPTUNA and TESTED_RAY; with
any other installed version each caller takes the stock path (Optuna's RDBStorage, TPESampler and
study.ask(), Ray's own ASHA rule), after a warning, as models/native falls back to PyTorch when it
cannot compile. `NEXTSWEEP_STOCK=1` forces the stock paths everywhere (tests use it to run a sweep
through them).
"""

from __future__ import annotations

import functools
import logging
import os
from importlib import metadata

log = logging.getLogger(__name__)

TESTED_OPTUNA = "5.0.0"
TESTED_RAY = "2.60.0"
STOCK_ENV = "NEXTSWEEP_STOCK"


def forced_stock() -> bool:
    return os.environ.get(STOCK_ENV, "0") not in ("", "0")


def installed(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def optuna_fast() -> bool:
    """Whether the Optuna fast paths may run (the installed Optuna is the tested one)."""
    return not forced_stock() and _matches("optuna", TESTED_OPTUNA)


def ray_fast() -> bool:
    """Whether the Ray fast paths may run (the installed Ray is the tested one)."""
    return not forced_stock() and _matches("ray", TESTED_RAY)


@functools.cache
def _matches(package: str, tested: str) -> bool:
    found = installed(package)
    if found != tested:
        log.warning("%s %s is installed; nextsweep's fast paths were tested with %s only, so the stock "
                    "%s path runs instead (slower, same results)", package, found, tested, package)
    return found == tested


def warn_once(key: str, message: str) -> None:
    """One warning per process for `key` (a fallback taken for a reason found at run time)."""
    if key not in _warned:
        _warned.add(key)
        log.warning(message)


_warned: set[str] = set()
