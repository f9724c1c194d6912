"""The "how these numbers were made" block of a report: jobs, seeds, epochs, splits, wall time,
device and commit, read from what each job wrote (never typed in by hand)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence

from advaug.reporting.collect import Job


def _values(jobs: Sequence[Job], get) -> list[str]:
    seen: dict[str, None] = {}
    for job in jobs:
        value = get(job)
        if value is not None:
            seen[value if isinstance(value, str) else json.dumps(value, sort_keys=True)] = None
    return list(seen)


def _env(job: Job, key: str):
    return ((job.metrics or {}).get("environment") or {}).get(key)


def uneven_cells(jobs: Sequence[Job]) -> dict[tuple[str, str], tuple[list, list]]:
    """(dataset, method) -> (its seeds, the dataset's seeds) for every cell whose set of seeds is
    not the union of the seeds run on that dataset (a failed or missing seed; datasets may differ)."""
    cells: dict[tuple[str, str], set] = {}
    for job in jobs:
        cells.setdefault((str(job.dataset), job.method), set()).add(job.seed)
    union: dict[str, set] = {}
    for (dataset, _), seeds in cells.items():
        union.setdefault(dataset, set()).update(seeds)
    return {
        key: (_sorted(seeds), _sorted(union[key[0]]))
        for key, seeds in sorted(cells.items())
        if seeds != union[key[0]]
    }


def _sorted(seeds) -> list:
    """Integer seeds in numeric order, anything else (None, text) after them."""
    return sorted(seeds, key=lambda s: (not isinstance(s, int), s if isinstance(s, int) else str(s)))


def provenance_lines(jobs: Sequence[Job]) -> list[str]:
    """Markdown lines: a two-column table of facts over the completed ``jobs``."""
    if not jobs:
        return []
    methods = {job.method for job in jobs}
    seeds = [str(s) for s in _sorted({j.seed for j in jobs} - {None})]
    walls = [float(j.metrics["wall_time_s"]) for j in jobs if j.metrics and "wall_time_s" in j.metrics]
    rows = [
        ("completed jobs", f"{len(jobs)}: {len(methods)} methods × seeds {', '.join(seeds)}"),
        ("epochs", ", ".join(_values(jobs, lambda j: (j.metrics or {}).get("epochs")))),
        ("split sizes", "; ".join(_values(jobs, lambda j: (j.metrics or {}).get("splits")))),
    ]
    if walls:
        rows.append(
            (
                "wall time per job",
                f"min {min(walls):.0f} s, median {statistics.median(walls):.0f} s, max {max(walls):.0f} s "
                f"(sum {sum(walls) / 60:.1f} min; jobs may have run in parallel)",
            )
        )
    recorded = sum(1 for j in jobs if (j.metrics or {}).get("environment"))
    coverage = "" if recorded == len(jobs) else f" (recorded by {recorded} of {len(jobs)} jobs)"
    for key in ("device", "commit", "torch", "precision"):
        found = _values(jobs, lambda j, k=key: _env(j, k))
        if found:
            rows.append((key, ", ".join(f"`{v}`" if key == "commit" else v for v in found) + coverage))
    uneven = uneven_cells(jobs)
    if uneven:
        text = "; ".join(f"{d} / {m}: seeds {s} of {u}" for (d, m), (s, u) in uneven.items())
        rows.append(("uneven cells", text))
    lines = ["## Runs behind these numbers", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return [*lines, ""]
