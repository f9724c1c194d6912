"""``AdvChainPool``: fill a pool slot with AdvChain copies of the training set (noise, bias
field, elastic deformation, affine; :mod:`advaug.advchain`), their parameters optimised against
the *current* weights on the label-free divergence; geometric transforms move the masks too.

Which epochs get a fresh pool is :class:`~advaug.callbacks.pool.PoolCallback`'s schedule, the
samples are the DataModule's (base-augmented for the epoch with ``base=``), the slot is declared
adversarial (``model.aux_norm`` routes it through the twin layers). The random starts come from
a generator seeded by ``(seed, epoch)``, so with ``use_eval_mode`` a pool is a function of the
weights and the seed, and a checkpoint written right after it leaves it out (remade on resume).
Under DDP each rank transforms ``chosen[rank::world_size]`` and the shards are all-gathered.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from advaug.advchain import ChainBudgets, ChainObjective, optimise_chain
from advaug.callbacks.adversarial_base import (
    choose_indices,
    gather_rows,
    generator_for,
)
from advaug.callbacks.weights_pool import WeightsPool
from advaug.figures import image_grid
from advaug.loggers import log_overlays
from advaug.rules import check_count, check_fraction

log = logging.getLogger(__name__)
FIGURE_COLUMNS = ("clean", "transformed", "mask", "warped mask")


class AdvChainPool(WeightsPool):
    """Adds adversarially transformed copies of ``fraction`` of the training set to the train set.

    Args:
        budgets, objective: the chain and how it is optimised (:mod:`advaug.advchain`).
        fraction: share of the clean training set transformed, in (0, 1].
        seed: seeds the choice of samples and the random starts (with the epoch).
        attack_batch_size: batch of the optimisation passes.
        use_eval_mode: optimise with BatchNorm/Dropout in eval mode (else train mode, running
            statistics put back after).
        figure_samples, figure_every_n_epochs: rows of ``figures/adv_epochNNN.png`` and which pools get one.
        every_n_epochs, start_epoch, source: the schedule and the slot (:class:`PoolCallback`).
    """

    default_source = "advchain"

    def __init__(
        self,
        budgets: ChainBudgets,
        objective: ChainObjective,
        fraction: float = 1.0,
        seed: int = 0,
        attack_batch_size: int = 32,
        use_eval_mode: bool = True,
        figure_samples: int = 4,
        figure_every_n_epochs: int = 1,
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        source: str | None = None,
    ) -> None:
        super().__init__(every_n_epochs, start_epoch, source)
        fraction = check_fraction(fraction)
        self.budgets, self.objective = budgets, objective
        self.fraction, self.seed = float(fraction), int(seed)
        self.attack_batch_size = check_count(attack_batch_size, "aug.attack_batch_size", 1)
        self.use_eval_mode = bool(use_eval_mode)
        self.figure_samples = check_count(figure_samples, "aug.figure_samples", 0)
        self.figure_every_n_epochs = check_count(figure_every_n_epochs, "aug.figure_every_n_epochs", 1)
        self.history: list[dict[str, float]] = []
        self._report: tuple[Tensor, tuple[Tensor, ...]] | None = None

    @property
    def rebuildable(self) -> bool:
        """Seeded starts: the pool is a function of the weights and the seed (in eval mode)."""
        return self.use_eval_mode

    def make_pool(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> tuple[Tensor, Tensor]:
        dm = trainer.datamodule
        chosen = choose_indices(dm.num_train(), self.fraction, self.seed, epoch)
        shard = chosen[trainer.global_rank :: trainer.world_size]
        generator = generator_for(self.seed + 2, epoch)
        device = pl_module.device
        images, masks, start, end = [], [], [], []
        shown: tuple[Tensor, ...] | None = None
        for first in range(0, len(shard), self.attack_batch_size):
            x, y = dm.train_images(shard[first : first + self.attack_batch_size], device, epoch)
            result = optimise_chain(
                pl_module, x, self.budgets, self.objective, use_eval_mode=self.use_eval_mode, generator=generator
            )
            t = result.transformed
            images.append(t.images)
            masks.append(t.move_masks(y))
            start.append(result.start)
            end.append(result.end)
            if shown is None:
                k = self.figure_samples
                shown = (x[:k].cpu(), t.images[:k].cpu(), y[:k].cpu(), masks[-1][:k].cpu())
        if images:
            out_images, out_masks = torch.cat(images), torch.cat(masks)
            first_scores, last_scores = torch.cat(start), torch.cat(end)
            scores = torch.stack([first_scores.sum(), last_scores.sum(), first_scores.new_tensor(float(len(shard)))])
        else:  # a DDP rank with an empty shard still joins the gather
            out_images, out_masks = dm.train_images(shard, device, epoch)
            scores = torch.zeros(3, device=device)
        self._report = (scores.float(), shown)
        return gather_rows(trainer, out_images), gather_rows(trainer, out_masks)

    def after_fill(self, trainer, pl_module, epoch, num, seconds, remade) -> None:
        scores, shown = self._report
        self._report = None
        if trainer.world_size > 1:  # every rank joins, also one with an empty shard
            scores = trainer.strategy.reduce(scores, reduce_op="sum")
        if remade:  # the uninterrupted run reported this pool
            return
        total_start, total_end, count = scores.tolist()
        count = max(count, 1.0)
        stats = {
            "adv/num_samples": float(num),
            "adv/gen_time_s": float(seconds),
            "adv/divergence_start": total_start / count,
            "adv/divergence_end": total_end / count,
        }
        self.history.append({"epoch": epoch, **stats})
        for logger in trainer.loggers:
            logger.log_metrics(stats, step=trainer.global_step)
        if trainer.is_global_zero:
            log.info("advchain pool for epoch %d: %s", epoch, "  ".join(f"{k[4:]}={v:.4g}" for k, v in stats.items()))
            if self.figure_samples and shown is not None and epoch % self.figure_every_n_epochs == 0:
                self._figure(trainer, epoch, shown)

    def _figure(self, trainer: L.Trainer, epoch: int, shown: tuple[Tensor, ...]) -> Path:
        path = Path(trainer.default_root_dir) / "figures" / f"adv_epoch{epoch:03d}.png"
        rows = [list(row) for row in zip(*shown, strict=True)]
        chain = " > ".join(self.budgets.transforms)
        image_grid(rows, FIGURE_COLUMNS, path, title=f"advchain ({chain}), pool for epoch {epoch}")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="adv/samples", images=[str(path)], step=trainer.global_step)
        _, transformed, _, warped = shown
        log_overlays(trainer.loggers, "adv/overlays", transformed, {"warped_mask": warped},
                     trainer.lightning_module.num_classes, f"advchain epoch {epoch}", trainer.global_step)  # fmt: skip
        return path

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.history = list(state_dict.get("history", []))
