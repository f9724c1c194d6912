"""Convert a downloaded public dataset into the project's on-disk format.

    python src/prepare_data.py colon  --src Task10_Colon.tar --out data/colon
    python src/prepare_data.py lumbar --src verse/ --out data/lumbar
    python src/prepare_data.py polyp  --src kvasir-seg.zip --out data/polyp

See docs/datasets.md for where each source is downloaded and its licence. Idempotent: a second run
with the same settings does nothing; other settings need --force.
"""

import argparse
import sys
from pathlib import Path

from advaug.data.converters import NAMES, prepare
from advaug.errors import AdvaugError
from advaug.utils.config import project_root


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=NAMES, help="which dataset to prepare")
    p.add_argument(
        "--src", required=True, help="the downloaded archive (.zip/.tar[.gz]) or its unpacked folder"
    )
    p.add_argument("--out", help="output folder (default: data/<name> in the project)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument(
        "--size", type=int, default=128, help="output side in pixels; 0 keeps the source size (default 128)"
    )
    p.add_argument(
        "--split",
        type=float,
        nargs=3,
        default=(0.7, 0.15, 0.15),
        metavar=("TRAIN", "VAL", "TEST"),
        help="ratios of patients (CT) or images (polyp) per split (default 0.7 0.15 0.15)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the split and of the slice sampling")
    ct = p.add_argument_group("CT (colon, lumbar)")
    ct.add_argument(
        "--window",
        type=float,
        nargs=2,
        metavar=("LEVEL", "WIDTH"),
        help="CT window in HU (default: colon 40 400 abdomen, lumbar 400 1800 bone)",
    )
    ct.add_argument(
        "--empty-fraction",
        type=float,
        help="foreground-free slices to add per volume, as a share of its foreground slices "
        "(default: colon 0.1, lumbar 0)",
    )
    ct.add_argument(
        "--slice-spacing-mm",
        type=float,
        help="keep foreground slices at least this far apart; 0 keeps all (default: colon 0, lumbar 5)",
    )
    ct.add_argument(
        "--labels",
        type=int,
        nargs="+",
        default=[20, 21, 22, 23, 24],
        help="lumbar: VerSe labels that form the mask (default L1-L5 = 20..24; add 25 for L6)",
    )
    ct.add_argument(
        "--per-level",
        action="store_true",
        help="lumbar: one class per label instead of a binary mask (train with dataset.num_classes=6)",
    )
    p.add_argument(
        "--mask-threshold",
        type=int,
        default=128,
        help="polyp: mask pixels >= this are polyp (JPEG masks are lossy; default 128)",
    )
    p.add_argument(
        "--groups",
        help="polyp: JSON file mapping each frame id to its video, to split by video "
        "(default: sequences.json beside the images, when there)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out) if args.out else project_root() / "data" / args.name
    try:
        prepare(
            args.name,
            args.src,
            out,
            size=args.size,
            split=args.split,
            seed=args.seed,
            force=args.force,
            window=args.window,
            empty_fraction=args.empty_fraction,
            slice_spacing_mm=args.slice_spacing_mm,
            labels=args.labels,
            per_level=args.per_level,
            mask_threshold=args.mask_threshold,
            groups=args.groups,
            progress=lambda msg: print(msg, flush=True),
        )
    except AdvaugError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
