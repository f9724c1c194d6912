"""advaug.figures: every image grid goes through image_grid; files written, PNG size = rows x columns."""

import pytest
import torch
from matplotlib.image import imread

from advaug import figures
from advaug.figures import (
    DPI,
    PANEL_INCHES,
    TITLE_INCHES,
    adversarial_grid,
    image_grid,
    pairs_grid,
    sample_grid,
)

PANEL = int(PANEL_INCHES * DPI)


def size(path):
    """(height, width) in pixels of the PNG at ``path``."""
    return imread(path).shape[:2]


def batch(n=3, hw=16):
    torch.manual_seed(0)
    x = torch.rand(n, 3, hw, hw)
    adv = (x + 0.01 * torch.randn_like(x).sign()).clamp(0, 1)
    masks = (torch.rand(n, hw, hw) > 0.5).long()
    return x, masks, adv


@pytest.fixture
def calls(monkeypatch):
    """The arguments of every image_grid call made through the module (the real one still draws)."""
    seen = []
    real = figures.image_grid

    def spy(rows, titles, path, **kw):
        seen.append({"rows": rows, "titles": list(titles), **kw})
        return real(rows, titles, path, **kw)

    monkeypatch.setattr(figures, "image_grid", spy)
    return seen


def test_image_grid_writes_one_png_sized_by_rows_and_columns(tmp_path):
    x, masks, _ = batch()
    path = image_grid(
        [[x[i], masks[i], (x[i, 0], "signed")] for i in range(3)], ["a", "b", "c"], tmp_path / "d" / "g.png"
    )
    assert path == tmp_path / "d" / "g.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert size(path) == (3 * PANEL, 3 * PANEL)
    titled = image_grid([[x[0], masks[0]]], ["a", "b"], tmp_path / "t.png", title="a title")
    assert size(titled) == (PANEL + int(TITLE_INCHES * DPI), 2 * PANEL)  # the suptitle adds its band
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["d", "g.png", "t.png"]  # no temporary file left


def test_image_grid_rejects_no_rows_and_ragged_rows(tmp_path):
    x, masks, _ = batch(1)
    with pytest.raises(ValueError, match="no rows"):
        image_grid([], ["a"], tmp_path / "g.png")
    with pytest.raises(ValueError, match="2 column titles"):
        image_grid([[x[0], masks[0]], [x[0]]], ["a", "b"], tmp_path / "g.png")
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_adversarial_grid_rows_and_columns(tmp_path, calls):
    x, masks, adv = batch()
    path = adversarial_grid(x, masks, adv, tmp_path / "a.png", preds=masks, max_samples=2, title="pool")
    assert size(path) == (2 * PANEL + int(TITLE_INCHES * DPI), 5 * PANEL)  # max_samples rows, 5 columns
    (call,) = calls
    assert call["titles"][-1] == "prediction on adversarial" and len(call["rows"]) == 2
    diff, caption = call["rows"][0][3]
    assert diff.shape == (16, 16) and caption.startswith("max |δ| = 0.0100")
    assert size(adversarial_grid(x, masks, adv, tmp_path / "b.png")) == (3 * PANEL, 4 * PANEL)
    with pytest.raises(ValueError, match="do not match"):
        adversarial_grid(x, masks, adv[:, :, :8], tmp_path / "c.png")


def test_sample_grid_is_fig_3_4(tmp_path, calls):
    x, masks, adv = batch(2)
    path = sample_grid(
        x, masks, adv, masks, tmp_path / "s.png", title="toy", adv_title="fgsm", adv_pred=masks
    )
    assert size(path) == (2 * PANEL + int(TITLE_INCHES * DPI), 5 * PANEL)
    assert calls[0]["titles"] == ["(a) input", "(b) mask", "(c) fgsm", "(d) prediction", "prediction on (c)"]
    assert size(sample_grid(x, masks, adv, masks, tmp_path / "n.png")) == (2 * PANEL, 4 * PANEL)  # no title


def test_pairs_grid_shows_uint8_masks_on_the_class_scale(tmp_path, calls):
    x, masks, _ = batch(4)
    path = pairs_grid(masks.to(torch.uint8), x, tmp_path / "p.png", real=x, num_classes=3)
    assert size(path) == (4 * PANEL, 3 * PANEL)
    assert calls[0]["titles"] == ["mask", "generated", "real"] and calls[0]["num_classes"] == 3
    assert calls[0]["rows"][0][0].dtype == torch.long  # a class map, not an image
    assert size(pairs_grid(masks, x, tmp_path / "q.png")) == (4 * PANEL, 2 * PANEL)
    with pytest.raises(ValueError, match="4 masks and 3 images"):
        pairs_grid(masks, x[:3], tmp_path / "r.png")


def test_amplified_difference_fills_the_range():
    x, _, adv = batch()
    diff = figures.amplified_difference(x, adv)
    assert diff.shape == x.shape and diff.min() >= 0 and diff.max() <= 1
    assert diff.flatten(1).sub(0.5).abs().amax(1).min() == pytest.approx(0.5)
    fixed = figures.amplified_difference(x, adv, gain=1.0)
    assert torch.allclose(fixed, 0.5 + (adv - x), atol=1e-6)


def test_no_other_module_draws_an_image_grid():
    # one home: the grids that lived in reporting/plots.py and gan/figures.py are gone
    from advaug.reporting import plots

    assert not hasattr(plots, "sample_grid")
    with pytest.raises(ModuleNotFoundError):
        __import__("advaug.gan.figures")
