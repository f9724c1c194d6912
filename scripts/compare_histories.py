"""Same seed, same history? Train four tiny fixed-seed CPU runs and compare their metrics.json.

    python scripts/compare_histories.py --save DIR       # record the histories of this checkout
    python scripts/compare_histories.py --against DIR    # compare this checkout with a recording

A refactor that must not change behaviour keeps every number of every epoch: the comparison is
exact (no tolerance) on the per-epoch history and the final test / robustness scores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import TINY as TEST_TINY  # noqa: E402  (the test suite's tiny run, one definition)

TINY = [*TEST_TINY, "trainer.max_epochs=2", "logger=none", "seed=0"]
RUNS = {
    "invfgsm": ["aug=invfgsm"],
    "invfgsm_free": ["aug=invfgsm", "aug.mode=free"],
    "flip": ["aug=flip"],
    "gan": ["aug=gan", "aug.gan.steps=8", "aug.num_workers=0"],
}
# wall times and paths differ between any two runs; everything else must be equal
VOLATILE = {"wall_time_s", "train/epoch_s", "train/img_per_s", "duration_s", "output_dir", "checkpoint", "best_checkpoint", "best_model_path", "environment"}


def strip(value):
    if isinstance(value, dict):
        return {k: strip(v) for k, v in value.items() if k not in VOLATILE and not k.endswith("_path")}
    if isinstance(value, list):
        return [strip(v) for v in value]
    return value


def record(name: str, overrides: list[str], work: Path) -> dict:
    out = work / name
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), *TINY, *overrides,
           f"paths.data_dir={work / 'data'}", f"paths.log_dir={work / 'logs'}", f"paths.output_dir={out}",
           f"hydra.run.dir={out}"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{name}: train.py exited {done.returncode}\n{done.stderr[-3000:]}")
    return strip(json.loads((out / "metrics.json").read_text()))


def diff(a, b, where="") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in {'recording' if k in a else 'this checkout'}"
               for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += diff(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", type=Path, help="write <DIR>/<run>.json")
    mode.add_argument("--against", type=Path, help="compare with <DIR>/<run>.json")
    parser.add_argument("--only", nargs="*", choices=sorted(RUNS), help="a subset of the runs")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="added to every run, the same in both checkouts (a default that changed)")
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only or RUNS:
            history = record(name, [*RUNS[name], *args.override], Path(tmp))
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                (args.save / f"{name}.json").write_text(json.dumps(history, indent=1, sort_keys=True))
                print(f"{name}: saved {len(history.get('history', []))} epochs")
                continue
            reference = json.loads((args.against / f"{name}.json").read_text())
            differences = diff(reference, history)
            failed += bool(differences)
            epochs = len(history.get("history", []))
            print(f"{name}: {'identical' if not differences else 'DIFFERENT'} ({epochs} epochs)")
            for line in differences[:20]:
                print("   ", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
