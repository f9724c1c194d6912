"""``FreeAdversarial``: adversarial copies from the training step's own input gradient
("adversarial training for free", Shafahi et al. 2019; ``aug.mode=free``).

The batch image gets ``requires_grad`` in ``on_train_batch_start``; the ordinary training
backward then leaves ``grad_x L`` on it, and ``on_train_batch_end`` turns it into
``x ± eps * sign(grad)`` (:func:`advaug.attacks.signed_step`) at almost no cost. The copies
collected during epoch ``e`` become the pool slot of epoch ``e + 1``. Staleness: each copy uses the
gradient of the weights *before* that batch's optimizer step, and is trained on up to one epoch
(one pass of updates) later; the gradient is taken in train mode (BatchNorm batch statistics) with
the training loss and true labels. Single-step methods only. The buffer of the epoch in progress
is not checkpointed (docs/adversarial.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import lightning as L
import torch
from torch import Tensor

from advaug.attacks import sample_eps, signed_step
from advaug.callbacks.adversarial_base import (
    AdversarialProducer,
    check_two_class_output,
    choose_indices,
    generator_for,
)
from advaug.callbacks.pool import pool_of
from advaug.callbacks.schedule import Schedule
from advaug.callbacks.stopping import fit_ends_before
from advaug.errors import ConfigError
from advaug.rules import SINGLE_STEP

log = logging.getLogger(__name__)


class FreeAdversarial(AdversarialProducer, L.Callback):
    """Collects ``x ± eps * sign(grad_x L)`` of the chosen clean samples during each training
    epoch and publishes them as the pool slot ``source`` of the next (args as
    :class:`AdversarialProducer`, plus the :class:`Schedule`; ``random_start`` only to refuse it)."""

    def __init__(
        self,
        method: str = "fgsm",
        every_n_epochs: int = 1,
        start_epoch: int = 0,
        source: str | None = None,
        random_start: bool | None = None,
        **settings: Any,
    ) -> None:
        self._init_settings(method, **settings)
        if random_start:
            raise ConfigError(
                "aug.mode=free with aug.random_start=true: free mode reuses the training gradient at the "
                "clean image, so it cannot start from a random point; set aug.random_start=false or "
                "aug.mode=regenerate."
            )
        if self.method not in SINGLE_STEP:
            raise ConfigError(
                f"aug.mode=free with aug.method={method}: free mode reuses the one training gradient, "
                "so it supports the single-step methods fgsm and invfgsm only."
            )
        if self.labels != "true":
            raise ConfigError("aug.mode=free with aug.labels=pred: the training backward uses the true mask.")
        self.schedule = Schedule(int(start_epoch), int(every_n_epochs))
        self.source = str(source or "adversarial")
        # state (checkpointed)
        self.pool_epoch: int | None = None  # epoch whose training used the current pool first
        self.next_epoch = 0  # the epoch a resumed run starts with
        # the buffer of the epoch in progress
        self._collecting = False
        self._chosen: Tensor | None = None
        self._buffer: dict[str, Any] = {}
        self._eps_table: Tensor | None = None
        self._on_device: tuple[Tensor, Tensor] | None = None
        self._free_seconds = 0.0

    @property
    def state_key(self) -> str:
        return self._generate_state_key(source=self.source)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            pool_of(trainer).mark_adversarial(self.source)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.check_sync_batchnorm(trainer, pl_module)  # Lightning converts BatchNorm before this hook
        check_two_class_output(pl_module, trainer.datamodule.train_images(torch.arange(1))[0])

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch
        self.next_epoch = epoch
        nxt = epoch + 1
        self._collecting = self.schedule.due(nxt) and not fit_ends_before(trainer, nxt)
        if self._collecting:
            n = trainer.datamodule.num_train()
            self._chosen = choose_indices(n, self.fraction, self.seed, nxt)
            # sigma per clean sample index, drawn once per epoch: no host-to-device copy per batch
            self._eps_table = sample_eps(self.eps, n, self.eps_sampling, generator_for(self.seed + 1, nxt))
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
        self._collect(pl_module, batch, x.detach(), grad.float())
        self._free_seconds += time.perf_counter() - started

    def _collect(self, pl_module, batch, clean: Tensor, grad: Tensor) -> None:
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
        adv = signed_step(clean, torch.nan_to_num(grad), eps_table[rows], self.method)
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
        # of it and copied it to the GPU, one host sync per step
        buf["filled"].index_fill_(0, slots, True)
        zeros = ((grad == 0).flatten(1).sum(1).float() * keep).sum()
        buf["zero"].append(torch.stack([zeros, keep.sum().float() * grad[0].numel()]))  # no sync
        if sum(len(c) for c in buf["clean"]) < 4 * self.stats_rows / self.fraction:  # enough to keep `wanted`
            buf["clean"].append(clean)
            buf["clean_keep"].append(keep)
            buf["clean_slot"].append(slots)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        nxt = trainer.current_epoch + 1
        self.next_epoch = nxt
        if fit_ends_before(trainer, nxt):
            self._collecting, self._buffer = False, {}
        elif self._collecting:
            self._publish(trainer, pl_module, nxt)

    def _publish(self, trainer: L.Trainer, pl_module: L.LightningModule, epoch: int) -> None:
        started = time.perf_counter()
        buf, self._collecting, self._buffer = self._buffer, False, {}
        count = int(buf["filled"][:-1].sum()) if "filled" in buf else 0  # the one host sync of the epoch
        if count == 0 and trainer.world_size == 1:  # under DDP every rank must join the gather
            log.warning("free adversarial mode: no clean chosen sample was trained on in epoch %d", epoch - 1)
            return
        if "adv" not in buf:
            raise RuntimeError("free adversarial mode: no batch was seen on this rank")
        adv, masks, filled = buf["adv"][:-1], buf["mask"][:-1], buf["filled"][:-1]
        pool_images, pool_masks = self._gather_slots(trainer, adv, masks, filled)
        zero = torch.stack(buf["zero"]).sum(0).cpu()
        if buf["clean"]:  # this rank's first kept clean rows and the slots of their copies
            keep = torch.cat(buf["clean_keep"])
            clean = torch.cat(buf["clean"])[keep][: self.stats_rows]
            slots = torch.cat(buf["clean_slot"])[keep][: self.stats_rows]
            stats = (clean.cpu(), masks[slots], adv[slots])
        else:  # no loss statistics and no figure asked for: nothing was kept
            stats = (adv.new_empty((0, *adv.shape[1:]), device="cpu"), masks[:0], adv[:0])
        pool_of(trainer).put(self.source, pool_images, pool_masks)
        self.pool_epoch = epoch
        seconds = time.perf_counter() - started + self._free_seconds  # the per-batch work counts too
        self.report(trainer, pl_module, epoch, len(pool_images), seconds, float(zero[0] / zero[1]), *stats)

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

    def state_dict(self) -> dict[str, Any]:
        return {"pool_epoch": self.pool_epoch, "next_epoch": self.next_epoch, "history": list(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.pool_epoch = state_dict.get("pool_epoch")
        self.next_epoch = int(state_dict.get("next_epoch", 0))
        self.history = list(state_dict.get("history", []))
