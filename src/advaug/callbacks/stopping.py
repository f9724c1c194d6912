"""Whether the fit loop will run a given training epoch, as the pool callbacks need to know at
the end of the epoch before it: no pool is made for an epoch that never runs, and pools go on
being made while Lightning trains on past a stop request it ignores (``min_epochs``)."""

from __future__ import annotations

import lightning as L

from advaug.utils.lightning_compat import fit_loop_can_stop_early


def fit_ends_before(trainer: L.Trainer, epoch: int) -> bool:
    """True when training epoch ``epoch`` will not run: ``max_epochs`` or ``max_steps`` is
    reached, or ``trainer.should_stop`` is set (early stopping, ``max_time``) and the loop honours
    it. Lightning ignores a stop request until ``min_epochs`` and ``min_steps`` are met."""
    if trainer.max_epochs is not None and 0 <= trainer.max_epochs <= epoch:
        return True
    if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
        return True
    # the fit loop's own test (Lightning 2.x); without it every request counts, as before
    return bool(trainer.should_stop) and fit_loop_can_stop_early(trainer)
