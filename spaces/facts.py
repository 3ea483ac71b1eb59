"""What the rest of nextsweep reads from spaces without the space machinery (which loads the
model code, and torch with it): the error type, the texts a study stores for rejected proposals,
the default objective tolerance, and which parameters the budget has a say over. The results
commands (`status`, `export`, `report`) import only this."""

from __future__ import annotations

from models.config import MODEL_KEYS


class SpaceError(Exception):
    """A space file the user must fix: the message names the file, the key path and the fix.
    `key` and `detail` (the key path and the message without the file) where a key is at fault."""

    def __init__(self, message: str, key: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.key, self.detail = key, detail


# Why a proposal never reaches a trainer: the value stored in the trial's "rejected" user attribute.
# Studies keep these texts and search.outcomes maps them to its outcome names ("over_budget",
# "unbuildable", "forbidden"), so never change a value: an older study would no longer be read.
OVER_BUDGET, UNBUILDABLE, FORBIDDEN = "over budget", "cannot be built", "forbidden"

DEFAULT_TOLERANCE = 0.002  # objective.tolerance: objectives this close tie, and `then` orders them

# Model keys that never change the parameter count (heads splits the width, it adds no
# weights; the cycles repeat the same modules). They stay out of the budget's cache key, so
# continuous choices like dropout do not defeat the cache.
COUNT_FREE = ("dropout", "heads", "h_cycles", "l_cycles")


def changes_count(name: str) -> bool:
    """Whether a parameter of that name can change a model's parameter count (lr, dropout or a
    loss setting never do: the budget has no say over them)."""
    return name in MODEL_KEYS and name not in COUNT_FREE
