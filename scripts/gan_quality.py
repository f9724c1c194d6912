"""What do fewer GAN steps cost? Train the GAN of ``aug=gan`` for each step count (cached as
``src/train_gan.py`` caches it) and score each generator on the *validation* split, which it never saw.

    python scripts/gan_quality.py --steps 800 2000                # the default (synthetic) data
    python scripts/gan_quality.py --steps 800 2000 -- dataset=colon

Scores: the mean absolute error (L1, [0, 1] scale) between the image generated from a validation
mask and the real image, against a floor that needs no GAN (every pixel the training split's mean
colour of its class), and the training L1 of the last epoch (``gan.json`` history).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from advaug.data.datasets import as_float_images  # noqa: E402
from advaug.gan.training import train_gan  # noqa: E402
from advaug.utils.config import register_resolvers  # noqa: E402


def class_mean_floor(train: tuple[torch.Tensor, torch.Tensor], val: tuple[torch.Tensor, torch.Tensor]) -> float:
    """L1 of painting each validation pixel with the training split's mean colour of its class."""
    (images, masks), (val_images, val_masks) = train, val
    painted = torch.zeros_like(val_images)
    for c in val_masks.unique().tolist():
        colour = images.permute(0, 2, 3, 1)[masks == c].mean(0)
        painted.permute(0, 2, 3, 1)[val_masks == c] = colour
    return float((painted - val_images).abs().mean())


def score(overrides: list[str], steps: int, out: Path) -> dict[str, float]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train_gan", [*overrides, f"gan.steps={steps}", f"paths.output_dir={out / str(steps)}"])
    started = time.perf_counter()
    summary = train_gan(cfg)
    seconds = time.perf_counter() - started
    recipe = instantiate(cfg.gan)
    module = recipe.load(Path(summary["cache_dir"]))
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.setup("fit")
    train = tuple(as_float_images(t) if i == 0 else t for i, t in enumerate(datamodule.data["train"]))
    val_images, val_masks = datamodule.data["val"]
    val_images = as_float_images(val_images)
    generated = module.generate(val_masks.long(), seed=0)
    return {
        "steps": summary.get("steps", steps),
        "val_l1": float((generated - val_images).abs().mean()),
        "floor_l1": class_mean_floor(train, (val_images, val_masks)),
        "train_l1_last_epoch": summary["history"][-1]["gan/g_l1"],
        "train_time_s": summary["train_time_s"],
        "this_call_s": seconds,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[800, 2000], help="generator steps to compare")
    parser.add_argument("--out", type=Path, default=ROOT / "logs" / "gan_quality", help="gan.json per step count")
    parser.add_argument("overrides", nargs="*", help="train_gan config overrides (after --), e.g. dataset=colon")
    args = parser.parse_args(argv)
    register_resolvers()
    rows = [score(args.overrides, steps, args.out) for steps in args.steps]
    print("| steps | val L1 (generated vs real) | class-mean floor L1 | train L1, last epoch | GAN training s |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['steps']} | {r['val_l1']:.4f} | {r['floor_l1']:.4f} | {r['train_l1_last_epoch']:.4f} "
              f"| {r['train_time_s']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
