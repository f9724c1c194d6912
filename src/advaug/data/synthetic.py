"""SYNTHETIC phantom data: procedural CT-like slices with lesion masks, generated from a seed.

Not medical data. It exists so that ``python src/train.py`` runs offline with nothing to download,
and so that tests exercise the same on-disk format as real data. Each slice has a body ellipse
(fat rim, soft tissue), 2-4 organs of different intensities, a bright vertebra and a lesion-like
foreground of random star-shaped outline, size and contrast (mostly a hypodense core, often with an
enhancing rim, sometimes faint), plus blur and noise; about 10 % of slices have no lesion, like tumour-free slices in a CT volume.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from filelock import FileLock
from PIL import Image, ImageFilter

from advaug.errors import DatasetError
from advaug.utils.io import shared_temp_dir

# dataset.json's settings.generator starts with this in every folder this module wrote (any version)
GENERATOR_NAME = "synthetic-phantom"


def _ellipse(
    yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ry: float, rx: float, angle: float
) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    y, x = yy - cy, xx - cx
    u, v = x * c + y * s, -x * s + y * c
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _blob(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, r0: float
) -> np.ndarray:
    """A star-shaped region whose radius varies smoothly with the angle (lobulated lesion)."""
    theta = np.arctan2(yy - cy, xx - cx)
    radius = np.full_like(theta, r0)
    for k in range(2, 6):
        radius += r0 * rng.uniform(0.0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return np.hypot(yy - cy, xx - cx) <= radius


def phantom(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One slice: image uint8 (size, size) and binary mask uint8 (size, size) in {0, 1}."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    s = size / 128.0
    img = np.full((size, size), 0.02)
    cy, cx = size / 2 + rng.normal(0, 3 * s), size / 2 + rng.normal(0, 3 * s)
    ry, rx = rng.uniform(40, 52) * s, rng.uniform(52, 62) * s
    body = _ellipse(yy, xx, cy, cx, ry, rx, rng.normal(0, 0.05))
    img[body] = 0.30  # fat
    inner = _ellipse(yy, xx, cy, cx, ry - 5 * s, rx - 5 * s, 0.0)
    img[inner] = rng.uniform(0.42, 0.50)  # soft tissue
    organs = []
    for _ in range(rng.integers(2, 5)):
        oy, ox = cy + rng.uniform(-0.45, 0.25) * ry, cx + rng.uniform(-0.6, 0.6) * rx
        organ = (
            _ellipse(yy, xx, oy, ox, rng.uniform(8, 20) * s, rng.uniform(8, 24) * s, rng.uniform(0, np.pi))
            & inner
        )
        img[organ] = rng.uniform(0.35, 0.75)
        organs.append(organ)
    spine = _ellipse(yy, xx, cy + 0.62 * ry, cx, 8 * s, 9 * s, 0.0) & inner
    img[spine] = 0.92
    img[_ellipse(yy, xx, cy + 0.62 * ry, cx, 4 * s, 4.5 * s, 0.0) & inner] = 0.55

    mask = np.zeros((size, size), dtype=np.uint8)
    if rng.random() > 0.1:
        host = organs[rng.integers(len(organs))] if organs and rng.random() < 0.6 else inner
        ys, xs = np.nonzero(host & ~spine)
        k = rng.integers(len(ys))
        lesion = _blob(rng, yy, xx, ys[k], xs[k], rng.uniform(7, 18) * s) & inner & ~spine
        local = float(np.median(img[lesion])) if lesion.any() else 0.45
        # Mostly hypodense cores (as tumours in contrast CT), some hyperdense; contrast fades to the rim.
        contrast = (-1 if rng.random() < 0.7 else 1) * rng.uniform(0.1, 0.3)
        dist = np.hypot(yy - ys[k], xx - xs[k])
        fade = np.clip(1.2 - dist / (dist[lesion].max() + 1e-6) if lesion.any() else 0, 0.4, 1.0)
        img[lesion] = np.clip(local + contrast * fade[lesion], 0, 1)
        # An enhancing rim on most lesions, of varying strength; organs have none.
        if rng.random() < 0.8:
            eroded = (
                np.asarray(Image.fromarray(lesion.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(3)))
                > 0
            )
            rim = lesion & ~eroded
            img[rim] = np.clip(local + rng.uniform(0.05, 0.2), 0, 1)
        mask[lesion] = 1
    picture = Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8))
    picture = picture.filter(ImageFilter.GaussianBlur(radius=rng.uniform(0.6, 1.4) * s))
    noisy = np.asarray(picture, dtype=np.float64) + rng.normal(0, rng.uniform(4, 10), (size, size))
    return np.clip(noisy, 0, 255).astype(np.uint8), mask


class SyntheticPhantomGenerator:
    """Writes ``num_images`` phantom slices in the on-disk format (images/, masks/ 0/255 PNG).

    Generation is deterministic in ``seed``; ``ensure(root)`` only writes when the folder is absent
    or was made with other settings, and writes into a temporary folder renamed at the end.
    """

    def __init__(self, num_images: int = 240, size: int = 128, seed: int = 0) -> None:
        if num_images < 3:
            raise ValueError(f"num_images={num_images}: need at least 3 images (one per split).")
        self.num_images, self.size, self.seed = int(num_images), int(size), int(seed)

    @property
    def settings(self) -> dict:
        return {
            "generator": f"{GENERATOR_NAME}-v4",
            "num_images": self.num_images,
            "size": self.size,
            "seed": self.seed,
        }

    def ensure(self, root: str | Path) -> Path:
        """Generate into ``root`` unless an identical generation is already there.

        Replaces only a folder this generator made (other settings) or an empty one; any other
        existing folder is a :class:`DatasetError`, so that pointing ``dataset.root`` of the
        synthetic dataset at real data never deletes it. Safe when several processes (parallel
        sweep jobs, DDP ranks) ask at once: a file lock beside ``root`` serialises them, and each
        writes into its own temporary folder that is renamed into place only when complete.
        """
        root = Path(root)
        self._refuse_foreign(root)  # before the lock: leave no .lock file beside someone's data
        root.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root.with_name(root.name + ".lock"))):
            if self._is_current(root):
                return root
            self._refuse_foreign(root)  # again under the lock: it may have changed meanwhile
            tmp = shared_temp_dir(f".{root.name}.tmp-", root.parent)
            try:
                self._write(tmp)
                if root.is_dir() and not root.is_symlink():
                    shutil.rmtree(root)
                elif root.exists() or root.is_symlink():
                    root.unlink()
                tmp.rename(root)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp)
        return root

    @staticmethod
    def _settings_of(root: Path) -> dict | None:
        """The ``settings`` recorded in ``root/dataset.json``, or None when absent or unreadable."""
        try:
            settings = json.loads((root / "dataset.json").read_text()).get("settings")
        except (OSError, ValueError, AttributeError):
            return None
        return settings if isinstance(settings, dict) else None

    def _is_current(self, root: Path) -> bool:
        return self._settings_of(root) == self.settings

    def recorded_settings(self, root: str | Path) -> dict | None:
        """The settings the set in ``root`` was generated with (None: no generated set there)."""
        return self._settings_of(Path(root))

    def _refuse_foreign(self, root: Path) -> None:
        """Raise unless ``root`` is absent, an empty folder, or a generation of this generator."""
        if not root.exists() and not root.is_symlink():
            return
        if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
            return
        generator = str((self._settings_of(root) or {}).get("generator", ""))
        if root.is_dir() and generator.startswith(GENERATOR_NAME):
            return
        raise DatasetError(
            f"{root} already exists and was not made by the synthetic phantom generator (no "
            "dataset.json from it); refusing to replace it. Choose another dataset.root for "
            "dataset=synthetic (use dataset=folder dataset.root=<folder> for your own data), or "
            "delete the folder yourself if it holds nothing you need."
        )

    def _write(self, folder: Path) -> None:
        (folder / "images").mkdir()
        (folder / "masks").mkdir()
        rng = np.random.default_rng(self.seed)
        for i in range(self.num_images):
            image, mask = phantom(rng, self.size)
            Image.fromarray(image).save(folder / "images" / f"phantom_{i:04d}.png")
            Image.fromarray(mask * 255).save(folder / "masks" / f"phantom_{i:04d}.png")
        (folder / "dataset.json").write_text(
            json.dumps(
                {
                    "name": "synthetic",
                    "description": "SYNTHETIC CT-like phantom slices with lesion masks (not medical data).",
                    "settings": self.settings,
                    "count": self.num_images,
                },
                indent=2,
            )
        )
