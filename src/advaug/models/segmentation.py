"""``SegmentationModule``: an smp network, CE (+ optional Dice) loss, torchmetrics per stage."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import lightning as L
import segmentation_models_pytorch as smp
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from advaug.errors import ConfigError
from advaug.metrics import REPORTED, segmentation_metrics, summarize
from advaug.models.divergence import LossWatch
from advaug.models.net_spec import build_net, net_spec
from advaug.models.twin_norm import add_twin_norms, routed
from advaug.rules import check_aux_norm, check_num_classes
from advaug.utils.lightning_compat import logs_written_this_step


class SegmentationLoss(nn.Module):
    """Cross-entropy (the paper's categorical CE) plus an optional multiclass Dice term."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 0.0) -> None:
        super().__init__()
        if ce_weight < 0 or dice_weight < 0 or ce_weight + dice_weight <= 0:
            raise ConfigError(
                f"loss weights ce={ce_weight}, dice={dice_weight}: need non-negative, not both 0."
            )
        self.ce_weight, self.dice_weight = float(ce_weight), float(dice_weight)
        self.dice = smp.losses.DiceLoss(mode="multiclass", from_logits=True) if dice_weight > 0 else None

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.ce_weight * F.cross_entropy(logits, target)
        if self.dice is not None:
            loss = loss + self.dice_weight * self.dice(logits, target)
        return loss


def weighted_loss(
    criterion: Callable, logits: torch.Tensor, target: torch.Tensor, adversarial: torch.Tensor | None, weight: float
) -> torch.Tensor:
    """``criterion`` over the batch, the ``adversarial`` rows (bool, (N,)) weighted by ``weight``:
    ``(n_clean L_clean + w n_adv L_adv) / (n_clean + w n_adv)``. Weight 1 (or no adversarial
    rows known) is the plain loss over the batch, as without the option."""
    if adversarial is None or weight == 1.0:
        return criterion(logits, target)
    n_adv = int(adversarial.sum())
    n_clean = len(adversarial) - n_adv
    total = logits.sum() * 0.0  # in the graph even for a batch whose rows all weigh 0
    if n_clean:
        total = total + n_clean * criterion(logits[~adversarial], target[~adversarial])
    if n_adv and weight:
        total = total + weight * n_adv * criterion(logits[adversarial], target[adversarial])
    return total / max(n_clean + weight * n_adv, 1e-12)


class SegmentationModule(L.LightningModule):
    """Wraps any ``segmentation_models_pytorch`` model producing (N, C, H, W) logits.

    ``compile``: ``True`` or a dict of ``torch.compile`` arguments (``{mode: max-autotune}``)
    compiles the network in place; ``False`` (default) runs it eagerly.

    A non-finite training loss raises :class:`TrainingDivergedError` naming the step. On an
    accelerator (``defer_finite_check=None``, the default) the loss is read asynchronously a step
    or two late (:class:`advaug.models.divergence.LossWatch`) instead of with a host-device sync
    per step; ``True`` / ``False`` force either way.

    ``optimizer`` / ``scheduler`` are Hydra partials (``_partial_: true``) taking the parameters
    and the optimizer respectively; ``scheduler=None`` trains at a constant rate.

    ``aux_norm`` (``none`` | ``stats`` | ``affine``): every BatchNorm gets a twin for the samples
    of adversarial pool slots (AdvProp, :mod:`advaug.models.twin_norm`); a training batch is
    routed by its ``source``, and everything else (validation, test, attacks, export) uses the
    main layers. ``adv_loss_weight`` weighs those samples' loss against the clean ones'
    (``(n_clean L_clean + w n_adv L_adv) / (n_clean + w n_adv)``; 1 = one loss over the batch).

    ``consistency``: a label-free term added to every training step's loss, called as
    ``consistency(module, forward, images, clean_logits)`` (AdvChain's
    :class:`~advaug.advchain.ChainConsistency`, ``aug.consistency_weight``); its forwards go
    through the twin layers when ``aux_norm`` is on. None or an inactive one (weight 0): no term.

    The hyper-parameters saved in every checkpoint (best.ckpt too) hold the network's spec
    (:mod:`advaug.models.net_spec`; ``net`` may be given as such a spec) and the loss weights, so
    ``SegmentationModule.load_from_checkpoint(path)`` rebuilds the model without Hydra; such a
    module predicts and evaluates, and trains once given an ``optimizer``.
    """

    def __init__(
        self,
        net: nn.Module | Mapping,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer] | None = None,
        scheduler: Callable[..., object] | None = None,
        loss: SegmentationLoss | Mapping | None = None,
        channels_last: bool = False,
        defer_finite_check: bool | None = None,
        compile: bool | dict | None = False,
        aux_norm: str = "none",
        adv_loss_weight: float = 1.0,
        consistency: Callable | None = None,
    ) -> None:
        super().__init__()
        if compile and compile is not True:  # a plain dict (not Hydra's DictConfig) in the checkpoint
            compile = {str(k): v for k, v in dict(compile).items()}
        self.save_hyperparameters(ignore=["net", "optimizer", "scheduler", "loss", "consistency"], logger=False)
        if isinstance(net, Mapping):
            net = build_net(net)
        if isinstance(loss, Mapping):
            loss = SegmentationLoss(**loss)
        loss = loss if loss is not None else SegmentationLoss()
        # plain data (weights_only loads): how load_from_checkpoint rebuilds the net and the loss
        self.hparams["net"] = net_spec(net)
        self.hparams["loss"] = {"ce_weight": loss.ce_weight, "dice_weight": loss.dice_weight}
        check_num_classes(num_classes, "model.num_classes")
        self.aux_norm = check_aux_norm(aux_norm)
        if self.aux_norm != "none" and compile:
            raise ConfigError(
                f"model.aux_norm={aux_norm} with model.compile: the routing by source changes per batch, "
                "which a compiled graph cannot follow; set model.compile=false."
            )
        if not float(adv_loss_weight) >= 0:
            raise ConfigError(f"aug.adv_loss_weight={adv_loss_weight}: must be >= 0 (1 = as the clean samples).")
        self.adv_loss_weight = float(adv_loss_weight)
        self.consistency = consistency if consistency is not None and getattr(consistency, "active", True) else None
        net = add_twin_norms(net, self.aux_norm)
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        if compile:
            # in place (nn.Module.compile): the state_dict keys stay those of the plain network,
            # so checkpoints load with or without compile; attacks differentiate through it too
            self.net.compile(**({} if compile is True else compile))
        self.num_classes = int(num_classes)
        self.criterion = loss
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.channels_last = channels_last
        self.metrics = nn.ModuleDict({s: segmentation_metrics(num_classes) for s in ("val", "test")})
        # per-image mean loss as a metric: its float (sum, weight) states sync exactly under DDP,
        # also for uneven shards, where Lightning's sync_dist mean truncates its integer counts
        self.eval_loss = nn.ModuleDict({s: MeanMetric() for s in ("val", "test")})
        self.defer_finite_check = defer_finite_check
        self._loss_watch: LossWatch | None = None  # made at the first step, on the loss's device
        self._loss_sum: torch.Tensor | None = None  # this epoch's training loss x samples, on the device
        self._loss_count = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _adversarial_rows(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Which rows of a training batch come from an adversarial pool slot (None: no such slot)."""
        pool = getattr(self.trainer.datamodule, "pool", None)  # training: always attached
        codes = pool.adversarial_codes if pool is not None and "source" in batch else []
        if not codes:
            return None
        source = batch["source"]
        return torch.isin(source, torch.tensor(codes, device=source.device))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        adversarial = self._adversarial_rows(batch)
        with routed(self.net, adversarial if self.aux_norm != "none" else None):
            logits = self(batch["image"])
        loss = weighted_loss(self.criterion, logits, batch["mask"], adversarial, self.adv_loss_weight)
        if self.consistency is not None:
            term = self._consistency_term(batch["image"], logits)
            if logs_written_this_step(self.trainer):
                self.log("train/consistency_step", term.detach(), on_step=True, on_epoch=False, batch_size=len(logits))
            loss = loss + term
        if self._loss_watch is None:
            defer = self.defer_finite_check
            self._loss_watch = LossWatch(loss.device.type != "cpu" if defer is None else defer)
        # queued after this step's forward, read once the device is done with it: no sync here
        self._loss_watch.push(loss, self.current_epoch, self.global_step, batch_idx)
        self._log_train_loss(loss.detach(), len(logits), batch_idx)
        return loss

    def _consistency_term(self, images: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """The label-free consistency term of the batch; with twin layers, its transformed
        images are adversarial rows and go through them."""
        aux = torch.ones(len(images), dtype=torch.bool, device=images.device) if self.aux_norm != "none" else None

        def forward(x: torch.Tensor) -> torch.Tensor:
            with routed(self.net, aux):
                return self(x)

        return self.consistency(self, forward, images, logits)

    def _log_train_loss(self, loss: torch.Tensor, n: int, batch_idx: int) -> None:
        """``train/loss_step`` on the steps the loggers write, ``train/loss_epoch`` (sample mean).

        Not ``self.log`` on every step: Lightning moves its result record to the device on each
        call, which made up 0.22 of the loop's 0.56 ms host time per step
        (``step_overhead.py``, now ``train_throughput.py --net conv1x1``: 0.56 -> 0.34), a few % of a
        GPU step at batch 16. The
        epoch mean is kept as a device tensor here (no sync) and logged once, at the last batch.
        """
        total = loss.float() * n
        self._loss_sum = total if batch_idx == 0 or self._loss_sum is None else self._loss_sum + total
        self._loss_count = n if batch_idx == 0 else self._loss_count + n
        if logs_written_this_step(self.trainer):
            self.log("train/loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=n)
        if batch_idx + 1 >= self.trainer.num_training_batches:
            # sync_dist: under DDP the logged loss is the mean over ranks, not rank 0's shard alone
            mean = self._loss_sum / self._loss_count
            self.log("train/loss_epoch", mean, on_step=False, on_epoch=True, batch_size=n, sync_dist=True)

    def _check_losses(self) -> None:
        if self._loss_watch is not None:
            self._loss_watch.flush()

    def on_train_start(self) -> None:
        self._loss_watch = None  # nothing left over from an earlier fit

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        # before any epoch-end hook (the pool, the checkpoint) works with the weights
        if batch_idx + 1 >= self.trainer.num_training_batches:
            self._check_losses()

    def on_train_epoch_end(self) -> None:
        self._check_losses()  # an epoch cut short (limit_train_batches, should_stop)

    def _eval_step(self, stage: str, batch: dict[str, torch.Tensor]) -> None:
        logits = self(batch["image"])
        loss = self.criterion(logits, batch["mask"])
        self.metrics[stage].update(logits.argmax(1), batch["mask"])
        self.eval_loss[stage].update(loss, weight=len(logits))

    def _eval_epoch_end(self, stage: str) -> None:
        scores = summarize(self.metrics[stage].compute())  # torchmetrics already syncs across ranks
        scores["loss"] = self.eval_loss[stage].compute()
        self.metrics[stage].reset()
        self.eval_loss[stage].reset()
        # equal on every rank already; sync_dist only tells Lightning so (mean of equal values)
        shown = {f"{stage}/{k}": v for k, v in scores.items() if k in (*REPORTED, "loss")}
        per_class = {f"{stage}/{k}": v for k, v in scores.items() if k not in (*REPORTED, "loss")}
        self.log_dict(shown, prog_bar=True, sync_dist=True)
        if per_class:  # multi-class: logged and kept in the history, too many for the bar
            self.log_dict(per_class, sync_dist=True)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Class probabilities (N, C, H, W) of ``batch["image"]`` (floats in [0, 1] at the
        training size), by the main normalisation layers (eval mode: twin layers are not used)."""
        return self(batch["image"]).float().softmax(1)

    def configure_optimizers(self):
        if self.optimizer_factory is None:
            raise ConfigError(
                "SegmentationModule has no optimizer (a model loaded from a checkpoint predicts and "
                "evaluates): pass optimizer=functools.partial(torch.optim.Adam, lr=1e-3) to train it."
            )
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
