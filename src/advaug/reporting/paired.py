"""The report's paired comparisons: each method against each reference, image by image.

Per dataset, method and metric, each test image's score (``per_image.csv`` of every completed
job) is first averaged over the method's seeds; the method and the reference are then compared on
the images both were scored on (:func:`advaug.statistics.paired_difference`: bootstrap over
images, seeds held fixed, and a Wilcoxon signed-rank test). One table is one reference and one
metric: its p-values are Holm-adjusted together. A reference named by its aug alone (``none``,
``same_steps``) means that aug on the method's own base augmentation: ``rotate + invfgsm`` meets
``rotate + none`` and ``rotate + same_steps``, the controls with its base and its optimizer steps. Jobs without ``per_image.csv`` (runs made before
it was written) give a row that says so, with no numbers.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from advaug.controls import CONTROLS
from advaug.metric_keys import LOWER_IS_BETTER, PER_IMAGE_FILE, PER_IMAGE_SCORES
from advaug.reporting.collect import Job, method_label
from advaug.statistics import ALPHA, NOT_TESTED, RESAMPLES, holm, paired_difference, verdict

DEFAULT_REFERENCES = CONTROLS
PAIRED_FIELDS = (
    "dataset", "reference", "method", "metric", "images", "seeds", "reference_mean", "method_mean",
    "difference", "ci_low", "ci_high", "resamples", "p", "p_holm", "verdict", "note", "family",
)  # fmt: skip
METRIC_NAMES = {
    "miou": "mean IoU (paper's)",
    "iou_fg": "foreground IoU",
    "dice": "Dice",
    "hd95": "HD95 (pixels, lower is better)",
}


def test_scores(job: Job) -> list[tuple[str, Path]]:
    """What a job adds to the paired tables: its own test split's rows, under its dataset."""
    return [(str(job.dataset), job.path / PER_IMAGE_FILE)]


def read_per_image(source: Job | Path) -> dict[str, dict[str, float]] | None:
    """``{image id: {metric: score}}`` from a ``per_image.csv`` (a job's own test split, or a
    file); None without one."""
    path = source.path / PER_IMAGE_FILE if isinstance(source, Job) else Path(source)
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))

    def number(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {r["id"]: {m: number(r.get(m)) for m in PER_IMAGE_SCORES} for r in rows if r.get("id")}


def _mean_over(tables: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Each image's scores averaged over the tables that hold it (finite values only)."""
    out = {}
    for image in sorted(set().union(*tables)):
        rows = [t[image] for t in tables if image in t]
        out[image] = {}
        for metric in PER_IMAGE_SCORES:
            values = [r[metric] for r in rows if math.isfinite(r[metric])]
            out[image][metric] = sum(values) / len(values) if values else math.nan
    return out


def seed_means(
    jobs: Sequence[Job], files: Sequence[Path] | None = None
) -> tuple[dict[str, dict[str, float]], int]:
    """Each image's scores averaged over the seeds that scored it, on the images every one of them
    scored; and the number of seeds with per-image scores. ``files``: each job's ``per_image.csv``
    (default its test split's). The folds of a k-fold seed are joined first: their test images are
    disjoint, so each image keeps the one score its fold's model gave it (an external set, scored
    by every fold's model, gets their mean)."""
    files = list(files) if files is not None else [j.path / PER_IMAGE_FILE for j in jobs]
    by_model: dict[Any, list[dict[str, dict[str, float]]]] = defaultdict(list)
    for job, path in zip(jobs, files, strict=True):
        table = read_per_image(path)
        if table is not None:
            by_model[job.model].append(table)
    tables = [_mean_over(folds) if len(folds) > 1 else folds[0] for folds in by_model.values()]
    if not tables:
        return {}, 0
    shared = set(tables[0]).intersection(*tables[1:])
    means = {}
    for image in sorted(shared):
        means[image] = {}
        for metric in PER_IMAGE_SCORES:
            values = [t[image][metric] for t in tables if math.isfinite(t[image][metric])]
            means[image][metric] = sum(values) / len(values) if values else math.nan
    return means, len(tables)


def default_references(methods: Sequence[str]) -> list[str]:
    """``none`` and ``same_steps``, those of them among ``methods`` (on any base augmentation)."""
    return [r for r in DEFAULT_REFERENCES if any(m == r or m.endswith(f" + {r}") for m in methods)]


def reference_for(reference: str, base: str) -> str:
    """The row a method on ``base`` is compared with: an aug name means that aug on the same base
    (``none`` -> ``rotate + none``); a label with a base (``rotate + none``) is taken as it is."""
    return reference if " + " in reference else method_label(base, reference)


def _row(dataset, reference, method, metric, seeds: str, **values: Any) -> dict[str, Any]:
    empty = dict.fromkeys(PAIRED_FIELDS[6:14], math.nan)
    base = {"dataset": dataset, "reference": reference, "method": method, "metric": metric, "seeds": seeds}
    return {**base, "images": 0, **empty, "verdict": NOT_TESTED, "note": "", "family": reference, **values}


def paired_rows(
    jobs: Sequence[Job],
    references: Sequence[str],
    n_resamples: int = RESAMPLES,
    seed: int = 0,
    scored: Callable[[Job], list[tuple[str, Path]]] = test_scores,
) -> list[dict[str, Any]]:
    """The rows of every paired table (:data:`PAIRED_FIELDS`), Holm-adjusted per reference × metric.
    ``scored(job)``: the (dataset label, ``per_image.csv``) pairs the job contributes (default its
    own test split; the generalisation table passes each external set)."""
    groups: dict[tuple[str, str], list[Job]] = defaultdict(list)
    files: dict[tuple[str, str], list[Path]] = defaultdict(list)
    bases: dict[str, str] = {}
    for job in jobs:
        if job.ok:
            for label, path in scored(job):
                groups[(label, job.method)].append(job)
                files[(label, job.method)].append(path)
            bases[job.method] = job.base
    means = {key: seed_means(group, files[key]) for key, group in groups.items()}
    rows = []
    for family in references:
        for (dataset, method), group in sorted(groups.items()):
            reference = reference_for(family, bases[method])
            if method == reference or (dataset, reference) not in groups:
                continue
            (ref_scores, ref_with), (scores, with_) = means[(dataset, reference)], means[(dataset, method)]
            n_ref, n = len({j.model for j in groups[(dataset, reference)]}), len({j.model for j in group})
            seeds = f"{ref_with} vs {with_}" + ("" if (ref_with, with_) == (n_ref, n) else
                                               f" (of {n_ref} vs {n})")  # fmt: skip
            lacking = n_ref - ref_with + n - with_
            note = f"{lacking} run(s) without {PER_IMAGE_FILE} left out" if lacking else ""
            if not (ref_with and with_):
                note = f"no per-image scores ({lacking} run(s) made before {PER_IMAGE_FILE} was written)"
            images = sorted(set(ref_scores) & set(scores))
            for metric in PER_IMAGE_SCORES:
                if not images:
                    note = note or "no test image scored by both"
                    rows.append(_row(dataset, reference, method, metric, seeds, note=note, family=family))
                    continue
                a = [scores[i][metric] for i in images]
                b = [ref_scores[i][metric] for i in images]
                result = paired_difference(a, b, n_resamples, seed)
                pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
                rows.append(
                    _row(
                        dataset, reference, method, metric, seeds,
                        images=result.n,
                        reference_mean=sum(y for _, y in pairs) / len(pairs) if pairs else math.nan,
                        method_mean=sum(x for x, _ in pairs) / len(pairs) if pairs else math.nan,
                        difference=result.mean, ci_low=result.ci_low, ci_high=result.ci_high,
                        resamples=n_resamples, p=result.p, note=note, family=family,
                    )
                )  # fmt: skip
    for family_name in references:
        for metric in PER_IMAGE_SCORES:
            family = [r for r in rows if r["family"] == family_name and r["metric"] == metric]
            for r, adjusted in zip(family, holm([r["p"] for r in family]), strict=True):
                r["p_holm"] = adjusted
                r["verdict"] = verdict(adjusted, r["ci_low"], r["ci_high"], metric in LOWER_IS_BETTER)
    return rows


def _number(value: float, spec: str = ".4f") -> str:
    return "—" if not (isinstance(value, (int, float)) and math.isfinite(value)) else format(value, spec)


def _p(value: float) -> str:
    return "—" if not math.isfinite(value) else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def paired_markdown(rows: Sequence[dict[str, Any]], reference: str, metric: str) -> list[str]:
    """The markdown lines of one paired table (one reference, one metric); a method compared with
    its own base's reference says which (``rotate + invfgsm (vs rotate + none)``)."""
    family = [r for r in rows if r["family"] == reference and r["metric"] == metric]
    if not family:
        return []
    stacked = any(r["reference"] != reference for r in family)
    lines = [
        f"#### {METRIC_NAMES.get(metric, metric)}: each method minus {reference}"
        + (" on the same base augmentation" if stacked else "") + "\n",
        f"| dataset | method | images | seeds | {reference} | method | difference [95% CI] | p | p (Holm) "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in family:
        r = {**r, "method": f"{r['method']} (vs {r['reference']})" if r["reference"] != reference else r["method"]}
        if r["images"] == 0:
            lines.append(f"| {r['dataset']} | {r['method']} | — | {r['seeds']} | — | — | {r['note']} | — | — "
                         f"| {r['verdict']} |")  # fmt: skip
            continue
        interval = f"{_number(r['difference'], '+.4f')} [{_number(r['ci_low'], '+.4f')}, {_number(r['ci_high'], '+.4f')}]"
        note = f" ({r['note']})" if r["note"] else ""
        lines.append(
            f"| {r['dataset']} | {r['method']} | {r['images']} | {r['seeds']}{note} | "
            f"{_number(r['reference_mean'])} | {_number(r['method_mean'])} | {interval} | {_p(r['p'])} | "
            f"{_p(r['p_holm'])} | {r['verdict']} |"
        )
    return [*lines, ""]


def paired_section(rows: Sequence[dict[str, Any]], references: Sequence[str], n_resamples: int) -> list[str]:
    """The report's section: how the numbers were made, then one table per reference × metric."""
    md = [
        "## Paired comparisons on the test images",
        "",
        "Each test image's score (`per_image.csv`) is first averaged over the method's seeds; difference ="
        " method − reference on the images both scored, averaged over images. 95% CI: percentile bootstrap"
        f" over images ({n_resamples} resamples, seeds held fixed: the interval covers the choice of test "
        "images, not of training seeds; the mean ± SD tables show the seeds). p: Wilcoxon signed-rank, "
        "two-sided; p (Holm): adjusted over the rows of its table. Verdict at alpha "
        f"{ALPHA}: better / worse only when p (Holm) < {ALPHA} and the CI excludes 0 on that side. "
        "These are per-image means (each image weighted equally), not the paper's pooled-pixel scores.",
        "",
    ]
    if not rows:
        return [*md, "_no reference method (none, same_steps or --reference) among the methods_\n"]
    if all(r["images"] == 0 for r in rows):  # nothing to test (runs from before per_image.csv): once
        md += [
            "No paired test could be made:",
            "",
            "| dataset | reference | method | why |",
            "|---|---|---|---|",
        ]
        shown = dict.fromkeys((r["dataset"], r["reference"], r["method"], r["note"]) for r in rows)
        return [*md, *(f"| {d} | {ref} | {m} | {note} |" for d, ref, m, note in shown), ""]
    for reference in references:
        for metric in PER_IMAGE_SCORES:
            md += paired_markdown(rows, reference, metric)
    return md
