"""pix2pix networks (Isola et al., CVPR 2017), kept small: a U-Net generator mask -> image and a
PatchGAN discriminator that scores overlapping patches of (mask, image) pairs."""

from __future__ import annotations

import torch
from torch import nn

from advaug.errors import ConfigError


def key(name: str) -> str:
    """A GAN config key as a user may type it: the recipe is ``gan`` in src/train_gan.py and
    ``aug.gan`` in src/train.py, and a constructor cannot tell which (config_checks can)."""
    return f"[aug.]gan.{name}"


def _down(cin: int, cout: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, 2, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


def _up(cin: int, cout: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNetGenerator(nn.Module):
    """``depth`` stride-2 encoder blocks (channels ``ngf * 2**i``, capped at ``8 * ngf``), a mirrored
    decoder with skip connections, and a tanh output in [-1, 1].

    As in pix2pix, the noise is dropout in the innermost ``dropout_blocks`` decoder blocks, kept
    active when sampling so one mask yields varied images. Input side must be divisible by
    ``2**depth``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 3,
        ngf: int = 32,
        depth: int = 4,
        dropout: float = 0.5,
        dropout_blocks: int = 2,
    ) -> None:
        super().__init__()
        if depth < 2:
            raise ConfigError(f"{key('module.depth')}={depth}: the U-Net needs at least 2 levels.")
        widths = [ngf * min(2**i, 8) for i in range(depth)]
        self.depth = depth
        self.down = nn.ModuleList(
            [_down(in_channels if i == 0 else widths[i - 1], widths[i], norm=i > 0) for i in range(depth)]
        )
        # decoder block j maps level depth-1-j up to level depth-2-j; inputs are concatenated skips
        self.up = nn.ModuleList()
        for j in range(depth - 1):
            level = depth - 1 - j
            cin = widths[level] if j == 0 else widths[level] * 2
            self.up.append(_up(cin, widths[level - 1], dropout if j < dropout_blocks else 0.0))
        self.out = nn.Sequential(nn.ConvTranspose2d(widths[0] * 2, out_channels, 4, 2, 1), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        side = 2**self.depth
        if x.shape[-1] % side or x.shape[-2] % side:
            raise ConfigError(
                f"GAN input {tuple(x.shape[-2:])} is not divisible by 2**depth={side}; "
                f"lower {key('module.depth')} or change dataset.image_size."
            )
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for j, block in enumerate(self.up):
            x = block(x if j == 0 else torch.cat([x, skips[-1 - j]], 1))
        return self.out(torch.cat([x, skips[0]], 1))


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``layers`` stride-2 convolutions then two stride-1 ones; one logit per patch."""

    def __init__(self, in_channels: int, ndf: int = 32, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [_down(in_channels, ndf, norm=False)]
        width = ndf
        for i in range(1, layers):
            nxt = ndf * min(2**i, 8)
            blocks.append(_down(width, nxt, norm=True))
            width = nxt
        nxt = ndf * min(2**layers, 8)
        blocks += [
            nn.Conv2d(width, nxt, 4, 1, 1, bias=False),
            nn.BatchNorm2d(nxt),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(nxt, 1, 4, 1, 1),
        ]
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
