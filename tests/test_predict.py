"""src/predict.py and advaug.deploy: a tiny run's model on real Kvasir-SEG images of different
sizes, masks at their original size; the loader's errors; the checkpoint loaded without Hydra."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, compose_config, run_entry_script, script_args
from omegaconf import OmegaConf
from PIL import Image

from advaug.deploy import load_run
from advaug.deploy.overlay import mask_overlay
from advaug.deploy.predict import predict_folder
from advaug.errors import DatasetError
from advaug.models import SegmentationModule
from advaug.models.twin_norm import TwinBatchNorm2d, main_only
from advaug.training import train

KVASIR = SHARED / "kvasir-seg" / "images"
needs_kvasir = pytest.mark.skipif(not KVASIR.is_dir(), reason="no ../shared/datasets/kvasir-seg")


def tiny_run(root: Path, *extra: str) -> Path:
    """One epoch at 32 px on 16 phantoms, no robustness grid: the run folder."""
    overrides = [f"paths.data_dir={root / 'data'}", *script_args(root)[2:], *extra]
    train(compose_config(overrides, root))
    return root / "run"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return tiny_run(tmp_path_factory.mktemp("predict"))


def kvasir_images(folder: Path, n: int = 3) -> list[Path]:
    """Links to the first ``n`` Kvasir images (read in place, never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    links = []
    for src in sorted(KVASIR.iterdir())[:n]:
        (folder / src.name).symlink_to(src)
        links.append(folder / src.name)
    return links


def predict_cfg(tmp_path: Path, **kw):
    cfg = compose_config([f"input={kw.pop('input')}"], tmp_path, config_name="predict")
    for k, v in kw.items():
        OmegaConf.update(cfg, k, v, force_add=True)
    cfg.progress_bar = False
    return cfg


@needs_kvasir
def test_masks_have_each_images_original_size(run_dir, tmp_path):
    images = kvasir_images(tmp_path / "in")
    sizes = {p.stem: Image.open(p).size for p in images}
    assert len(set(sizes.values())) > 1  # the shared set's images differ in size
    out = tmp_path / "out"
    summary = predict_folder(predict_cfg(tmp_path, input=tmp_path / "in", run_dir=str(run_dir), output=str(out),
                                         probabilities=True, overlays=True, batch_size=2))  # fmt: skip
    assert summary["images"] == 3 and summary["preprocessing"]["input"]["shape"][2:] == [32, 32]
    run = load_run(run_dir)
    for stem, size in sizes.items():
        mask = Image.open(out / "masks" / f"{stem}.png")
        assert mask.size == size and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
        prob = np.asarray(Image.open(out / "probabilities" / f"{stem}.png"))
        assert prob.shape == (size[1], size[0])
        # the mask is the thresholded foreground probability (argmax of two classes)
        # foreground where P(foreground) > 0.5; pixels at 0.5 may round either way in 8 bits
        assert np.mean((np.asarray(mask) == 255) != (prob >= 128)) < 1e-3
        assert Image.open(out / "overlays" / f"{stem}.png").size == size
    # the same model on the training loader's input gives the same mask, resized back
    first = images[0]
    with torch.no_grad():
        probs = run.model(run.preprocessing.load(first)[None]).softmax(1)
    w, h = sizes[first.stem]
    up = torch.nn.functional.interpolate(probs, size=(h, w), mode="bilinear", align_corners=False)
    expected = up.argmax(1)[0].numpy().astype(np.uint8) * 255
    got = np.asarray(Image.open(out / "masks" / f"{first.stem}.png"))
    # equal but where the two classes tie within float noise (batch of 2 there, of 1 here)
    clear = (up[0, 1] - 0.5).abs().numpy() > 1e-4
    assert np.array_equal(got[clear], expected[clear]) and clear.mean() > 0.99
    assert json.loads((out / "predict.json").read_text())["ckpt_path"] == str(run_dir / "checkpoints" / "best.ckpt")
    assert not list(out.glob(".predict-*"))  # the staging folder is gone


def test_a_non_image_file_is_the_loaders_one_line_error_and_writes_nothing(run_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "a.png")
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = run_entry_script(
        "predict.py", [f"run_dir={run_dir}", f"input={folder}", f"output={out}", f"hydra.run.dir={tmp_path / 'h'}"],
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {folder / 'notes.txt'}: not an image file (expected one of .png, .jpg, .jpeg, "
                      ".tif, .tiff, .bmp). Move it out of the dataset folder."]  # fmt: skip
    assert not out.exists() or not any(out.iterdir())


def test_an_unreadable_image_leaves_no_half_written_result(run_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(folder / "b.png")
    data = (folder / "b.png").read_bytes()
    (folder / "b.png").write_bytes(data[: len(data) // 2])  # truncated: the header reads, decoding fails
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match=r"b\.png: cannot decode the image"):
        predict_folder(predict_cfg(tmp_path, input=folder, run_dir=str(run_dir), output=str(out), batch_size=1))
    assert sorted(p.name for p in out.iterdir()) == []  # a.png's mask was staged, then removed


def test_load_from_checkpoint_without_hydra_gives_identical_logits(run_dir):
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    loaded = SegmentationModule.load_from_checkpoint(ckpt, map_location="cpu").eval()
    assert loaded.hparams.net["decoder_channels"] == [16, 8, 8]  # the run's net, not smp's default
    run = load_run(ckpt)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(loaded(x), run.model(x))
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    assert run.preprocessing.image_size == 32 and run.preprocessing.classes == ["background", "foreground"]


def test_twin_norm_checkpoint_predicts_with_the_main_layers(tmp_path):
    run_dir = tiny_run(tmp_path, "model.aux_norm=stats", "aug=fgsm", "aug.batch_fraction=0.5")
    run = load_run(run_dir)
    twins = [m for m in run.model.net.modules() if isinstance(m, TwinBatchNorm2d)]
    assert twins
    for t in twins:  # twin statistics far from the main ones: any use of them would show
        t.aux.running_mean.fill_(5.0)
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    plain = main_only(run.model.net).eval()
    with torch.no_grad():
        got = run.model.predict_step({"image": x}, 0)
        assert torch.allclose(got, plain(x).softmax(1), atol=1e-6)


def test_mask_overlay_blends_only_foreground_pixels():
    image = np.full((2, 2, 3), 100, np.uint8)
    mask = np.array([[0, 1], [2, 0]], np.uint8)
    out = mask_overlay(image, mask, alpha=0.5)
    assert out[0, 0].tolist() == [100, 100, 100] and out[1, 1].tolist() == [100, 100, 100]
    assert out[0, 1].tolist() == [165, 62, 88]  # (100 + [230, 25, 75]) / 2, rounded
    assert out[1, 0].tolist() == [80, 140, 88]
