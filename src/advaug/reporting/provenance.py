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


def provenance_lines(jobs: Sequence[Job]) -> list[str]:
    """Markdown lines: a two-column table of facts over the completed ``jobs``."""
    if not jobs:
        return []
    per_method: dict[str, list[int]] = {}
    for job in jobs:
        per_method.setdefault(job.method, []).append(job.seed)
    seeds = _values(jobs, lambda j: j.seed)
    walls = [float(j.metrics["wall_time_s"]) for j in jobs if j.metrics and "wall_time_s" in j.metrics]
    rows = [
        ("completed jobs", f"{len(jobs)}: {len(per_method)} methods × seeds {', '.join(seeds)}"),
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
    uneven = {m: s for m, s in per_method.items() if len(s) != len(seeds)}
    if uneven:
        rows.append(("uneven cells", "; ".join(f"{m}: seeds {sorted(s)}" for m, s in sorted(uneven.items()))))
    lines = ["## Runs behind these numbers", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    return [*lines, ""]
