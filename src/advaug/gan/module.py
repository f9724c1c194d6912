"""``Pix2PixGAN``: a conditional GAN that turns a segmentation mask into an image.

Trained with adversarial (PatchGAN, BCE) + L1 loss on the training split; ``generate`` then
draws new images for (transformed) real masks, giving labelled pairs for the extra-sample pool.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from advaug.errors import ConfigError, TrainingDivergedError
from advaug.gan.networks import PatchDiscriminator, UNetGenerator, key
from advaug.rules import check_num_classes


class Pix2PixGAN(L.LightningModule):
    """Generator ``G(onehot(mask)) -> image`` and PatchGAN ``D(onehot(mask), image)``.

    Batches are ``(images, masks)``: float images in [0,1] (N,3,H,W), long masks (N,H,W).
    Two optimizers (Adam, pix2pix's lr 2e-4 and betas (0.5, 0.999)) stepped by hand, D first.
    """

    def __init__(
        self,
        num_classes: int = 2,
        ngf: int = 32,
        ndf: int = 32,
        depth: int = 4,
        disc_layers: int = 3,
        dropout: float = 0.5,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        l1_weight: float = 100.0,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes, key("module.num_classes"))
        if l1_weight < 0:
            raise ConfigError(f"{key('module.l1_weight')}={l1_weight}: must be >= 0.")
        betas = (float(betas[0]), float(betas[1]))  # plain floats: hparams are saved with the weights
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.num_classes = int(num_classes)
        self.generator = UNetGenerator(num_classes, 3, ngf, depth, dropout)
        self.discriminator = PatchDiscriminator(num_classes + 3, ndf, disc_layers)
        self.history: list[dict[str, float]] = []

    def condition(self, masks: torch.Tensor) -> torch.Tensor:
        """One-hot masks (N,C,H,W) as floats: the generator's input."""
        if masks.min() < 0 or masks.max() >= self.num_classes:
            raise ValueError(f"mask values must be class ids 0..{self.num_classes - 1}")
        return F.one_hot(masks.long(), self.num_classes).permute(0, 3, 1, 2).float()

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """Images in [0,1] for class-id masks (N,H,W)."""
        return self.generator(self.condition(masks)).add(1.0).div(2.0)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        images, masks = batch
        opt_g, opt_d = self.optimizers()
        cond = self.condition(masks)
        real = images * 2.0 - 1.0
        fake = self.generator(cond)

        d_real = self.discriminator(torch.cat([cond, real], 1))
        d_fake = self.discriminator(torch.cat([cond, fake.detach()], 1))
        loss_d = 0.5 * (
            F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
            + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
        )
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(loss_d)
        opt_d.step()

        d_fake = self.discriminator(torch.cat([cond, fake], 1))
        loss_adv = F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))
        loss_l1 = F.l1_loss(fake, real)
        loss_g = loss_adv + self.hparams.l1_weight * loss_l1
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(loss_g)
        opt_g.step()

        losses = {"gan/d_loss": loss_d, "gan/g_adv": loss_adv, "gan/g_l1": loss_l1}
        bad = [k for k, v in losses.items() if not torch.isfinite(v)]
        if bad:
            raise TrainingDivergedError(
                f"GAN loss {bad[0]} became non-finite at step {batch_idx} of epoch {self.current_epoch}; "
                f"lower {key('module.lr')} or raise {key('module.l1_weight')}."
            )
        self.log_dict(losses, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(images))

    def on_train_epoch_end(self) -> None:
        metrics = self.trainer.callback_metrics
        row = {k: float(metrics[k]) for k in ("gan/d_loss", "gan/g_adv", "gan/g_l1") if k in metrics}
        self.history.append({"epoch": self.current_epoch, **row})

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        betas = tuple(self.hparams.betas)
        return [
            torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas),
            torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas),
        ]

    @torch.no_grad()
    def generate(self, masks: torch.Tensor, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
        """Images in [0,1] (N,3,H,W) for masks (N,H,W), reproducible in ``seed``.

        BatchNorm uses its running statistics; dropout stays on (pix2pix's source of diversity).
        """
        was_training = self.generator.training
        self.generator.eval()
        for m in self.generator.modules():
            if isinstance(m, nn.Dropout):
                m.train()
        device = next(self.generator.parameters()).device
        out = []
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(masks), batch_size):
                out.append(self(masks[start : start + batch_size].to(device)).float().cpu())
        self.generator.train(was_training)
        return torch.cat(out).clamp_(0.0, 1.0)
