"""Every image grid of the project, drawn by one function, ``image_grid``.

The paper's Fig. 3-4 (``sample_grid``, end of a run), the adversarial pool of an epoch
(``adversarial_grid``) and the GAN's generated pairs (``pairs_grid``) only choose their columns.
No Lightning and no global pyplot state (a bare ``Figure`` on the Agg canvas), so a grid is safe
to draw in a callback or a worker thread; a fixed figure size makes the PNG's size a function
of the rows and columns alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advaug.utils.io import atomic_path

PANEL_INCHES = 2.0
DPI = 100
TITLE_INCHES = 0.4  # room for the suptitle

Panel = Tensor | tuple[Tensor, str]  # an image, or (image, caption under it)


def amplified_difference(images: Tensor, adv: Tensor, gain: float | None = None) -> Tensor:
    """Map ``adv - images`` to [0, 1] around mid-grey 0.5, scaled so the largest change is visible.

    ``gain=None`` picks ``0.5 / max|diff|`` per sample (a perturbation of eps 0.001 is as visible
    as one of 0.1); a fixed gain keeps magnitudes comparable across samples.
    """
    diff = (adv.float() - images.float()).detach().cpu()
    if gain is None:
        peak = diff.flatten(1).abs().amax(1).clamp_min(1e-12).view(-1, *([1] * (diff.ndim - 1)))
        scaled = diff * (0.5 / peak)
    else:
        scaled = diff * float(gain)
    return (0.5 + scaled).clamp(0.0, 1.0)


def _is_class_map(data: Tensor) -> bool:
    return data.ndim == 2 and not data.is_floating_point()


def image_grid(
    rows: Sequence[Sequence[Panel]],
    titles: Sequence[str],
    path: str | Path,
    *,
    title: str | None = None,
    num_classes: int | None = None,
) -> Path:
    """Write a PNG with one row per entry of ``rows`` and one column per entry of ``titles``.

    A panel is drawn by its shape: (3,H,W) float -> an RGB image in [0,1]; (H,W) integer -> a
    class map in grey levels 0..``num_classes - 1`` (default: the largest class in the grid, so
    masks and predictions share one scale); (H,W) float -> a signed change around 0.5 in red/blue
    (``amplified_difference``). A ``(panel, caption)`` pair adds a caption under the panel.
    The file is written atomically (temporary file + rename). Returns ``path``.
    """
    if not rows:
        raise ValueError("image_grid: no rows to draw")
    if any(len(row) != len(titles) for row in rows):
        raise ValueError(
            f"image_grid: {len(titles)} column titles but rows of {sorted({len(r) for r in rows})}"
        )
    cells = [[p if isinstance(p, tuple) else (p, "") for p in row] for row in rows]
    if num_classes is None:
        peaks = [int(d.max()) for row in cells for d, _ in row if _is_class_map(d) and d.numel()]
        num_classes = max([1, *peaks]) + 1
    height = PANEL_INCHES * len(rows) + (TITLE_INCHES if title else 0)
    fig = Figure(figsize=(PANEL_INCHES * len(titles), height), dpi=DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for i, row in enumerate(cells):
        for j, (data, caption) in enumerate(row):
            ax = axes[i][j]
            data = data.detach().cpu()
            if data.ndim == 3:
                ax.imshow(data.float().clamp(0, 1).permute(1, 2, 0).numpy())
            elif _is_class_map(data):
                vmax = max(num_classes - 1, 1)
                ax.imshow(data.numpy(), cmap="gray", vmin=0, vmax=vmax, interpolation="nearest")
            else:
                ax.imshow(data.float().numpy(), cmap="RdBu_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if caption:
                ax.set_xlabel(caption, fontsize=7)
            if i == 0:
                ax.set_title(titles[j], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:  # a reader never sees half a PNG
        fig.savefig(tmp, format="png")
    return Path(path)


def adversarial_grid(
    images: Tensor,
    masks: Tensor,
    adv: Tensor,
    path: str | Path,
    preds: Tensor | None = None,
    *,
    max_samples: int = 4,
    gain: float | None = None,
    title: str | None = None,
) -> Path:
    """An epoch's adversarial pool, one row per sample: input, mask, adversarial, amplified
    difference (captioned with its max |δ|), and the prediction on the adversarial input when
    ``preds`` is given. ``images``/``adv``: (N,3,H,W) in [0,1]; ``masks``/``preds``: (N,H,W)."""
    n = min(len(images), max_samples)
    if n == 0:
        raise ValueError("adversarial_grid: no samples to draw")
    if adv.shape != images.shape or masks.shape[0] < n:
        raise ValueError(
            f"adversarial_grid: images {tuple(images.shape)}, adv {tuple(adv.shape)} and masks "
            f"{tuple(masks.shape)} do not match"
        )
    diff = amplified_difference(images[:n], adv[:n], gain)
    eps = (adv[:n].float() - images[:n].float()).flatten(1).abs().amax(1).tolist()
    titles = ["input", "mask", "adversarial", "difference (amplified)"]
    rows: list[list[Panel]] = [
        [images[i], masks[i], adv[i], (diff[i].mean(0), f"max |δ| = {eps[i]:.4f}")] for i in range(n)
    ]
    if preds is not None:
        titles.append("prediction on adversarial")
        for i, row in enumerate(rows):
            row.append(preds[i])
    return image_grid(rows, titles, path, title=title)


def sample_grid(
    images: Tensor,
    masks: Tensor,
    adversarial: Tensor,
    predictions: Tensor,
    path: str | Path,
    title: str = "",
    adv_title: str = "adversarial",
    adv_pred: Tensor | None = None,
) -> Path:
    """The paper's Fig. 3-4: one row per image, columns (a) input, (b) mask, (c) adversarial image,
    (d) prediction on the clean input, plus the prediction on the adversarial image if given."""
    titles = ["(a) input", "(b) mask", f"(c) {adv_title}", "(d) prediction"]
    rows: list[list[Panel]] = [
        [images[i], masks[i], adversarial[i], predictions[i]] for i in range(len(images))
    ]
    if adv_pred is not None:
        titles.append("prediction on (c)")
        for i, row in enumerate(rows):
            row.append(adv_pred[i])
    return image_grid(rows, titles, path, title=title or None)


def pairs_grid(
    masks: Tensor,
    fakes: Tensor,
    path: str | Path,
    real: Tensor | None = None,
    num_classes: int = 2,
) -> Path:
    """The GAN's pairs, one row per sample: the mask, the generated image and, when given, the
    real image of that mask, so a user can judge the generator."""
    if len(masks) == 0 or fakes.shape[0] != masks.shape[0]:
        raise ValueError(f"pairs_grid: {len(masks)} masks and {len(fakes)} images")
    titles = ["mask", "generated"] + (["real"] if real is not None else [])
    rows = [
        [masks[i].to(torch.long), fakes[i]] + ([real[i]] if real is not None else [])
        for i in range(len(masks))
    ]
    return image_grid(rows, titles, path, num_classes=num_classes)


__all__ = ["adversarial_grid", "amplified_difference", "image_grid", "pairs_grid", "sample_grid"]
