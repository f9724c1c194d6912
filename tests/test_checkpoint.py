"""RunCheckpoint: best files hold the weights only, last.ckpt everything a resume needs."""

import functools
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import segmentation_models_pytorch as smp
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from advaug.callbacks import RunCheckpoint
from advaug.data import SegmentationDataModule
from advaug.errors import ConfigError
from advaug.models import SegmentationModule


def _fit(root, tmp_path, lr=1e-3, max_epochs=2, frozen=False, **checkpoint_kw):
    torch.manual_seed(0)
    net = smp.create_model(
        "Unet", encoder_name="resnet18", encoder_weights=None, classes=2, decoder_channels=[32, 16, 16, 8, 8]
    )
    if frozen:  # no learning and fixed BatchNorm statistics: the same score every epoch
        lr = 0.0
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 0.0
    module = SegmentationModule(net, 2, optimizer=functools.partial(torch.optim.Adam, lr=lr))
    dm = SegmentationDataModule(root=str(root), image_size=32, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    dm.pool.put("extra", *dm.train_images())  # a pool, as the augmentation callbacks leave one
    ckpt = RunCheckpoint(
        dirpath=tmp_path / "ckpt",
        filename="best",
        monitor="val/miou",
        mode="max",
        save_last=True,
        save_on_train_epoch_end=True,
        **checkpoint_kw,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        callbacks=[ckpt],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    return ckpt, module, dm


def test_best_file_holds_weights_only_and_last_file_everything(phantom_root, tmp_path):
    ckpt, module, dm = _fit(phantom_root, tmp_path)
    best = torch.load(ckpt.best_model_path, weights_only=True)
    last = torch.load(ckpt.last_model_path, weights_only=True)
    assert ckpt.best_model_path.endswith("best.ckpt") and ckpt.last_model_path.endswith("last.ckpt")
    assert {"optimizer_states", "callbacks", "SegmentationDataModule"}.isdisjoint(best)
    assert {"optimizer_states", "callbacks", "SegmentationDataModule"} <= set(last)
    assert len(last["SegmentationDataModule"]["pool"]["slots"]["extra"]["images"]) == len(dm.pool) == dm.num_train()
    assert set(best["state_dict"]) == set(module.state_dict()) and "hyper_parameters" in best
    # the best file still loads into a fresh module, as test / evaluate.py load it
    fresh = SegmentationModule(
        smp.create_model(
            "Unet",
            encoder_name="resnet18",
            encoder_weights=None,
            classes=2,
            decoder_channels=[32, 16, 16, 8, 8],
        ),
        2,
        optimizer=functools.partial(torch.optim.Adam, lr=1e-3),
    )
    fresh.load_state_dict(best["state_dict"])
    assert ckpt.best_model_path != ckpt.last_model_path
    assert (tmp_path / "ckpt" / "best.ckpt").stat().st_size < (
        tmp_path / "ckpt" / "last.ckpt"
    ).stat().st_size / 2
    assert "images" in dm.state_dict()["pool"]["slots"]["extra"]  # leaving the pool out was only for that file


def test_best_weights_only_false_writes_full_best_files(phantom_root, tmp_path):
    ckpt, _, _ = _fit(phantom_root, tmp_path, best_weights_only=False)
    best = torch.load(ckpt.best_model_path, weights_only=True)
    assert {"optimizer_states", "callbacks", "SegmentationDataModule"} <= set(best)


def test_state_key_is_lightnings_so_old_checkpoints_resume():
    kw = dict(monitor="val/miou", mode="max")
    assert RunCheckpoint(**kw).state_key == ModelCheckpoint(**kw).state_key


def test_link_to_a_weights_only_best_file_is_refused():
    with pytest.raises(ConfigError, match="save_last=link"):
        RunCheckpoint(save_last="link", monitor="val/miou")
    RunCheckpoint(save_last="link", monitor="val/miou", best_weights_only=False)


def test_last_file_is_written_every_epoch_even_without_improvement(phantom_root, tmp_path):
    # the score never improves after epoch 0, so Lightning alone would leave last.ckpt at epoch 0
    # and a resumed run would redo every later epoch
    ckpt, _, dm = _fit(phantom_root, tmp_path, max_epochs=3, frozen=True)
    best = torch.load(ckpt.best_model_path, weights_only=True)
    last = torch.load(ckpt.last_model_path, weights_only=True)
    steps_per_epoch = -(-(dm.num_train() + len(dm.pool)) // 4)
    assert best["epoch"] == 0
    assert last["epoch"] == 2 and last["global_step"] == 3 * steps_per_epoch
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["best.ckpt", "last.ckpt"]


def test_save_weights_only_writes_every_file_weights_only(phantom_root, tmp_path):
    ckpt, _, _ = _fit(phantom_root, tmp_path, save_weights_only=True)
    for path in (ckpt.best_model_path, ckpt.last_model_path):
        assert "optimizer_states" not in torch.load(path, weights_only=True)
    assert ckpt.save_weights_only  # the user's setting survives the lean best-file writes


def test_last_file_is_written_once_per_epoch(phantom_root, tmp_path, monkeypatch):
    # last.ckpt is the largest file (optimizer state, pool): the epoch-end write must not repeat
    # Lightning's own one in the epochs whose score improved
    written = []
    save = RunCheckpoint._save_checkpoint

    def spy(self, trainer, filepath):
        written.append((trainer.current_epoch, Path(filepath).name))
        save(self, trainer, filepath)

    monkeypatch.setattr(RunCheckpoint, "_save_checkpoint", spy)
    _fit(phantom_root, tmp_path, max_epochs=3)
    assert [e for e, name in written if name == "last.ckpt"] == [0, 1, 2]
    assert written[0] == (0, "best.ckpt")


def test_run_completed_deletes_last_file_only_without_keep_last(tmp_path):
    removed = []

    def remove(path):
        removed.append(path)
        Path(path).unlink()

    trainer = SimpleNamespace(strategy=SimpleNamespace(remove_checkpoint=remove))
    last, best = tmp_path / "last.ckpt", tmp_path / "best.ckpt"
    for keep_last in (True, False):
        last.write_bytes(b"x")
        ckpt = RunCheckpoint(dirpath=tmp_path, monitor="val/miou", keep_last=keep_last)
        ckpt.last_model_path, ckpt.best_model_path = str(last), str(best)
        ckpt.run_completed(trainer)
        assert last.exists() == keep_last
        assert ckpt.last_model_path == ("" if not keep_last else str(last))
    # never the best file itself (last_model_path naming it), nor a last file never written
    best.write_bytes(b"x")
    ckpt = RunCheckpoint(dirpath=tmp_path, monitor="val/miou", keep_last=False)
    ckpt.last_model_path = ckpt.best_model_path = str(best)
    ckpt.run_completed(trainer)
    ckpt.last_model_path = ""
    ckpt.run_completed(trainer)
    assert best.exists() and removed == [str(last)]
