"""Pure aggregation: per-seed values -> mean ± std (n), and the long-format records of Tables 1-3.

A record is a dict ``{table, dataset, row, column, metric, mean, std, n, block}``: ``row`` is the
method label, ``column`` the table's column (``epoch 10``, ``final``, ``eps=0.0118``, a dataset),
``block`` groups rows whose cells compete for "best" (Table 2: one attack × labels).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from advaug.metric_keys import per_class_keys
from advaug.reporting.collect import Job

METRICS = ("miou", "iou_fg", "dice")  # the paper's mean IoU (incl. background), then foreground-only
PAPER_EPOCHS = (0, 10, 20, 30)


@dataclass(frozen=True)
class Stat:
    """Mean, sample standard deviation (ddof=1; NaN for one value) and count over seeds."""

    mean: float
    std: float
    n: int


def mean_std(values: Iterable[float | None]) -> Stat:
    """Mean ± sample std over the finite values (None/NaN dropped)."""
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return Stat(math.nan, math.nan, 0)
    return Stat(statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else math.nan, len(vals))


def per_model(jobs: Iterable[Job], value: Callable[[Job], float | None]) -> list[float | None]:
    """One value per model (seed): the job's own, or for k-fold runs the mean over the seed's folds
    (each fold's test split is a fifth of the images: their mean is the seed's cross-validated score)."""
    by_model: dict[Any, list[float]] = defaultdict(list)
    for job in jobs:
        v = value(job)
        by_model[job.model].extend([float(v)] if v is not None and math.isfinite(float(v)) else [])
    return [statistics.fmean(vals) if vals else None for vals in by_model.values()]


def _record(table: int, dataset, row, column, metric, stat: Stat, block: str = "") -> dict[str, Any]:
    return {
        "table": table,
        "dataset": dataset,
        "block": block,
        "row": row,
        "column": column,
        "metric": metric,
        "mean": stat.mean,
        "std": stat.std,
        "n": stat.n,
    }


def _group(jobs: Iterable[Job]) -> dict[tuple[str, str], list[Job]]:
    groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
    for job in jobs:
        groups[(str(job.dataset), job.method)].append(job)
    return dict(sorted(groups.items()))


def _history_value(job: Job, metric: str, epoch: int | None) -> float | None:
    rows = [r for r in (job.metrics or {}).get("history", []) if f"val/{metric}" in r]
    if not rows:
        return None
    if epoch is None:  # final = the last validated epoch
        return max(rows, key=lambda r: r["epoch"])[f"val/{metric}"]
    hits = [r[f"val/{metric}"] for r in rows if r["epoch"] == epoch]
    return hits[0] if hits else None


def table_epochs(jobs: Sequence[Job], requested: Sequence[int] | None = None) -> list[int]:
    """Epoch columns of Table 1: ``requested``, else the paper's 0/10/20/30 when the runs reached 30,
    else four evenly spaced epochs from 0 to the longest history."""
    if requested:
        return sorted(set(int(e) for e in requested))
    last = max((r["epoch"] for j in jobs for r in (j.metrics or {}).get("history", [])), default=0)
    if last >= PAPER_EPOCHS[-1]:
        return list(PAPER_EPOCHS)
    return sorted({round(last * k / 3) for k in range(4)})


def table1(jobs: Sequence[Job], epochs: Sequence[int]) -> list[dict[str, Any]]:
    """Validation metrics at the given epochs and at the final epoch, per method × dataset."""
    out = []
    for (dataset, method), group in _group(j for j in jobs if j.ok).items():
        for metric in METRICS:
            for epoch in [*epochs, None]:
                stat = mean_std(per_model(group, lambda j, m=metric, e=epoch: _history_value(j, m, e)))
                column = "final" if epoch is None else f"epoch {epoch}"
                out.append(_record(1, dataset, method, column, metric, stat))
    return out


def table2_scope(job: Job) -> str:
    """Why a job's robustness.json is not a Table 2 cell ("" when it is one): Table 2 is the whole
    test split, so a grid scored on another split or on ``max_batches`` batches stays out."""
    meta = (job.robustness or {}).get("meta") or {}
    split = meta.get("split", "test")
    max_batches = (meta.get("grid") or {}).get("max_batches")
    if split != "test":
        return f"scored on the {split} split"
    if max_batches is not None:
        return f"scored on {max_batches} test batches only (robustness.max_batches)"
    return ""


def _robustness_rows(job: Job) -> list[dict[str, Any]]:
    if not (job.ok or job.status == "evaluation") or table2_scope(job):
        return []
    return (job.robustness or {}).get("rows", [])


def _job_cells(job: Job) -> dict[tuple[str, str, float, str], float | None]:
    """One job's Table 2 values by (block, column, eps, metric); the clean score is the first
    column of every attack block the job has (-1 sorts it first)."""
    rows = _robustness_rows(job)
    clean = next((r for r in rows if r["method"] == "clean"), None)
    cells: dict[tuple[str, str, float, str], float | None] = {}
    for r in rows:
        if r["method"] == "clean":
            continue
        block = f"{r.get('attack', r['method'])} / {r['labels']} labels"
        for metric in METRICS:
            cells[(block, f"eps={r['eps']:g}", r["eps"], metric)] = r.get(metric)
            if clean is not None:
                cells[(block, "clean", -1.0, metric)] = clean.get(metric)
    return cells


def table2(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Robustness per attack × labels (block), model (row: ``before``/``after`` + method), eps (column).

    "before" = the model trained without augmentation (aug ``none``); "after" = any other method.
    The clean score is the first column of every block. Each cell holds one value per model
    (dataset, method, seed): a ``src/evaluate.py`` output that re-scores a checkpoint (labelled as
    its training job by :func:`~advaug.reporting.collect.assign_variants`) is the explicit rerun and
    replaces that training job's value in the cells it covers, instead of counting as another seed
    (two evaluations of one model: the later folder name wins).
    """
    cells: dict[tuple, dict[Any, float | None]] = defaultdict(dict)
    for job in sorted(jobs, key=lambda j: (j.status == "evaluation", str(j.path))):  # training first
        row = f"{'before' if job.aug == 'none' else 'after'}: {job.method}"
        model = (job.model, job.fold)  # no seed: the job is its own model; k-fold: one value per fold
        for (block, column, eps, metric), value in _job_cells(job).items():
            cells[(str(job.dataset), block, row, metric, column, eps)][model] = value

    def order(key: tuple) -> tuple:  # dataset, block, "before" rows first, row, metric, eps ascending
        dataset, block, row, metric, _, eps = key
        return dataset, block, not row.startswith("before"), row, metric, eps

    def seed_values(values: dict[tuple, float | None]) -> list[float | None]:  # the folds of a seed: their mean
        folds: dict[Any, list[float]] = defaultdict(list)
        for (model, _), v in values.items():
            folds[model].extend([float(v)] if v is not None and math.isfinite(float(v)) else [])
        return [statistics.fmean(vals) if vals else None for vals in folds.values()]

    return [
        _record(2, dataset, row, column, metric, mean_std(seed_values(cells[key])), block)
        for key in sorted(cells, key=order)
        for dataset, block, row, metric, column, _ in [key]
    ]


def test_score(job: Job, metric: str, external: str | None = None) -> float | None:
    """The job's test ``metric`` (best checkpoint): its own test split, or the ``external`` set's
    (``eval_datasets``: metrics.json's ``external.<name>``)."""
    scores = (job.metrics or {}).get("test", {})
    if external is not None:
        scores = (((job.metrics or {}).get("external") or {}).get(external) or {}).get("test", {})
    return scores.get(f"test/{metric}")


def table3(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Final test metrics (best checkpoint) per method × dataset (dataset = column), with the IoU
    of each foreground class where runs recorded it (more than one foreground class)."""
    out = []
    for (dataset, method), group in _group(j for j in jobs if j.ok).items():
        # multi-class runs also recorded test/iou_c<k> per foreground class
        classes = per_class_keys(k for j in group for k in (j.metrics or {}).get("test", {}))
        for metric in (*METRICS, *classes):
            stat = mean_std(per_model(group, lambda j, m=metric: test_score(j, m)))
            out.append(_record(3, "all", method, dataset, metric, stat))
    return out


def curves(jobs: Sequence[Job], metric: str = "miou") -> dict[tuple[str, str], list[tuple[int, Stat]]]:
    """Per (dataset, method): validation ``metric`` per epoch as mean ± std over seeds."""
    out = {}
    for key, group in _group(j for j in jobs if j.ok).items():
        epochs = sorted(
            {r["epoch"] for j in group for r in j.metrics.get("history", []) if f"val/{metric}" in r}
        )
        out[key] = [(e, mean_std(per_model(group, lambda j, e=e: _history_value(j, metric, e)))) for e in epochs]
    return out


def pooled_sd(a: Stat, b: Stat) -> float:
    """Pooled sample SD of two cells, each variance weighted by its degrees of freedom (n - 1)."""
    return math.sqrt(((a.n - 1) * a.std**2 + (b.n - 1) * b.std**2) / (a.n + b.n - 2))


MARGIN_FIELDS = (
    "dataset", "reference", "versus", "metric", "reference_mean", "versus_mean",
    "difference", "pooled_sd", "margin_sd", "n",
)  # fmt: skip


def compare(jobs: Sequence[Job], reference: str, metric: str = "miou") -> list[dict[str, Any]]:
    """Test-score margin of ``reference`` over every other method of the same dataset.

    ``margin_sd`` divides the difference of means by the pooled sample standard deviation of
    the two cells, sqrt(((n1-1)·s1² + (n2-1)·s2²) / (n1+n2-2)) (a Cohen's d; with 3 seeds per
    cell a rough guide, not a test); NaN unless both cells have two seeds or more.
    """
    groups = _group(j for j in jobs if j.ok)
    out = []
    for (dataset, method), group in groups.items():
        if method == reference or (dataset, reference) not in groups:
            continue
        ref = mean_std(per_model(groups[dataset, reference], lambda j: test_score(j, metric)))
        other = mean_std(per_model(group, lambda j: test_score(j, metric)))
        diff = ref.mean - other.mean
        pooled = pooled_sd(ref, other) if ref.n > 1 and other.n > 1 else math.nan
        out.append(
            {
                "dataset": dataset,
                "reference": reference,
                "versus": method,
                "metric": metric,
                "reference_mean": ref.mean,
                "versus_mean": other.mean,
                "difference": diff,
                "pooled_sd": pooled,
                "margin_sd": diff / pooled if pooled and math.isfinite(pooled) else math.nan,
                "n": f"{ref.n} vs {other.n}",
            }
        )
    return sorted(out, key=lambda r: (str(r["dataset"]), -r["difference"]))
