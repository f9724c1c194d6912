"""``RegenerateAdversarial``: fill a pool slot with FGSM / InvFGSM / PGD copies of the training
set made from the *current* weights (the paper's sections 2, 3.2, 3.3; ``aug.mode=regenerate``).

For every epoch its schedule makes due (``start_epoch``, then every ``every_n_epochs``), attack a
seeded ``fraction`` of the training set (base-augmented for that epoch when ``base=`` is set) in batches of ``attack_batch_size`` with the
unwrapped LightningModule and put the result in the pool (the timing is
:class:`~advaug.callbacks.pool.PoolCallback`'s). With DDP each rank attacks
``chosen[rank::world_size]`` and the shards are all-gathered, so every rank holds the same pool.

The callback's own state (which epoch the pool was made for, where to resume, its log) is in
``state_dict``; random draws are seeded by ``(seed, epoch)`` so a resumed run draws the same. The
pool travels in the DataModule's checkpoint state, except when a checkpoint is written right
after the pool was made from the weights it holds (at an epoch end, eval mode, no random start):
then the slot is left out and a resumed run remakes it from those weights.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import Tensor

from advaug.attacks import perturb, predicted_labels, sample_eps
from advaug.callbacks.adversarial_base import (
    AdversarialProducer,
    choose_indices,
    gather_rows,
    generator_for,
)
from advaug.callbacks.pool import PoolCallback
from advaug.callbacks.weights_pool import WeightsPool
from advaug.rules import SINGLE_STEP, check_count, check_precision, check_steps
from advaug.utils.progress import progress


class RegenerateAdversarial(AdversarialProducer, WeightsPool):
    """Adds adversarial (``fgsm``, ``pgd``) or helpful (``invfgsm``, ``invpgd``) copies of the
    training images, made from the current model, to the train set.

    Args (beyond :class:`AdversarialProducer`'s):
        every_n_epochs, start_epoch: which epochs train on a fresh pool (:class:`Schedule`).
        attack_batch_size: batch size of the attack forward/backward passes.
        steps, step_size: PGD's steps; the step size of every method (:func:`~advaug.attacks.perturb`).
        random_start: start from x + U(-eps, eps); None = on for PGD, off for FGSM / InvFGSM. The
            noise comes from the global generator (seeded by ``seed_everything``, restored on resume).
        precision: ``fp32`` or ``bf16`` for the attack's forward/backward.
        source: the pool slot (and batch source) name.
    """

    default_source = "adversarial"

    def __init__(
        self,
        method: str = "fgsm",
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        attack_batch_size: int = 32,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool | None = None,
        precision: str = "fp32",
        source: str | None = None,
        **settings: Any,
    ) -> None:
        PoolCallback.__init__(self, every_n_epochs, start_epoch, source)
        self._init_settings(method, **settings)
        check_count(attack_batch_size, "aug.attack_batch_size", 1)
        check_precision(precision, "aug.precision")
        if self.method not in SINGLE_STEP:
            check_steps(steps, "aug.steps")
        self.attack_batch_size, self.steps, self.step_size = int(attack_batch_size), int(steps), step_size
        self.random_start = self.method not in SINGLE_STEP if random_start is None else bool(random_start)
        self.precision = precision
        self._stats: tuple[float, tuple[Tensor, Tensor, Tensor]] | None = None

    @property
    def rebuildable(self) -> bool:
        """Whether a pool is a function of the weights it was made from and the seeds only (a
        random start draws from the global generator, whose state a rebuild cannot replay)."""
        return self.use_eval_mode and not self.random_start

    def check_model(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check_sync_batchnorm(trainer, pl_module)  # Lightning converts BatchNorm before this hook
        super().check_model(trainer, pl_module)

    def make_pool(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> tuple[Tensor, Tensor]:
        """Attack this rank's shard of the chosen samples with the current weights and gather."""
        dm = trainer.datamodule
        chosen = choose_indices(dm.num_train(), self.fraction, self.seed, epoch)
        eps = sample_eps(self.eps, len(chosen), self.eps_sampling, generator_for(self.seed + 1, epoch))
        rank, world = trainer.global_rank, trainer.world_size
        shard, eps = chosen[rank::world], eps[rank::world]
        device = pl_module.device
        eps = eps.to(device)
        loss_fn = getattr(pl_module, "criterion", None)
        advs, targets, zero = [], [], 0.0
        starts = progress(
            range(0, len(shard), self.attack_batch_size),
            desc=f"{self.source} pool, epoch {epoch}", unit="batch",
            enabled=trainer.progress_bar_callback is not None and trainer.is_global_zero,
        )  # fmt: skip
        for start in starts:
            x, y = dm.train_images(shard[start : start + self.attack_batch_size], device, epoch)
            target = y if self.labels == "true" else predicted_labels(pl_module, x, self.use_eval_mode)
            result = perturb(
                pl_module,
                x,
                target,
                eps[start : start + self.attack_batch_size],
                self.method,
                steps=self.steps,
                step_size=self.step_size,
                random_start=self.random_start,
                loss_fn=loss_fn,
                use_eval_mode=self.use_eval_mode,
                precision=self.precision,
            )
            advs.append(result.images)
            targets.append(y)
            zero += result.zero_grad_fraction * len(x)
        if advs:
            adv, masks = torch.cat(advs), torch.cat(targets)
        else:  # a DDP rank with an empty shard still joins the gather
            adv, masks = dm.train_images(shard, device, epoch)
        clean, _ = dm.train_images(shard[: self.stats_rows], epoch=epoch)
        n = len(clean)
        self._stats = (zero / max(len(shard), 1), (clean, masks[:n], adv[:n]))
        return gather_rows(trainer, adv), gather_rows(trainer, masks)

    def after_fill(self, trainer, pl_module, epoch, num, seconds, remade) -> None:
        zero_frac, stats = self._stats
        self._stats = None
        if not remade:  # a pool remade on resume logs nothing: the uninterrupted run did
            self.report(trainer, pl_module, epoch, num, seconds, zero_frac, *stats)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history = list(state_dict.get("history", []))
