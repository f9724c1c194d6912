"""``AdversarialAugmentation``: fill the DataModule's extra-sample pool with FGSM / InvFGSM / PGD
copies of the training set made from the *current* weights (the paper's sections 2, 3.2, 3.3).

Two modes:

``regenerate`` (the paper)
    Every ``every_n_epochs`` epochs from ``start_epoch``, attack a seeded ``fraction`` of the clean
    training set in batches of ``attack_batch_size`` with the unwrapped LightningModule and hand the
    result to ``datamodule.set_extra``. Lightning rebuilds the train loader *before*
    ``on_train_epoch_start``, so the pool for epoch ``e + 1`` is made in ``on_train_epoch_end`` of
    epoch ``e`` and the pool for the first epoch in ``on_fit_start`` (the last hook before the fit
    loop builds its first train loader). With DDP each rank attacks ``chosen[rank::world_size]``
    and the shards are all-gathered, so every rank holds the same pool.

``free`` ("adversarial training for free", Shafahi et al. 2019)
    The batch image gets ``requires_grad`` in ``on_train_batch_start``; the ordinary training
    backward then leaves ``grad_x L`` on it, and ``on_train_batch_end`` turns it into
    ``x ± eps * sign(grad)`` at almost no cost. The copies collected during epoch ``e`` become
    the pool of epoch ``e + 1``. Staleness: each copy uses the gradient of the weights *before*
    that batch's optimizer step, and is trained on up to one epoch (one pass of updates) later;
    the gradient is taken in train mode (BatchNorm batch statistics) with the training loss and
    true labels. Single-step methods only.

The callback's own state (which epoch the pool was made for, where to resume, its log) is in
``state_dict``; random draws are seeded by ``(seed, epoch)`` so a resumed run draws the same. The
pool itself travels in the DataModule's ``state_dict``, except when a checkpoint is written right
after the pool was made from the weights it holds (``regenerate`` at an epoch end, eval mode, no
random start): then the pool is left out and a resumed run remakes it from those weights.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from torch import Tensor

from advaug.attacks import DIRECTION, check_eps, eval_mode, perturb, predicted_labels, sample_eps
from advaug.callbacks.resume_state import rng_state_kept
from advaug.callbacks.stopping import fit_ends_before
from advaug.errors import ConfigError
from advaug.figures import adversarial_grid

log = logging.getLogger(__name__)

# config spelling -> attacks.py name
METHODS = {
    "fgsm": "fgsm",
    "invfgsm": "inv_fgsm",
    "inv_fgsm": "inv_fgsm",
    "pgd": "pgd",
    "invpgd": "inv_pgd",
    "inv_pgd": "inv_pgd",
}
MODES = ("regenerate", "free")
LABELS = ("true", "pred")


def is_scheduled(epoch: int, start_epoch: int, every_n_epochs: int) -> bool:
    """Whether the pool used in ``epoch`` is a fresh one (``start_epoch``, then every n epochs)."""
    return epoch >= start_epoch and (epoch - start_epoch) % every_n_epochs == 0


def _generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def choose_indices(n: int, fraction: float, seed: int, epoch: int) -> Tensor:
    """Sorted indices of the ``round(fraction * n)`` (at least 1) training samples to attack."""
    k = max(1, round(fraction * n))
    return torch.randperm(n, generator=_generator(seed, epoch))[:k].sort().values


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


class AdversarialAugmentation(L.Callback):
    """Adds adversarial (``fgsm``, ``pgd``) or helpful (``invfgsm``, ``invpgd``) copies of the
    training images, made from the current model, to the train set (see the module docstring).

    Args:
        method: ``fgsm`` | ``invfgsm`` | ``pgd`` | ``invpgd`` (``inv_fgsm`` / ``inv_pgd`` also work).
        eps: perturbation size on the [0, 1] image scale (paper default 0.1).
        eps_sampling: ``fixed`` (eps for every sample) or ``uniform`` (sigma ~ U(0, eps], paper eq. 2/4).
        labels: ``true`` (ground-truth mask, the paper) or ``pred`` (the model's prediction).
        every_n_epochs, start_epoch: which epochs train on a fresh pool.
        fraction: share of the clean training set that is attacked, in (0, 1].
        mode: ``regenerate`` or ``free``.
        attack_batch_size: batch size of the attack forward/backward passes (``regenerate``).
        steps, step_size, random_start: PGD settings (ignored by the single-step methods).
        use_eval_mode: attack with BatchNorm/Dropout in eval mode (``regenerate``).
        precision: ``fp32`` or ``bf16`` for the attack's forward/backward.
        seed: seeds the choice of samples and the eps draws (with the epoch).
        loss_stats_samples: how many attacked samples the logged loss change is measured on.
        figure_samples: rows of the PNG grid written per regeneration (0 = no figure).
        figure_every_n_epochs: write that grid only for pools of epochs 0, n, 2n, ... (long runs on
            large images otherwise write one ~1 MB PNG per epoch).
    """

    def __init__(
        self,
        method: str = "fgsm",
        eps: float = 0.1,
        eps_sampling: str = "uniform",
        labels: str | bool = "true",
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        fraction: float = 1.0,
        mode: str = "regenerate",
        attack_batch_size: int = 32,
        steps: int = 10,
        step_size: float | None = None,
        random_start: bool = True,
        use_eval_mode: bool = True,
        precision: str = "fp32",
        seed: int = 0,
        loss_stats_samples: int = 16,
        figure_samples: int = 4,
        figure_every_n_epochs: int = 1,
    ) -> None:
        if str(method).lower() not in METHODS:
            raise ConfigError(f"aug.method={method!r}: choose one of fgsm, invfgsm, pgd, invpgd.")
        check_eps(eps, "aug.eps")
        if eps_sampling not in ("fixed", "uniform"):
            raise ConfigError(f"aug.eps_sampling={eps_sampling!r}: choose 'fixed' or 'uniform'.")
        labels = "true" if labels is True else str(labels).lower()  # YAML reads `true` as a bool
        if labels not in LABELS:
            raise ConfigError(f"aug.labels={labels!r}: choose 'true' (ground truth) or 'pred' (prediction).")
        if not 0.0 < float(fraction) <= 1.0:
            raise ConfigError(
                f"aug.fraction={fraction}: must lie in (0, 1] (1.0 attacks the whole train set)."
            )
        if mode not in MODES:
            raise ConfigError(f"aug.mode={mode!r}: choose 'regenerate' or 'free'.")
        if int(every_n_epochs) < 1 or int(start_epoch) < 0:
            raise ConfigError(
                f"aug.every_n_epochs={every_n_epochs}, aug.start_epoch={start_epoch}: need >= 1 and >= 0."
            )
        if int(attack_batch_size) < 1:
            raise ConfigError(f"aug.attack_batch_size={attack_batch_size}: must be at least 1.")
        if precision not in ("fp32", "bf16"):
            raise ConfigError(
                f"aug.precision={precision!r}: choose 'fp32' or 'bf16' (fp16 flushes gradients)."
            )
        self.method = METHODS[str(method).lower()]
        if mode == "free" and self.method not in ("fgsm", "inv_fgsm"):
            raise ConfigError(
                f"aug.mode=free with aug.method={method}: free mode reuses the one training gradient, "
                "so it supports the single-step methods fgsm and invfgsm only."
            )
        if mode == "free" and labels != "true":
            raise ConfigError("aug.mode=free with aug.labels=pred: the training backward uses the true mask.")
        self.eps, self.eps_sampling, self.labels = float(eps), eps_sampling, labels
        self.every_n_epochs, self.start_epoch = int(every_n_epochs), int(start_epoch)
        self.fraction, self.mode = float(fraction), mode
        self.attack_batch_size, self.steps, self.step_size = int(attack_batch_size), int(steps), step_size
        self.random_start, self.use_eval_mode, self.precision = (
            bool(random_start),
            bool(use_eval_mode),
            precision,
        )
        self.seed, self.loss_stats_samples = int(seed), int(loss_stats_samples)
        self.figure_samples = int(figure_samples)
        if int(figure_every_n_epochs) < 1:
            raise ConfigError(f"figure_every_n_epochs={figure_every_n_epochs}: must be at least 1.")
        self.figure_every_n_epochs = int(figure_every_n_epochs)
        # state (checkpointed)
        self.pool_epoch: int | None = None  # epoch whose training used the current pool first
        self.next_epoch = 0  # the epoch a resumed run starts with
        self.history: list[dict[str, float]] = []
        self._restored = False
        # free-mode buffer of the epoch in progress (not checkpointed: see docs/adversarial.md)
        self._collecting = False
        self._chosen: Tensor | None = None
        self._buffer: dict[str, list[Tensor]] = {}
        self._eps_table: Tensor | None = None
        self._on_device: tuple[Tensor, Tensor] | None = None
        self._free_seconds = 0.0

    @property
    def state_key(self) -> str:
        return self._generate_state_key(method=self.method, mode=self.mode)

    # -- checks ----------------------------------------------------------------------------
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        dm = trainer.datamodule
        if dm is None or not (hasattr(dm, "set_extra") and hasattr(dm, "train_images")):
            raise ConfigError(
                "AdversarialAugmentation needs a DataModule with set_extra() and train_images() "
                "(advaug.data.SegmentationDataModule); pass it as trainer.fit(model, datamodule=...)."
            )
        if trainer.reload_dataloaders_every_n_epochs != 1:
            raise ConfigError(
                f"trainer.reload_dataloaders_every_n_epochs={trainer.reload_dataloaders_every_n_epochs}: "
                "the adversarial pool changes between epochs, set it to 1."
            )

    @staticmethod
    def _check_model(pl_module: L.LightningModule, image: Tensor) -> None:
        with torch.no_grad(), eval_mode(pl_module):
            logits = pl_module(image.to(pl_module.device))
        if logits.ndim != 4 or logits.shape[1] < 2:
            raise ConfigError(
                f"the model outputs {tuple(logits.shape)}: a single output channel makes the cross-entropy "
                "input gradient identically zero, so the attack would do nothing. Use 2 classes "
                "(background + foreground), e.g. dataset.num_classes=2."
            )

    def _check_sync_batchnorm(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
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
    def rebuildable(self) -> bool:
        """Whether a pool is a function of the weights it was made from and the seeds only."""
        deterministic = self.method in ("fgsm", "inv_fgsm") or not self.random_start
        return self.mode == "regenerate" and self.use_eval_mode and deterministic

    def _last_epoch(self, trainer: L.Trainer, epoch: int) -> bool:
        return fit_ends_before(trainer, epoch)

    # -- regenerate mode -------------------------------------------------------------------
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check_sync_batchnorm(trainer, pl_module)  # Lightning converts BatchNorm before this hook
        images, _ = trainer.datamodule.train_images(torch.arange(1))
        self._check_model(pl_module, images)
        # A resumed run restores the pool before this hook, but the loops' epoch only after it.
        epoch = self.next_epoch if self._restored else trainer.current_epoch
        if (
            self._restored
            and getattr(trainer.datamodule, "pool_left_out", False)
            and self.pool_epoch is not None
        ):
            # the checkpoint holds the weights this pool was made from: remake it, logging nothing
            # and drawing nothing from the global generators (the uninterrupted run did not)
            with rng_state_kept():
                self.regenerate(trainer, pl_module, self.pool_epoch, report=False)
        if (
            self.mode == "regenerate"
            and is_scheduled(epoch, self.start_epoch, self.every_n_epochs)
            and self.pool_epoch != epoch
            and not self._last_epoch(trainer, epoch)
        ):
            self.regenerate(trainer, pl_module, epoch)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        nxt = trainer.current_epoch + 1
        self.next_epoch = nxt
        if self._last_epoch(trainer, nxt):
            self._collecting, self._buffer = False, {}
            if self.mode == "regenerate" and is_scheduled(nxt, self.start_epoch, self.every_n_epochs):
                # no epoch trains on this pool any more (a run extended from here makes a fresh
                # one first), so the final checkpoint need not carry it
                trainer.datamodule.set_extra(None)
            return
        if self.mode == "regenerate" and is_scheduled(nxt, self.start_epoch, self.every_n_epochs):
            self.regenerate(trainer, pl_module, nxt)
        elif self.mode == "free" and self._collecting:
            self._publish_free(trainer, pl_module, nxt)

    def regenerate(
        self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int, report: bool = True
    ) -> None:
        """Attack this rank's shard of the chosen samples with the current weights, gather, set the
        pool; ``report=False`` skips the logs, history and figure (a pool remade on resume)."""
        started = time.perf_counter()
        dm = trainer.datamodule
        chosen = choose_indices(dm.num_train(), self.fraction, self.seed, epoch)
        eps = sample_eps(self.eps, len(chosen), self.eps_sampling, _generator(self.seed + 1, epoch))
        rank, world = trainer.global_rank, trainer.world_size
        shard, eps = chosen[rank::world], eps[rank::world]
        device = pl_module.device
        eps = eps.to(device)
        loss_fn = getattr(pl_module, "criterion", None)
        advs, targets, zero = [], [], 0.0
        for start in range(0, len(shard), self.attack_batch_size):
            x, y = dm.train_images(shard[start : start + self.attack_batch_size], device)
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
            adv, masks = dm.train_images(shard, device)
        clean, _ = dm.train_images(shard[: max(self.loss_stats_samples, self.figure_samples)])
        n = len(clean)
        pool = gather_rows(trainer, adv), gather_rows(trainer, masks)
        zero_frac = zero / max(len(shard), 1)
        self._set_pool(
            trainer, pl_module, epoch, pool, (clean, masks[:n], adv[:n]), zero_frac, started, report
        )

    # -- free mode -------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        self.next_epoch = epoch
        if self.mode == "regenerate" and trainer.datamodule is not None:
            trainer.datamodule.pool_rebuildable = False  # the weights change from here on
        nxt = epoch + 1
        self._collecting = (
            self.mode == "free"
            and is_scheduled(nxt, self.start_epoch, self.every_n_epochs)
            and not self._last_epoch(trainer, nxt)
        )
        if self._collecting:
            n = trainer.datamodule.num_train()
            self._chosen = choose_indices(n, self.fraction, self.seed, nxt)
            # sigma per clean sample index, drawn once per epoch: no host-to-device copy per batch
            self._eps_table = sample_eps(self.eps, n, self.eps_sampling, _generator(self.seed + 1, nxt))
            self._on_device = None
            self._buffer = {"zero": [], "clean": [], "clean_keep": [], "clean_slot": []}  # + slots
            self._free_seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._collecting:
            batch["image"].requires_grad_(True)  # the training backward fills batch["image"].grad

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        last = batch_idx + 1 >= trainer.num_training_batches
        self.next_epoch = trainer.current_epoch + (1 if last else 0)
        if not self._collecting:
            return
        started = time.perf_counter()
        x = batch["image"]
        grad = x.grad
        x.requires_grad_(False)
        x.grad = None
        if grad is None:
            log.warning(
                "free adversarial mode: the batch image got no gradient; is the training step using it?"
            )
            return
        # Every row is perturbed on the device and the clean, chosen ones are written into slots
        # (below). Selecting them with boolean indexing or .any() instead would stall the GPU
        # queue with a host sync on every training step.
        index = batch["index"]
        k = len(self._chosen)
        if self._on_device is None or self._on_device[0].device != index.device:
            # a lookup table (clean index -> its slot, k if not chosen), not torch.isin: against a
            # long list isin sorts and calls unique(), which waits for the GPU on every step
            slot_of = torch.full((len(self._eps_table),), k, dtype=torch.long)
            slot_of[self._chosen] = torch.arange(k)
            self._on_device = (slot_of.to(index.device), self._eps_table.to(index.device))
        slot_of, eps_table = self._on_device
        rows = index.clamp(min=0)
        keep = (index >= 0) & (slot_of[rows] < k)
        eps = eps_table[rows]
        grad, clean = grad.float(), x.detach()
        step = DIRECTION[self.method] * torch.nan_to_num(grad).sign()
        adv = (clean + eps.view(-1, 1, 1, 1) * step).clamp(0.0, 1.0)
        buf = self._buffer
        if "adv" not in buf:  # one slot per chosen sample (+1 scratch row), on the batch's device
            buf["adv"] = adv.new_empty((k + 1, *adv.shape[1:]))
            # uint8 class ids where they fit (the pool keeps them so): an eighth of long's bytes
            # to hold and to copy to the host at the epoch's end
            small = getattr(pl_module, "num_classes", 257) <= 256
            dtype = torch.uint8 if small else batch["mask"].dtype
            buf["mask"] = batch["mask"].new_empty((k + 1, *batch["mask"].shape[1:]), dtype=dtype)
            buf["filled"] = torch.zeros(k + 1, dtype=torch.bool, device=adv.device)
        # each chosen sample has its own slot, the others go to the scratch row: computed on the
        # device (no host sync), and a sample seen twice (DDP pads the last shard with repeats)
        # overwrites its slot instead of taking a second one
        slots = torch.where(keep, slot_of[rows], k)
        buf["adv"][slots] = adv.detach()
        buf["mask"][slots] = batch["mask"].detach().to(buf["mask"].dtype)
        # index_fill_ takes True as a kernel argument; `filled[slots] = True` made a host tensor
        # of it and copied it to the GPU, one host sync per step (sync_count.py on an H100)
        buf["filled"].index_fill_(0, slots, True)
        zeros = ((grad == 0).flatten(1).sum(1).float() * keep).sum()
        buf["zero"].append(torch.stack([zeros, keep.sum().float() * grad[0].numel()]))  # no sync
        wanted = max(self.loss_stats_samples, self.figure_samples)
        if (
            sum(len(c) for c in buf["clean"]) < 4 * wanted / self.fraction
        ):  # enough rows to hold `wanted` kept ones
            buf["clean"].append(clean)
            buf["clean_keep"].append(keep)
            buf["clean_slot"].append(slots)
        self._free_seconds += time.perf_counter() - started

    def _publish_free(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        started = time.perf_counter()
        buf, self._collecting, self._buffer = self._buffer, False, {}
        count = int(buf["filled"][:-1].sum()) if "filled" in buf else 0  # the one host sync of the epoch
        if count == 0 and trainer.world_size == 1:  # under DDP every rank must join the gather
            log.warning("free adversarial mode: no clean chosen sample was trained on in epoch %d", epoch - 1)
            return
        if "adv" not in buf:
            raise RuntimeError("free adversarial mode: no batch was seen on this rank")
        adv, masks, filled = buf["adv"][:-1], buf["mask"][:-1], buf["filled"][:-1]
        pool = self._gather_slots(trainer, adv, masks, filled)
        zero = torch.stack(buf["zero"]).sum(0).cpu()
        wanted = max(self.loss_stats_samples, self.figure_samples)
        if buf["clean"]:  # this rank's first kept clean rows and the slots of their copies
            keep = torch.cat(buf["clean_keep"])
            clean = torch.cat(buf["clean"])[keep][:wanted]
            slots = torch.cat(buf["clean_slot"])[keep][:wanted]
            stats = (clean.cpu(), masks[slots], adv[slots])
        else:  # no loss statistics and no figure asked for: nothing was kept
            stats = (adv.new_empty((0, *adv.shape[1:]), device="cpu"), masks[:0], adv[:0])
        started -= self._free_seconds  # the per-batch work counts too
        self._set_pool(trainer, pl_module, epoch, pool, stats, float(zero[0] / zero[1]), started)

    @staticmethod
    def _gather_slots(
        trainer: L.Trainer, adv: Tensor, masks: Tensor, filled: Tensor
    ) -> tuple[Tensor, Tensor]:
        """The pool from every rank's slots: each filled slot once, taken from the first rank
        that filled it, in the order of the chosen samples."""
        if trainer.world_size > 1:
            strategy = trainer.strategy
            by_rank = strategy.all_gather(filled.to(torch.uint8)).view(trainer.world_size, -1)
            owner = by_rank.float().argmax(0)  # the first rank holding each slot
            slots = torch.arange(len(filled), device=filled.device)
            adv = strategy.all_gather(adv).view(trainer.world_size, *adv.shape)[owner, slots]
            masks = strategy.all_gather(masks).view(trainer.world_size, *masks.shape)[owner, slots]
            filled = by_rank.bool().any(0)
        return adv[filled], masks[filled]

    def _set_pool(self, trainer, pl_module, epoch, pool, stats, zero_frac, started, report=True) -> None:
        """Hand the pool (images, masks; from all ranks) to the DataModule, log and draw.
        ``stats`` = (clean images, their masks, their adversarial copies) of this rank, for the
        loss change and the figure."""
        pool_images, pool_masks = pool
        trainer.datamodule.set_extra(pool_images, pool_masks, rebuildable=self.rebuildable)
        self.pool_epoch = epoch
        if not report:
            return
        seconds = time.perf_counter() - started
        self._report(trainer, pl_module, epoch, len(pool_images), seconds, zero_frac, *stats)

    # -- logs and figures ------------------------------------------------------------------
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

    def _report(self, trainer, pl_module, epoch, num, seconds, zero_frac, clean, masks, adv) -> None:
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
        return path

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._restored = False  # a later fit of the same callback starts afresh unless it loads again

    # -- checkpoint ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"pool_epoch": self.pool_epoch, "next_epoch": self.next_epoch, "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pool_epoch = state_dict.get("pool_epoch")
        self.next_epoch = int(state_dict.get("next_epoch", 0))
        self.history = list(state_dict.get("history", []))
        self._restored = True
