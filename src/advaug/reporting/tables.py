"""Records -> markdown tables (best cell per column in bold) and CSV files."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advaug.utils.io import atomic_write_text

METRIC_NAMES = {
    "miou": "mean IoU (background + foreground, the paper's)",
    "iou_fg": "foreground IoU",
    "dice": "Dice (foreground)",
}


def metric_title(metric: str) -> str:
    """A table heading for ``metric``: ``iou_c2`` (one class of a multi-class run) -> "IoU of class 2"."""
    if metric in METRIC_NAMES:
        return METRIC_NAMES[metric]
    base, _, k = metric.rpartition("_c")
    return f"{'IoU' if base == 'iou' else base} of class {k}" if k.isdigit() else metric


CSV_FIELDS = ("table", "dataset", "block", "row", "column", "metric", "mean", "std", "n")


def format_cell(mean: float, std: float, n: int, best: bool = False) -> str:
    """``0.8120 ± 0.0100 (n=3)``; one seed shows no std; no value shows ``—``; best in bold."""
    if n == 0 or not math.isfinite(mean):
        return "—"
    value = f"{mean:.4f}" if not math.isfinite(std) else f"{mean:.4f} ± {std:.4f}"
    return f"{'**' + value + '**' if best else value} (n={n})"


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def pivot_markdown(records: Sequence[dict[str, Any]], row_header: str = "method") -> str:
    """One markdown table: rows = (block, row), columns = ``column``; the highest mean per column
    (within a block, among at least two filled cells that are not all equal) is bold."""
    if not records:
        return "_no data_\n"
    blocks = _unique(r["block"] for r in records)
    columns = _unique(r["column"] for r in records)
    cell = {(r["block"], r["row"], r["column"]): r for r in records}
    best: dict[tuple[str, str], float] = {}
    for block in blocks:
        for column in columns:
            means = [
                r["mean"] for r in records if r["block"] == block and r["column"] == column and r["n"] > 0
            ]
            if len(means) > 1 and max(means) - min(means) > 1e-12:  # all equal: nothing to mark
                best[(block, column)] = max(means)
    with_block = any(blocks)
    head = (["attack / labels"] if with_block else []) + [row_header, *columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for block in blocks:
        for row in _unique(r["row"] for r in records if r["block"] == block):
            out = [block] if with_block else []
            out.append(row)
            for column in columns:
                r = cell.get((block, row, column))
                if r is None:
                    out.append("—")
                    continue
                is_best = (
                    (block, column) in best and r["n"] > 0 and r["mean"] >= best[(block, column)] - 1e-12
                )
                out.append(format_cell(r["mean"], r["std"], r["n"], is_best))
            lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines) + "\n"


def records_csv(path: str | Path, records: Sequence[dict[str, Any]]) -> Path:
    """Write long-format records (one line per cell, the :data:`CSV_FIELDS`) as CSV, atomically;
    NaN std stays empty."""
    return rows_csv(path, records, CSV_FIELDS)


def rows_csv(path: str | Path, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> Path:
    """Write dict rows as CSV with the columns ``fields``, atomically; NaN / inf values stay empty."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.items()}
        )
    return atomic_write_text(path, buf.getvalue())
