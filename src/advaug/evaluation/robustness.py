"""Robustness grid (paper Table 2): a model scored clean and under attack, cell by cell.

A *cell* is ``(method, eps, labels)``: ``method`` one of :data:`advaug.rules.ATTACKS`,
``eps`` on the [0, 1] image scale, ``labels`` the mask the attack differentiates against:
``true`` (the ground truth, as in the paper) or ``pred`` (the model's own clean prediction, which
leaks no label; InvFGSM with the true mask pushes the input toward the right answer). Every cell
is scored with the training metrics (:mod:`advaug.metrics`) against the true mask.

The functions here are plain PyTorch: they run outside Lightning's loops (the attacks lift
``inference_mode`` themselves), so they work after ``trainer.test`` and from ``src/evaluate.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advaug.attacks import LossFn, eval_mode, perturb
from advaug.errors import ConfigError, DatasetError
from advaug.metric_keys import per_class_keys
from advaug.metrics import REPORTED, segmentation_metrics, summarize
from advaug.per_image import PerImageRecorder, batch_index
from advaug.rules import LABELS, check_attack, check_eps, check_labels, check_steps
from advaug.utils.io import atomic_write_json, atomic_write_text
from advaug.utils.progress import progress

log = logging.getLogger(__name__)

DEFAULT_METHODS = ("fgsm", "invfgsm", "pgd")
DEFAULT_EPS = (0.0012, 0.0118, 0.1176)  # 0.3, 3 and 30 over 255: the paper's Table 2
CLEAN = ("clean", 0.0, "none")
MULTI_STEP = ("pgd", "invpgd")


def normalize_grid(
    methods: Iterable[str], eps: Iterable[float], labels: Iterable[str | bool], pgd_steps: int
) -> tuple[list[str], list[float], list[str]]:
    """Check a grid and return it as plain lists; errors name the config key and the fix.

    ``labels`` accepts YAML's boolean ``true`` as the string ``"true"``.
    """
    methods = [check_attack(str(m), "robustness.methods") for m in methods]
    for e in eps:
        check_eps(e, "robustness.eps")
    eps = [float(e) for e in eps]
    labels = [check_labels(v, "robustness.labels") for v in labels]
    if any(m in MULTI_STEP for m in methods):
        check_steps(pgd_steps, "robustness.pgd_steps")
    # a value listed twice would feed the same cell's metric twice and repeat its row
    methods, eps, labels = (list(dict.fromkeys(v)) for v in (methods, eps, labels))
    if methods and not (eps and labels):
        raise ConfigError("robustness: methods given but eps or labels empty; list at least one of each.")
    return methods, eps, labels


def evaluate_robustness(
    model: nn.Module,
    loader: Iterable[dict[str, torch.Tensor]],
    *,
    methods: Sequence[str] = DEFAULT_METHODS,
    eps: Sequence[float] = DEFAULT_EPS,
    labels: Sequence[str] = LABELS,
    pgd_steps: int = 10,
    max_batches: int | None = None,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    precision: str = "fp32",
    per_image: PerImageRecorder | None = None,
    show_progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Score ``model`` on ``loader`` clean and for every cell of methods × eps × labels.

    Returns one row per cell, the clean row first: ``method``, ``eps``, ``labels``, ``steps``,
    the metrics of :data:`advaug.metrics.REPORTED`, ``delta_miou`` (cell minus clean), ``attack``
    (the display name, e.g. ``pgd-10``),
    ``zero_grad_fraction`` (mean over batches; a value near 1 means the attack did nothing) and
    ``images``. The model is put in eval mode for the duration; its parameters are untouched.
    ``per_image``: also one row per image and cell into this recorder (``attack``, ``labels``, ``eps``
    lead each row; :mod:`advaug.per_image`). ``show_progress``: a bar over the attacked cells of
    every batch (:func:`advaug.utils.progress.progress`; None = on a terminal).
    """
    methods, eps, labels = normalize_grid(methods, eps, labels, pgd_steps)
    if max_batches is not None and int(max_batches) < 1:
        raise ConfigError(f"robustness.max_batches={max_batches}: at least 1, or null for the whole split.")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    num_classes = int(num_classes or model.num_classes)
    cells = [CLEAN] + [(m, e, lab) for m in methods for e in eps for lab in labels]
    scores = {cell: segmentation_metrics(num_classes).to(device) for cell in cells}
    zero_grad: dict[tuple, list[float]] = {cell: [] for cell in cells}
    generator = torch.Generator(device=device).manual_seed(int(seed))  # PGD random starts
    images = 0
    batches = _num_batches(loader, max_batches)
    bar = progress(
        total=None if batches is None else batches * (len(cells) - 1),
        desc="robustness", unit="cell", enabled=show_progress,
    )  # fmt: skip
    with eval_mode(model), bar:
        for index, batch in enumerate(loader):
            if max_batches is not None and index >= max_batches:
                break
            x, y = batch["image"].to(device), batch["mask"].to(device)
            with torch.no_grad():
                pred = model(x).argmax(1)
            scores[CLEAN].update(pred, y)
            index = batch_index(batch, images)
            if per_image is not None:
                per_image.update(pred, y, index, attack="clean", labels="none", eps=0.0)
            targets = {"true": y, "pred": pred}
            for cell in cells[1:]:
                method, e, lab = cell
                result = perturb(
                    model, x, targets[lab], e, method,
                    steps=pgd_steps, loss_fn=loss_fn, precision=precision, generator=generator,
                )  # fmt: skip
                with torch.no_grad():
                    adv_pred = model(result.images).argmax(1)
                scores[cell].update(adv_pred, y)
                if per_image is not None:
                    steps = int(pgd_steps) if method in MULTI_STEP else 1
                    name = attack_name({"method": method, "steps": steps})
                    per_image.update(adv_pred, y, index, attack=name, labels=lab, eps=e)
                zero_grad[cell].append(result.zero_grad_fraction)
                bar.set_postfix_str(f"{method} eps={e:g} {lab}", refresh=False)
                bar.update()
            images += len(x)
    if images == 0:
        raise DatasetError("robustness: the evaluation split yielded no images (empty test split?).")
    rows = []
    for cell in cells:
        method, e, lab = cell
        values = {k: float(v) for k, v in summarize(scores[cell].compute()).items()}
        rows.append(
            {
                "method": method,
                "eps": e,
                "labels": lab,
                "steps": 0 if cell == CLEAN else (int(pgd_steps) if method in MULTI_STEP else 1),
                **values,
                "zero_grad_fraction": sum(zero_grad[cell]) / len(zero_grad[cell])
                if zero_grad[cell]
                else None,
                "images": images,
            }
        )
    clean = rows[0]["miou"]
    for row in rows:
        row["delta_miou"] = row["miou"] - clean
        row["attack"] = attack_name(row)
    return rows


def _num_batches(loader: Iterable, max_batches: int | None) -> int | None:
    """How many batches the grid will attack (None when the loader has no length)."""
    try:
        n = len(loader)  # type: ignore[arg-type]
    except TypeError:
        return None
    return n if max_batches is None else min(n, int(max_batches))


def attack_name(row: dict[str, Any]) -> str:
    """``clean``, ``fgsm``, ``invfgsm``, ``pgd-10``: multi-step attacks carry their step count."""
    return f"{row['method']}-{row['steps']}" if row["method"] in MULTI_STEP else str(row["method"])


def robustness_markdown(rows: Sequence[dict[str, Any]], title: str = "Robustness") -> str:
    """A markdown table of the rows (one line per cell, clean first)."""
    names = {"miou": "mean IoU", "iou_fg": "IoU fg", "dice": "Dice", "miou_img": "mIoU/img"}
    shown = [*REPORTED, *per_class_keys(rows[0] if rows else ())]  # multi-class: IoU per class too
    names |= {k: f"IoU c{k.rsplit('_c', 1)[1]}" for k in shown if k not in names}
    head = ["attack", "labels", "eps", *(names[k] for k in shown), "Δ mean IoU", "zero-grad"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        zero = "" if r["zero_grad_fraction"] is None else f"{100 * r['zero_grad_fraction']:.1f}%"
        cells = [r["attack"], r["labels"], f"{r['eps']:g}", *(f"{r[k]:.4f}" for k in shown)]
        lines.append("| " + " | ".join([*cells, f"{r['delta_miou']:+.4f}", zero]) + " |")
    n = rows[0]["images"] if rows else 0
    lines += ["", f"{n} images; metrics against the true mask; `labels` = mask the attack used.", ""]
    return "\n".join(lines)


def write_robustness(out_dir: str | Path, rows: Sequence[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write ``robustness.json`` (``{"meta", "rows"}``) and ``robustness.md`` atomically."""
    out = Path(out_dir)
    path = atomic_write_json(out / "robustness.json", {"meta": meta, "rows": list(rows)})
    title = " / ".join(str(meta[k]) for k in ("dataset", "aug") if meta.get(k) is not None)
    atomic_write_text(out / "robustness.md", robustness_markdown(rows, f"Robustness {title}".strip()))
    return path
