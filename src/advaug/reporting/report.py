"""``write_report``: jobs under run folders -> tables.md, table{1,2,3}.csv, jobs.csv and PNG plots."""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advaug.reporting import aggregate, plots
from advaug.reporting.collect import Job, collect
from advaug.reporting.generalisation import (
    generalisation_paired,
    generalisation_records,
    generalisation_section,
)
from advaug.reporting.paired import PAIRED_FIELDS, default_references, paired_rows, paired_section
from advaug.reporting.provenance import provenance_lines
from advaug.reporting.tables import metric_title, pivot_markdown, records_csv, rows_csv
from advaug.statistics import RESAMPLES
from advaug.utils.io import atomic_write_text

log = logging.getLogger(__name__)


def _section(records: list[dict[str, Any]], split_by_dataset: bool, row_header: str = "method") -> list[str]:
    lines = []
    present = list(dict.fromkeys(r["metric"] for r in records))
    for metric in [*aggregate.METRICS, *(m for m in present if m not in aggregate.METRICS)]:
        lines.append(f"#### {metric_title(metric)}\n")
        recs = [r for r in records if r["metric"] == metric]
        datasets = list(dict.fromkeys(r["dataset"] for r in recs)) if split_by_dataset else [None]
        for dataset in datasets:
            if dataset is not None:
                lines.append(f"dataset **{dataset}**\n")
            lines.append(
                pivot_markdown([r for r in recs if dataset is None or r["dataset"] == dataset], row_header)
            )
    return lines


def _link(path: Path, page_dir: Path) -> str:
    return Path(os.path.relpath(path, page_dir)).as_posix()


def _job_rows(jobs: Sequence[Job], out: Path) -> list[dict[str, Any]]:
    return [
        {
            "path": os.path.relpath(j.path, out),
            "status": j.status,
            "dataset": j.dataset,
            "method": j.method,
            "seed": j.seed,
            "test_miou": (j.metrics or {}).get("test", {}).get("test/miou"),
            "robustness": "yes" if j.robustness else "no",
            "reason": j.reason,
        }
        for j in jobs
    ]


def _warn_unknown(option: str, names: Sequence[str] | None, jobs: Sequence[Job]) -> None:
    """Log a warning for each ``--compare`` / ``--figures`` / ``--reference`` name that is no method
    of ``jobs`` (a typo, or a label that changed) instead of silently showing nothing for it; a
    reference may also name an aug that some base augmentation stacks (``none``: ``rotate + none``)."""
    methods = sorted({j.method for j in jobs})
    for name in names or ():
        stacked = option == "--reference" and any(m.endswith(f" + {name}") for m in methods)
        if name not in methods and not stacked:
            known = ", ".join(methods) or "none (no job qualifies)"
            log.warning(
                "%s %s: no method of that name, so nothing is shown for it; methods: %s", option, name, known
            )


def _warn_missing_epochs(epochs: Sequence[int] | None, jobs: Sequence[Job]) -> None:
    """Log a warning for each requested ``--epochs`` column that no completed run's history holds
    (its cells would all be "—" without a word why)."""
    reached = {r.get("epoch") for j in jobs for r in (j.metrics or {}).get("history", [])}
    last = max((e for e in reached if isinstance(e, int)), default=None)
    for epoch in epochs or ():
        if epoch not in reached:
            log.warning(
                "--epochs %d: no completed run recorded that epoch (last epoch reached: %s), so its "
                "Table 1 column is empty",
                epoch,
                "none" if last is None else last,
            )


def _figure_name(dataset: Any, method: str, taken: set[str]) -> str:
    """A file name for a copied Fig. 3-4 grid: only ``[\\w.=-]`` (a label may hold ``/``, spaces,
    brackets), made unique among ``taken`` when two labels reduce to the same name."""
    stem = re.sub(r"[^\w.=-]+", "_", f"samples_{dataset}_{method}").strip("_")
    name, i = f"{stem}.png", 1
    while name in taken:
        i += 1
        name = f"{stem}_{i}.png"
    taken.add(name)
    return name


def write_report(
    roots: Sequence[str | Path],
    out_dir: str | Path | None = None,
    epochs: Sequence[int] | None = None,
    name: str | None = None,
    header: str | Path | None = None,
    title: str = "Results",
    figures: Sequence[str] | None = None,
    compare: Sequence[str] = (),
    references: Sequence[str] | None = None,
    n_resamples: int = RESAMPLES,
) -> dict[str, Path]:
    """Collect every job under ``roots`` and write the report into ``out_dir`` (default: the first root).

    Without ``name``: ``tables.md`` plus CSVs and plots in ``out_dir``. With ``name`` (a page to
    publish): ``out_dir/<name>.md`` with its CSVs, plots and figures in ``out_dir/<name>/``.
    ``header`` is a Markdown file inserted under the title (setup, conclusions); ``figures``
    picks the methods whose Fig. 3-4 grid is shown (copied next to the page when ``name`` is
    given; default: every method, linked in place). ``compare`` lists methods whose test-score
    margins over every other method are tabulated (difference and pooled-SD units). ``references``:
    the methods every other method is compared with image by image (:mod:`advaug.reporting.paired`;
    default ``none`` and ``same_steps`` where present), ``n_resamples`` bootstrap resamples each.

    Returns the written paths by name. Jobs that are missing or failed are listed first in
    the page and in ``jobs.csv``; they never silently disappear.
    """
    jobs = collect(list(roots))  # first: a mistyped folder is an error, not an empty report
    _warn_unknown("--compare", compare, [j for j in jobs if j.ok])
    _warn_unknown("--figures", figures, jobs)
    _warn_unknown("--reference", references, [j for j in jobs if j.ok])
    _warn_missing_epochs(epochs, [j for j in jobs if j.ok])
    out = Path(out_dir or roots[0])
    assets = out / name if name else out
    assets.mkdir(parents=True, exist_ok=True)
    page = out / f"{name}.md" if name else out / "tables.md"
    ok = [j for j in jobs if j.ok]
    bad = [j for j in jobs if j.status in ("missing", "failed")]
    cols = aggregate.table_epochs(ok, epochs)
    t1, t2, t3 = aggregate.table1(ok, cols), aggregate.table2(jobs), aggregate.table3(ok)
    header_text = Path(header).read_text(encoding="utf-8").strip() if header else ""

    references = list(references) if references is not None else default_references([j.method for j in ok])
    paired = paired_rows(ok, references, n_resamples)
    general = generalisation_records(ok)
    general_paired = generalisation_paired(ok, references, n_resamples) if general else []
    written = {
        "paired.csv": rows_csv(assets / "paired.csv", paired, PAIRED_FIELDS),
        "jobs.csv": rows_csv(assets / "jobs.csv", _job_rows(jobs, out), list(_job_rows(jobs[:1], out)[0])),
        "table1.csv": records_csv(assets / "table1.csv", t1),
        "table2.csv": records_csv(assets / "table2.csv", t2),
        "table3.csv": records_csv(assets / "table3.csv", t3),
    }
    if general:
        written["generalisation.csv"] = records_csv(assets / "generalisation.csv", general)
        written["generalisation_paired.csv"] = rows_csv(assets / "generalisation_paired.csv", general_paired, PAIRED_FIELDS)
    if ok:
        written["val_miou_vs_epoch.png"] = plots.plot_curves(
            aggregate.curves(ok, "miou"), assets / "val_miou_vs_epoch.png", "validation mean IoU"
        )
    if t2:
        written["robustness_vs_eps.png"] = plots.plot_robustness(t2, assets / "robustness_vs_eps.png")

    counts = {s: sum(j.status == s for j in jobs) for s in ("completed", "failed", "missing", "evaluation", "repeat")}
    md = [f"# {title}", ""]
    if header_text:
        md += [header_text, ""]
    md += [
        f"Sources: {', '.join(f'`{r}`' for r in roots)}. Jobs: "
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + ". Cells: mean ± sample std over seeds (n = seeds); **bold** = highest mean in its column"
        " (Table 2: within its attack block). Tables 2 and 3 are test scores: bold there marks the highest"
        " test mean, not a method selected on it (select on validation, Table 1; whether a gap is real:"
        " the paired comparisons).",
        "",
    ]
    if bad:
        md += [
            "## Jobs missing or failed (not in the tables)",
            "",
            "| job | status | dataset | method | seed | reason |",
        ]
        md += ["|---|---|---|---|---|---|"]
        md += [f"| `{r['path']}` | {r['status']} | {r['dataset']} | {r['method']} | {r['seed']} | {r['reason']} |"
               for r in _job_rows(bad, out)]  # fmt: skip
        md.append("")
    md += provenance_lines(ok)
    md += ["## Table 1: validation scores over epochs (epoch 0 = before training)", ""]
    md += _section(t1, split_by_dataset=True)
    md += ["## Table 2: robustness before (aug=none) / after (augmented training), test split", ""]
    md += _section(t2, split_by_dataset=True, row_header="model") if t2 else ["_no robustness.json found_\n"]
    outside = [(j, aggregate.table2_scope(j)) for j in jobs if j.robustness and aggregate.table2_scope(j)]
    if outside:
        md += ["Not in Table 2 (it holds whole-test-split scores only):", ""]
        md += [f"- `{os.path.relpath(j.path, out)}`: {why}" for j, why in outside]
        md.append("")
    md += ["## Table 3: final test scores (best checkpoint) per method × dataset", ""]
    md += ["The checkpoint is the best on validation; bold = highest test mean, not a selection.", ""]
    md += _section(t3, split_by_dataset=False)
    md += paired_section(paired, references, n_resamples)
    md += generalisation_section(general, general_paired, references)
    margins = [r for ref in compare for m in aggregate.METRICS for r in aggregate.compare(ok, ref, m)]
    if margins:
        written["margins.csv"] = rows_csv(assets / "margins.csv", margins, aggregate.MARGIN_FIELDS)
        for ref in compare:
            rows = [r for r in margins if r["reference"] == ref and r["metric"] == "miou"]
            md += [
                f"## Margins of {ref}: test mean IoU minus each other method's",
                "",
                "margin (SD) = difference / pooled sample SD of the two cells; n = seeds per cell.",
                "",
                "| dataset | versus | " + ref + " | versus | difference | pooled SD | margin (SD) | n |",
                "|---|---|---|---|---|---|---|---|",
            ]
            md += [
                f"| {r['dataset']} | {r['versus']} | {r['reference_mean']:.4f} | {r['versus_mean']:.4f} | "
                f"{r['difference']:+.4f} | {r['pooled_sd']:.4f} | {r['margin_sd']:+.1f} | {r['n']} |"
                for r in rows
            ]
            md.append("")
    md += ["## Figures", ""]
    md += [f"![{f}]({_link(written[f], out)})\n" for f in written if f.endswith(".png")]
    grids: dict[tuple, tuple] = {}  # (dataset, method) -> (seed, samples.png) of its first seed
    for job in sorted(jobs, key=lambda j: (str(j.dataset), j.method, j.seed if j.seed is not None else -1)):
        sample = job.path / "figures" / "samples.png"
        if sample.is_file() and (figures is None or job.method in figures):
            grids.setdefault((job.dataset, job.method), (job.seed, sample))
    copied: set[str] = set()
    for (dataset, method), (seed, sample) in grids.items():
        # a published page carries its figures
        if name and not sample.resolve().is_relative_to(out.resolve()):
            sample = Path(shutil.copyfile(sample, assets / _figure_name(dataset, method, copied)))
        md.append(
            f"Fig. 3-4 grid (test images), {dataset} / {method}, seed {seed}:\n\n"
            f"![{dataset} {method}](<{_link(sample, out)}>)\n"
        )
    written[page.name] = atomic_write_text(page, "\n".join(md))
    written["tables.md"] = written[page.name]
    for job in bad:
        log.warning("job %s: %s (%s)", job.path, job.status, job.reason)
    for job, why in outside:
        log.warning("job %s: robustness.json left out of Table 2: %s", job.path, why)
    return written
