"""PNG plots with matplotlib's Agg backend (no display needed): learning curves and robustness
vs eps. Image grids (the paper's Fig. 3-4) live in ``advaug.figures``."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from advaug.reporting.aggregate import Stat  # noqa: E402
from advaug.utils.io import atomic_path  # noqa: E402


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    try:
        with atomic_path(path) as tmp:  # a reader never sees half a PNG
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


MARKERS = ("o", "s", "^", "v", "D", "P", "X", "<", ">", "h")


def _styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """A distinct colour + marker per name, the same in every panel (tab20: pairs of a dark and
    a light shade, the dark ones first), so 10+ methods stay apart."""
    cmap = plt.get_cmap("tab20")
    order = [*range(0, 20, 2), *range(1, 20, 2)]
    return {
        name: {"color": cmap(order[i % 20]), "marker": MARKERS[i % len(MARKERS)]}
        for i, name in enumerate(dict.fromkeys(names))
    }


def _legend(fig, axes) -> None:
    """One legend for the figure, right of the panels (per-panel legends hid the lines)."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)


def _method(row: str) -> str:
    return row.split(": ", 1)[-1]  # "after: fgsm" -> "fgsm"


def plot_curves(curves: dict[tuple[str, str], list[tuple[int, Stat]]], path: str | Path, ylabel: str) -> Path:
    """One panel per dataset: the metric vs epoch per method, mean line and ± std band over seeds."""
    datasets = sorted({d for d, _ in curves})
    fig, axes = plt.subplots(
        1, max(1, len(datasets)), figsize=(5.5 * max(1, len(datasets)), 4), squeeze=False
    )
    styles = _styles([m for _, m in sorted(curves)])
    for ax, dataset in zip(axes[0], datasets, strict=False):
        for (d, method), points in sorted(curves.items()):
            if d != dataset or not points:
                continue
            epochs = np.array([e for e, _ in points])
            mean = np.array([s.mean for _, s in points])
            std = np.nan_to_num(np.array([s.std for _, s in points]))
            n = max(s.n for _, s in points)
            style = styles[method]
            ax.plot(epochs, mean, ms=3, lw=1.2, label=f"{method} (n={n})", **style)
            ax.fill_between(epochs, mean - std, mean + std, color=style["color"], alpha=0.12)
        ax.set(title=dataset, xlabel="epoch", ylabel=ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
    _legend(fig, axes[0])
    return _save(fig, path)


def plot_robustness(records: Sequence[dict[str, Any]], path: str | Path, metric: str = "miou") -> Path:
    """One panel per dataset × attack/labels block: the metric vs eps (clean first) per model, ± std."""
    panels: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        if r["metric"] == metric:
            panels[(r["dataset"], r["block"])].append(r)
    keys = sorted(panels)
    cols = min(3, max(1, len(keys)))
    rows = max(1, math.ceil(len(keys) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
    styles = _styles([_method(r["row"]) for r in records])
    for ax, key in zip(axes.flat, keys, strict=False):
        recs = panels[key]
        columns = list(dict.fromkeys(r["column"] for r in recs))
        for row in dict.fromkeys(r["row"] for r in recs):
            by_col = {r["column"]: r for r in recs if r["row"] == row}
            x = [i for i, c in enumerate(columns) if c in by_col and by_col[c]["n"] > 0]
            mean = [by_col[columns[i]]["mean"] for i in x]
            std = [
                0.0 if not math.isfinite(by_col[columns[i]]["std"]) else by_col[columns[i]]["std"] for i in x
            ]
            ax.errorbar(
                x, mean, yerr=std, ms=3, lw=1.2, capsize=2, ls="--" if "before" in row else "-", label=row,
                **styles[_method(row)],
            )  # fmt: skip
        ax.set_xticks(range(len(columns)), [c.replace("eps=", "") for c in columns], rotation=30)
        ax.set(title=f"{key[0]}: {key[1]}", xlabel="eps", ylabel=metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys) :]:
        ax.axis("off")
    _legend(fig, list(axes.flat))
    return _save(fig, path)
