"""What the AdvChain tests share: square phantoms and a tiny conv net trained on them."""

from __future__ import annotations

import torch
from torch import nn


def squares(n: int = 8, size: int = 24, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` grey images (N,3,size,size) in [0,1] with one bright square each, and its masks."""
    g = torch.Generator().manual_seed(seed)
    images = 0.2 + 0.1 * torch.rand(n, 3, size, size, generator=g)
    masks = torch.zeros(n, size, size, dtype=torch.long)
    for i in range(n):
        side = int(torch.randint(5, size // 2, (1,), generator=g))
        top, left = (int(v) for v in torch.randint(1, size - side - 1, (2,), generator=g))
        images[i, :, top : top + side, left : left + side] += 0.5
        masks[i, top : top + side, left : left + side] = 1
    return images.clamp(0, 1), masks


def tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 2, 1),
    )  # fmt: skip


def trained_net(steps: int = 60) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """:func:`tiny_net` fitted to :func:`squares` for ``steps`` Adam steps, in eval mode, and its data."""
    net = tiny_net()
    images, masks = squares()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(net(images), masks).backward()
        opt.step()
    return net.eval(), images, masks
