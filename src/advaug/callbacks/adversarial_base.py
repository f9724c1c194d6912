"""``AdversarialProducer``: what the regenerate and free adversarial producers share — their
settings and checks, which samples are attacked with which eps, gathering under DDP, and the
report of each pool (loss change, zero-gradient share, history, figure)."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from advaug.attacks import eval_mode
from advaug.errors import ConfigError
from advaug.figures import adversarial_grid
from advaug.loggers import log_overlays
from advaug.rules import (
    check_attack,
    check_eps,
    check_eps_sampling,
    check_fraction,
    check_labels,
    check_num_classes,
)

log = logging.getLogger(__name__)



def generator_for(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def choose_indices(n: int, fraction: float, seed: int, epoch: int) -> Tensor:
    """Sorted indices of the ``round(fraction * n)`` (at least 1) training samples to attack."""
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=generator_for(seed, epoch))[:k].sort().values


def gather_rows(trainer: L.Trainer, tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (rows may differ in number per rank) from all ranks, in rank order."""
    if trainer.world_size == 1:
        return tensor
    strategy = trainer.strategy
    sizes = strategy.all_gather(torch.tensor([len(tensor)], device=tensor.device)).view(-1)
    padded = tensor.new_zeros((int(sizes.max()), *tensor.shape[1:]))
    padded[: len(tensor)] = tensor
    gathered = strategy.all_gather(padded)  # (world, max_rows, ...)
    return torch.cat([gathered[r, : int(sizes[r])] for r in range(trainer.world_size)])


def check_two_class_output(pl_module: L.LightningModule, image: Tensor) -> None:
    """A single output channel makes the cross-entropy input gradient identically zero."""
    with torch.no_grad(), eval_mode(pl_module):
        logits = pl_module(image.to(pl_module.device))
    channels = logits.shape[1] if logits.ndim == 4 else 1
    check_num_classes(channels, f"the model's output channels (it outputs {tuple(logits.shape)})")


class AdversarialProducer:
    """Settings and reporting of an adversarial producer (mixed into its Lightning callback).

    Args:
        method: ``fgsm`` | ``invfgsm`` | ``pgd`` | ``invpgd``.
        eps: perturbation size on the [0, 1] image scale (paper default 0.1).
        eps_sampling: ``fixed`` (eps for every sample) or ``uniform`` (sigma ~ U(0, eps], paper eq. 2/4).
        labels: ``true`` (ground-truth mask, the paper) or ``pred`` (the model's prediction).
        fraction: share of the clean training set that is attacked, in (0, 1].
        seed: seeds the choice of samples and the eps draws (with the epoch).
        loss_stats_samples: how many attacked samples the logged loss change is measured on.
        figure_samples: rows of the PNG grid written per pool (0 = no figure).
        figure_every_n_epochs: write that grid only for pools of epochs 0, n, 2n, ...
        use_eval_mode: measure (and, regenerating, attack) with BatchNorm/Dropout in eval mode.
    """

    def _init_settings(
        self,
        method: str = "fgsm",
        eps: float = 0.1,
        eps_sampling: str = "uniform",
        labels: str | bool = "true",
        fraction: float = 1.0,
        seed: int = 0,
        loss_stats_samples: int = 16,
        figure_samples: int = 4,
        figure_every_n_epochs: int = 1,
        use_eval_mode: bool = True,
    ) -> None:
        method = check_attack(str(method), "aug.method")
        check_eps(eps, "aug.eps")
        check_eps_sampling(eps_sampling, "aug.eps_sampling")
        labels = check_labels(labels, "aug.labels")
        fraction = check_fraction(fraction)
        if int(figure_every_n_epochs) < 1:
            raise ConfigError(f"figure_every_n_epochs={figure_every_n_epochs}: must be at least 1.")
        self.method = method
        self.eps, self.eps_sampling, self.labels = float(eps), eps_sampling, labels
        self.fraction, self.seed = float(fraction), int(seed)
        self.loss_stats_samples, self.figure_samples = int(loss_stats_samples), int(figure_samples)
        self.figure_every_n_epochs, self.use_eval_mode = int(figure_every_n_epochs), bool(use_eval_mode)
        self.history: list[dict[str, float]] = []

    def check_sync_batchnorm(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A train-mode SyncBatchNorm forward waits for every rank, but ranks attack (and measure
        the loss change on) different numbers of batches: refuse before it hangs."""
        if self.use_eval_mode or trainer.world_size == 1:
            return
        if any(isinstance(m, torch.nn.SyncBatchNorm) for m in pl_module.modules()):
            raise ConfigError(
                "aug.callbacks.adversarial.use_eval_mode=false with trainer.sync_batchnorm=true under DDP: "
                "each train-mode forward of the attack then waits for all ranks, which attack different "
                "numbers of batches, so training would hang. Keep use_eval_mode=true, or set "
                "trainer.sync_batchnorm=false."
            )

    @property
    def stats_rows(self) -> int:
        """How many attacked samples the report needs (loss change and figure)."""
        return max(self.loss_stats_samples, self.figure_samples)

    # -- the report of a pool --------------------------------------------------------------
    def _loss_change(self, pl_module, clean, masks, adv) -> tuple[Tensor, Tensor]:
        loss_fn = getattr(pl_module, "criterion", None) or torch.nn.functional.cross_entropy
        n = min(self.loss_stats_samples, len(clean))
        device = pl_module.device
        with torch.no_grad(), eval_mode(pl_module, self.use_eval_mode):
            x, a, y = clean[:n].to(device), adv[:n].to(device), masks[:n].to(device).long()
            return loss_fn(pl_module(x).float(), y), loss_fn(pl_module(a).float(), y)

    def _mean_losses(self, trainer, pl_module, clean, masks, adv) -> tuple[float, float]:
        """Loss on the clean samples and on their adversarial copies, sample means over all
        ranks. Every rank joins the reduction, also one with no samples to measure (an empty
        DDP shard, no chosen sample seen in free mode): a rank skipping it would hang the rest."""
        n = min(self.loss_stats_samples, len(clean))
        sums = torch.zeros(3, device=pl_module.device)  # clean loss x n, adversarial loss x n, n
        if n > 0:
            loss_clean, loss_adv = self._loss_change(pl_module, clean, masks, adv)
            sums = torch.stack([loss_clean.float() * n, loss_adv.float() * n, sums.new_tensor(float(n))])
        if trainer.world_size > 1:
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
        total_clean, total_adv, count = sums.tolist()
        if count == 0:
            return float("nan"), float("nan")
        return total_clean / count, total_adv / count

    def report(self, trainer, pl_module, epoch, num, seconds, zero_frac, clean, masks, adv) -> None:
        """Log the pool of ``epoch`` (``num`` samples, made in ``seconds``): ``clean``, ``masks``
        and ``adv`` are this rank's first attacked samples, for the loss change and the figure."""
        loss_clean, loss_adv = self._mean_losses(trainer, pl_module, clean, masks, adv)
        stats = {
            "adv/num_samples": float(num),
            "adv/gen_time_s": float(seconds),
            "adv/loss_clean": loss_clean,
            "adv/loss_adv": loss_adv,
            "adv/loss_change": loss_adv - loss_clean,
            "adv/zero_grad_frac": float(zero_frac),
        }
        self.history.append({"epoch": epoch, **stats})
        for logger in trainer.loggers:  # Lightning loggers write on rank 0 only
            logger.log_metrics(stats, step=trainer.global_step)
        if trainer.is_global_zero:
            log.info(
                "adversarial pool for epoch %d: %s",
                epoch,
                "  ".join(f"{k[4:]}={v:.4g}" for k, v in stats.items()),
            )
            if self.figure_samples > 0 and len(clean) and epoch % self.figure_every_n_epochs == 0:
                self._figure(trainer, pl_module, epoch, clean, masks, adv)

    def _figure(self, trainer, pl_module, epoch, clean, masks, adv) -> Path:
        k = min(self.figure_samples, len(clean))
        with torch.no_grad(), eval_mode(pl_module):
            preds = pl_module(adv[:k].to(pl_module.device)).argmax(1).cpu()
        path = Path(trainer.default_root_dir) / "figures" / f"adv_epoch{epoch:03d}.png"
        adversarial_grid(
            clean[:k].cpu(),
            masks[:k].cpu(),
            adv[:k].cpu(),
            path,
            preds=preds,
            max_samples=k,
            title=f"{self.method} eps={self.eps:g} ({self.eps_sampling}), pool for epoch {epoch}",
        )
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="adv/samples", images=[str(path)], step=trainer.global_step)
        layers = {"ground_truth": masks[:k].cpu(), "prediction": preds}
        log_overlays(trainer.loggers, "adv/overlays", adv[:k].cpu(), layers, pl_module.num_classes,
                     f"{self.method} epoch {epoch}", trainer.global_step)  # fmt: skip
        return path
