"""The report's generalisation table: each method's test scores on its own dataset's test split
beside its scores on every external dataset (``eval_datasets``), and the paired comparisons on
the external images.

Rows = methods, columns = ``<dataset> (test)`` (in-distribution) and each external set by name,
one table per training dataset and metric; a cell is mean ± SD over seeds (a k-fold seed: the mean
over its folds, :func:`advaug.reporting.aggregate.per_model`). The paired statistics are those of
:mod:`advaug.reporting.paired` on each external set's ``external/<name>/per_image.csv`` (per image,
seeds averaged, bootstrap CI, Wilcoxon, Holm over the rows of one reference and metric); the
in-distribution comparisons are the report's own paired section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advaug.metric_keys import EXTERNAL_DIR, PER_IMAGE_FILE, PER_IMAGE_SCORES
from advaug.reporting.aggregate import METRICS, _group, _record, mean_std, per_model, test_score
from advaug.reporting.collect import Job
from advaug.reporting.paired import paired_markdown, paired_rows
from advaug.reporting.tables import metric_title, pivot_markdown
from advaug.statistics import RESAMPLES

TABLE = 4
ARROW = "→"


def external_names(jobs: Sequence[Job]) -> list[str]:
    """The external sets any completed job scored, in the order first met."""
    names: dict[str, None] = {}
    for job in jobs:
        if job.ok:
            names.update(dict.fromkeys((job.metrics or {}).get("external") or {}))
    return list(names)


def in_distribution(dataset: str) -> str:
    """The column of a dataset's own test split."""
    return f"{dataset} (test)"


def generalisation_records(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """Long-format records (``table`` 4): per training dataset, method and metric, the in-distribution
    test column and one column per external set the dataset's jobs scored."""
    out = []
    for (dataset, method), group in _group(j for j in jobs if j.ok).items():
        names = external_names(group)
        if not names:
            continue
        for metric in METRICS:
            out.append(_record(TABLE, dataset, method, in_distribution(dataset), metric,
                               mean_std(per_model(group, lambda j, m=metric: test_score(j, m)))))  # fmt: skip
            for name in names:
                stat = mean_std(per_model(group, lambda j, m=metric, n=name: test_score(j, m, n)))
                out.append(_record(TABLE, dataset, method, name, metric, stat))
    return out


def external_scores(job: Job) -> list[tuple[str, Any]]:
    """The (``<dataset> → <external>``, per-image file) pairs of one job's external sets."""
    names = (job.metrics or {}).get("external") or {}
    return [(f"{job.dataset} {ARROW} {n}", job.path / EXTERNAL_DIR / n / PER_IMAGE_FILE) for n in names]


def generalisation_paired(
    jobs: Sequence[Job], references: Sequence[str], n_resamples: int = RESAMPLES
) -> list[dict[str, Any]]:
    """The paired rows on the external images (the ``dataset`` field reads ``kvasir → cvc_clinicdb``)."""
    return paired_rows(jobs, references, n_resamples, scored=external_scores)


def generalisation_section(
    records: Sequence[dict[str, Any]], paired: Sequence[dict[str, Any]], references: Sequence[str]
) -> list[str]:
    """Markdown: the mean ± SD tables, then the paired tables on the external images."""
    if not records:
        return []
    md = [
        "## Generalisation: in-distribution test and external datasets",
        "",
        "The best checkpoint (chosen on validation) scored on its own dataset's test split and on every "
        "`eval_datasets` entry after training (dataset-level scores, as Table 3). Cells: mean ± SD over "
        "seeds (k-fold: a seed's value is the mean over its folds).",
        "",
    ]
    for metric in METRICS:
        recs = [r for r in records if r["metric"] == metric]
        if not recs:
            continue
        md.append(f"#### {metric_title(metric)}\n")
        for dataset in dict.fromkeys(r["dataset"] for r in recs):
            md.append(f"trained on **{dataset}**\n")
            md.append(pivot_markdown([r for r in recs if r["dataset"] == dataset]))
    if paired:
        md += [
            "### Paired comparisons on the external images",
            "",
            "As in the paired section (per-image scores averaged over seeds, a k-fold seed's folds "
            "averaged first; bootstrap CI over images; Wilcoxon; Holm over the rows of each table), on each "
            "external set's `external/<name>/per_image.csv`.",
            "",
        ]
        for reference in references:
            for metric in PER_IMAGE_SCORES:
                md += paired_markdown(paired, reference, metric)
    return md
