"""callbacks/advchain_pool.py and the aug=advchain configs: the pool (size, masks moved with the
images, adversarial slot, log, figure), the consistency term in a real fit, composition with
base= and model.aux_norm, the entry script, and bad values refused before anything is written."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import compose_config, run_entry_script, script_args, slot
from hydra.utils import instantiate

from advaug.callbacks import AdvChainPool
from advaug.errors import ConfigError
from advaug.run.entry import user_error
from advaug.training import build, train

FAST = ["trainer.max_epochs=1", "robustness.enabled=false"]


@pytest.mark.parametrize(
    "choice, transforms, pool, weight",
    [
        ("advchain", ("noise", "bias", "elastic", "affine"), True, 0.0),
        ("advchain_photometric", ("noise", "bias"), True, 0.0),
        ("advchain_geometric", ("elastic", "affine"), True, 0.0),
        ("advchain_consistency", ("noise", "bias", "elastic", "affine"), False, 1.0),
    ],
)
def test_the_configs_compose(tmp_path, choice, transforms, pool, weight):
    cfg = compose_config([f"aug={choice}", "seed=5", "base=flip"], tmp_path)
    assert cfg.aug.name == choice and cfg.base.name == "flip"
    model = instantiate(cfg.model)
    callbacks = [instantiate(c) for c in cfg.aug.callbacks.values() if c is not None]
    if pool:
        (cb,) = callbacks
        assert isinstance(cb, AdvChainPool) and cb.budgets.transforms == transforms and cb.seed == 5
        assert cb.source == choice and model.consistency is None
    else:
        assert callbacks == [] and model.consistency.weight == weight
        assert model.consistency.budgets.transforms == transforms


def test_overrides_reach_the_budgets_and_objective(tmp_path):
    cfg = compose_config(
        ["aug=advchain", "aug.affine.rotate=10", "aug.noise.norm=linf", "aug.n_iter=3", "aug.divergence=mse"], tmp_path
    )
    cb = instantiate(cfg.aug.callbacks.advchain)
    assert (cb.budgets.rotate, cb.budgets.noise_norm, cb.objective.n_iter, cb.objective.divergence) == (
        10.0, "linf", 3, "mse",
    )  # fmt: skip


def test_a_fit_fills_an_adversarial_slot_with_moved_masks_and_writes_the_grid(tmp_path, tiny_overrides):
    cfg = compose_config([*tiny_overrides, *FAST, "aug=advchain", "aug.fraction=0.5", "base=flip", "aug.every_n_epochs=0"], tmp_path)
    dm, model, trainer = build(cfg)  # every_n_epochs=0: one pool, kept after the last epoch
    trainer.fit(model, datamodule=dm)
    pool = slot(dm, "advchain")
    assert pool["images"].shape == (4, 3, 32, 32) and pool["masks"].shape == (4, 32, 32)
    assert pool["images"].min() >= 0 and pool["images"].max() <= 1
    assert dm.pool.adversarial_codes == [dm.pool.source_code("advchain")]
    (cb,) = [c for c in trainer.callbacks if isinstance(c, AdvChainPool)]
    (record,) = cb.history
    assert record["adv/num_samples"] == 4 and record["adv/divergence_end"] > 0
    assert (tmp_path / "run" / "figures" / "adv_epoch000.png").stat().st_size > 0
    # the masks moved with the images: the pool's masks are not the chosen clean masks
    clean_masks = dm.training_pairs(0)[1]
    assert not any(torch.equal(pool["masks"][i], m.long()) for i in range(4) for m in clean_masks)
    # seeded starts: the same weights remake the same pool (what lets a checkpoint leave it out)
    assert cb.rebuildable
    again = [cb.make_pool(trainer, model, 0) for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(again[0], again[1], strict=True))
    assert not torch.equal(cb.make_pool(trainer, model, 1)[0], again[0][0])


def test_the_consistency_term_runs_in_a_real_fit_with_twin_norms(tmp_path, tiny_overrides):
    cfg = compose_config(
        [*tiny_overrides, *FAST, "aug=advchain_consistency", "aug.consistency_weight=0.5",
         "model.aux_norm=affine", "trainer.log_every_n_steps=1"],
        tmp_path,
    )  # fmt: skip
    metrics = train(cfg)
    assert metrics["status"] == "completed"
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    terms = [float(r["train/consistency_step"]) for r in rows if r.get("train/consistency_step")]
    assert len(terms) == 2 and all(t > 0 for t in terms)  # 8 clean images / batch 4


@pytest.mark.parametrize(
    "override, key",
    [
        ("aug.noise.budget=-0.5", "aug.noise.budget"),
        ("aug.elastic.budget=-1", "aug.elastic.budget"),
        ("aug.divergence=wasserstein", "aug.divergence"),
        ("aug.transforms=[noise,blur]", "aug.transforms"),
        ("aug.consistency_weight=-1", "aug.consistency_weight"),
        ("aug.fraction=0", "aug.fraction"),
    ],
)
def test_bad_values_are_one_config_error_and_nothing_is_written(tmp_path, tiny_overrides, override, key):
    cfg = compose_config([*tiny_overrides, *FAST, "aug=advchain", override], tmp_path)
    with pytest.raises(Exception) as raised:  # Hydra wraps a constructor's error; the entry unwraps it
        train(cfg)
    error = user_error(raised.value)
    assert isinstance(error, ConfigError) and str(error).startswith(key) and "\n" not in str(error)
    assert not (tmp_path / "run").exists()


def test_the_entry_script_trains_aug_advchain(tmp_path):
    proc = run_entry_script("train.py", ["aug=advchain", *script_args(tmp_path)], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert json.loads((run / "metrics.json").read_text())["aug"] == "advchain"
    assert (run / "figures" / "adv_epoch000.png").is_file()
    bad = run_entry_script("train.py", ["aug=advchain", "aug.divergence=l1", *script_args(tmp_path)], cwd=tmp_path)
    assert bad.returncode == 2 and "aug.divergence='l1'" in bad.stderr and "Traceback" not in bad.stderr
