"""How many checkpoints a trial keeps, and what keeping them costs the driver.

Tune's own "keep one" (CheckpointConfig(num_to_keep=1)) also forces a snapshot of the whole
experiment's state after each trial checkpoint: one JSON of every trial so far, so the driver's
cost per checkpoint grows with the trials finished (30 % of a simulated sweep's driver time at
100 trials; quadratic in a long sweep). Where a trial checkpoints only at ASHA's rungs and its
last epoch (a handful each), Tune keeps them all (num_to_keep=None: no forced snapshot) and
NewestOnly deletes each trial's superseded checkpoint once its next one is in: the same files on
disk as num_to_keep=1. A trial that checkpoints every epoch (--max-failures) keeps Tune's
num_to_keep=1: Tune would otherwise hold every epoch's result in memory.
"""

from __future__ import annotations

from ray import tune


class NewestOnly(tune.Callback):
    """Deletes a trial's previous checkpoint when a newer one arrives (the newest holds the best
    epoch's weights and the latest training state: nothing older is read again)."""

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        previous = trial.checkpoint  # (Tune registers `checkpoint` after its callbacks)
        if previous is not None and previous.path != checkpoint.path:
            previous.filesystem.delete_dir(previous.path)


def checkpoint_setup(checkpoint_at: list[int] | None) -> tuple[tune.CheckpointConfig, list[tune.Callback]]:
    """Tune's checkpoint config and the callbacks that go with it, for checkpoints at the epochs
    `checkpoint_at` (None: every epoch)."""
    if checkpoint_at is None:
        return tune.CheckpointConfig(num_to_keep=1), []
    return tune.CheckpointConfig(num_to_keep=None), [NewestOnly()]
