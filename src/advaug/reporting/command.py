"""Tables 1-3 and plots from one or more run / multirun folders.

Examples::

    python src/report.py logs/train/multiruns/<time>            # writes tables.md, *.csv, *.png there
    python src/report.py logs/a logs/b --out reports/combined --epochs 0,10,20,30
    # a page to publish: docs/results/kvasir-seg.md, its CSVs / plots / figures in docs/results/kvasir-seg/
    python src/report.py docs/results/kvasir-seg/runs --out docs/results --name kvasir-seg \
        --header docs/results/kvasir-seg/header.md --title "..." --figures none,fgsm,invfgsm --compare invfgsm
    python src/report.py logs/train/multiruns/<time> --reference none,same_steps --resamples 10000
"""

import argparse
import logging

from advaug.reporting import write_report
from advaug.run.entry import run_entry
from advaug.statistics import RESAMPLES


def _epoch_list(text: str) -> list[int]:
    """``--epochs 0,10,20``: epoch numbers, 0 (before training) or more."""
    try:
        epochs = [int(e) for e in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected epoch numbers separated by commas") from None
    if any(e < 0 for e in epochs):
        raise argparse.ArgumentTypeError(f"{text!r}: epochs start at 0 (before training)")
    return epochs


def _resamples(text: str) -> int:
    """``--resamples 10000``: at least 100 bootstrap resamples (fewer make the CI itself noisy)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number") from None
    if n < 100:
        raise argparse.ArgumentTypeError(f"{text!r}: use at least 100 resamples (default {RESAMPLES})")
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("roots", nargs="+", help="run or multirun folders, searched recursively for jobs")
    parser.add_argument("--out", help="where to write the report (default: the first folder)")
    parser.add_argument(
        "--epochs",
        type=_epoch_list,
        help="Table 1 epoch columns, e.g. 0,10,20,30 (default: 0/10/20/30 if reached, else 4 evenly spaced)",
    )
    parser.add_argument("--name", help="publish as <out>/<name>.md with its files in <out>/<name>/")
    parser.add_argument("--header", help="a Markdown file inserted under the title (setup, conclusions)")
    parser.add_argument("--title", default="Results", help="the page title")
    parser.add_argument(
        "--figures",
        type=lambda s: [m for m in s.split(",") if m],
        help="methods whose Fig. 3-4 grid is shown, e.g. none,fgsm,invfgsm (default: all)",
    )
    parser.add_argument(
        "--compare",
        type=lambda s: [m for m in s.split(",") if m],
        default=[],
        help="methods whose test-score margins over the others are tabulated, e.g. invfgsm,fgsm",
    )
    parser.add_argument(
        "--reference",
        type=lambda s: [m for m in s.split(",") if m],
        help="methods every other method is compared with image by image (paired tests), e.g. "
        "none,same_steps (the default: those of them present)",
    )
    parser.add_argument(
        "--resamples",
        type=_resamples,
        default=RESAMPLES,
        help=f"bootstrap resamples per CI (default {RESAMPLES})",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    written = run_entry(
        lambda _: write_report(
            args.roots,
            args.out,
            args.epochs,
            args.name,
            args.header,
            args.title,
            args.figures,
            args.compare,
            args.reference,
            args.resamples,
        ),  # fmt: skip
        None,
    )
    print(f"report written to {written['tables.md']}")
    return 0
