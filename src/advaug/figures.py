"""Sample grids like the paper's Fig. 3-4: input / mask / adversarial / amplified difference.

Pure functions of tensors that write a PNG; no Lightning, no global pyplot state (a bare
``matplotlib.figure.Figure`` on the Agg canvas), so they are safe in callbacks and worker threads.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from advaug.utils.io import atomic_path


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


def _hwc(image: Tensor):
    return image.detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy()


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
    """Write a PNG grid, one row per sample: input, mask, adversarial, amplified difference
    (and the prediction on the adversarial input when ``preds`` is given). Returns ``path``.

    ``images``/``adv``: (N,3,H,W) floats in [0,1]; ``masks``/``preds``: (N,H,W) class indices.
    The file is written atomically (temporary file + rename).
    """
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
    columns = ["input", "mask", "adversarial", "difference (amplified)"] + (
        ["prediction on adversarial"] if preds is not None else []
    )
    fig = Figure(figsize=(2.0 * len(columns), 2.0 * n + (0.4 if title else 0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, len(columns), squeeze=False)
    vmax = max(int(masks[:n].max()), 1 if preds is None else int(preds[:n].max()), 1)
    for i in range(n):
        panels = [
            (_hwc(images[i]), {}),
            (masks[i].cpu().numpy(), {"cmap": "gray", "vmin": 0, "vmax": vmax, "interpolation": "nearest"}),
            (_hwc(adv[i]), {}),
            (diff[i].mean(0).numpy(), {"cmap": "RdBu_r", "vmin": 0, "vmax": 1}),
        ]
        if preds is not None:
            panels.append(
                (
                    preds[i].cpu().numpy(),
                    {"cmap": "gray", "vmin": 0, "vmax": vmax, "interpolation": "nearest"},
                )
            )
        for j, (data, kw) in enumerate(panels):
            ax = axes[i][j]
            ax.imshow(data, **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(columns[j], fontsize=8)
        axes[i][3].set_xlabel(f"max |δ| = {eps[i]:.4f}", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


__all__ = ["adversarial_grid", "amplified_difference"]
