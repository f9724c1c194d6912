"""DDP on 2 CPU processes (gloo): parity with one process, SIGTERM, adversarial pools gathered
from both ranks, evaluation shards."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import FIVE_STAGES, ROOT, compose_config, script_args, subprocess_env
from test_train import run_script

from advaug.errors import ConfigError
from advaug.training import train

# each of these runs two ranks: one xdist worker runs them in turn, so at most one DDP run
# shares the 2 cores with the other worker
pytestmark = pytest.mark.xdist_group("ddp")

# -- DDP ---------------------------------------------------------------------------------------


def test_ddp_inside_a_sweep_is_refused_before_it_forks(tmp_path, tiny_overrides):
    cfg = compose_config([*tiny_overrides, "trainer=ddp_cpu", "hydra.mode=MULTIRUN"], tmp_path)
    with pytest.raises(ConfigError, match="inside a Hydra sweep"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_ddp_configs_compose(tmp_path):
    gpu = compose_config(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"], tmp_path).trainer
    assert (gpu.accelerator, gpu.devices, gpu.num_nodes, gpu.precision) == ("gpu", 4, 2, "bf16-mixed")
    assert gpu.sync_batchnorm and gpu.use_distributed_sampler
    assert gpu.strategy._target_.endswith("DDPStrategy")
    cpu = compose_config(["trainer=ddp_cpu"], tmp_path).trainer
    assert (cpu.accelerator, cpu.devices, cpu.strategy.process_group_backend) == ("cpu", 2, "gloo")
    assert not cpu.sync_batchnorm  # torch's SyncBatchNorm refuses CPU modules


@pytest.mark.slow
def test_ddp_two_cpu_processes_match_one_process(tmp_path, phantom_root):
    # 8 train / 3 val / 5 test: uneven shards, so exactly-once evaluation is exercised.
    # One process with batch 8 vs two with batch 4 each: the same global batch per step.
    split = "dataset.split={train: 0.5, val: 0.1875, test: 0.3125}"
    common = ["dataset=folder", f"dataset.root={phantom_root}", split, "trainer.max_epochs=3", *FIVE_STAGES]
    results = {}
    for name, extra in {
        "one": ["trainer=cpu", "batch_size=8"],
        "ddp": ["trainer=ddp_cpu", "batch_size=4"],
    }.items():
        args = [*script_args(tmp_path / name), *common, *extra]
        proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        (run,) = list((tmp_path / name / "logs" / "train" / "runs").iterdir())  # children: same dir
        results[name] = (run, json.loads((run / "metrics.json").read_text()))

    run, ddp = results["ddp"]
    _, one = results["one"]
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1 ran in rank 0's run dir
    assert not (run / ".pl_hydra_rank_1").exists() and len(list(run.glob("**/config.yaml"))) == 1
    assert ddp["splits"] == one["splits"] == {"train": 8, "val": 3, "test": 5}
    # both processes together saw the whole train split each epoch
    assert [r["train/samples"] for r in ddp["history"][1:]] == [8, 8, 8]
    # epoch 0: same initial weights; metrics gathered over ranks with every val image counted once
    for key in ("val/loss", "val/miou", "val/iou_fg", "val/dice"):
        assert ddp["history"][0][key] == pytest.approx(one["history"][0][key], abs=1e-5), key
    # after training: BatchNorm statistics are per rank on CPU (4 vs 8 images), so close, not equal
    assert ddp["history"][-1]["train/loss"] == pytest.approx(one["history"][-1]["train/loss"], abs=0.05)
    for key in ("test/loss", "test/miou"):
        assert ddp["test"][key] == pytest.approx(one["test"][key], abs=0.1), key


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault,last_epoch",
    [("SigtermRank0BeforeZeroGrad", 0), ("SigtermRank0AtFitStart", None)],
    ids=["in_a_step", "before_training"],
)
def test_sigterm_to_a_ddp_run_stops_every_rank_and_records_interrupted(
    tmp_path, phantom_root, fault, last_epoch
):
    # Lightning's handler broadcast from inside the signal handler; with rank 0 signalled before
    # zero_grad and rank 1 in the backward's all-reduce, both processes hung until killed
    split = "dataset.split={train: 0.5, val: 0.25, test: 0.25}"
    run = tmp_path / "run"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", *FIVE_STAGES, "batch_size=2", "trainer.max_epochs=4", f"hydra.run.dir={run}"]
    args += [f"+callbacks.term._target_=fault_callbacks.{fault}"]
    args += ["+callbacks.term.batch=0"] if fault == "SigtermRank0BeforeZeroGrad" else []
    env = subprocess_env(tmp_path, fault_callbacks=True)
    cmd = [sys.executable, str(ROOT / "src" / "train.py"), *[a for a in args if "generator" not in a]]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        _, err = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # rank 1 too
        proc.communicate()
        pytest.fail("the DDP run hung after SIGTERM")
    assert proc.returncode == 0, err[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "interrupted" and metrics["error_type"] == "SIGTERMException", metrics
    if last_epoch is not None:  # resumable from the epoch it stopped in
        assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == last_epoch
    time.sleep(2)
    leftover = subprocess.run(["pgrep", "-f", f"hydra.run.dir={run}"], capture_output=True, text=True)
    assert leftover.stdout == "", "a DDP process outlived the run"


def test_ddp_eval_split_smaller_than_the_world_is_one_config_error(phantom_root):
    # Lightning's UnrepeatedDistributedSampler asserted (no message) on the rank left without a
    # sample; rank 0 then recorded "Connection closed by peer"
    from types import SimpleNamespace

    import torch

    from advaug.data import SegmentationDataModule

    dm = SegmentationDataModule(
        root=str(phantom_root),
        image_size=32,
        batch_size=4,
        split={"train": 0.75, "val": 0.0625, "test": 0.1875},
    )
    dm.setup("fit")
    assert (len(dm.ids["val"]), len(dm.ids["test"])) == (1, 3)
    for rank in (0, 1):  # every rank stops alike, before any sampler is made
        dm.trainer = SimpleNamespace(
            world_size=2, global_rank=rank, strategy=SimpleNamespace(root_device=torch.device("cpu"))
        )
        with pytest.raises(ConfigError) as exc:
            dm.val_dataloader()
        message = str(exc.value)
        assert "val split has 1 sample(s)" in message and "2 processes" in message
        assert "dataset.split" in message and "trainer.devices" in message
        assert len(list(dm.test_dataloader().sampler)) in (1, 2)  # 3 test samples: 2 + 1
    dm.trainer = SimpleNamespace(
        world_size=4, global_rank=3, strategy=SimpleNamespace(root_device=torch.device("cpu"))
    )
    with pytest.raises(ConfigError, match="test split has 3 sample.*4 processes"):
        dm.test_dataloader()


@pytest.mark.slow
def test_ddp_adversarial_pool_is_gathered_from_both_ranks(tmp_path, phantom_root):
    # Each of the 2 CPU ranks attacks its own shard of the 8 train images; after the gather every
    # rank draws from the same 8-image pool (logged by rank 0). Mixed batches (aug.batch_fraction)
    # sharded by the sampler itself: aug=none's samples per epoch, 1 adversarial row per batch of
    # 4. On a flip base with twin BatchNorms (affine): DDP needs a gradient for every parameter. At
    # 64 pixels: one adversarial row is normalised alone, which the 1x1 bottleneck of 32 cannot.
    split = "dataset.split={train: 0.5, val: 0.25, test: 0.25}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", *FIVE_STAGES, "batch_size=4", "trainer.max_epochs=2", "aug=fgsm"]
    args += ["base=flip", "model.aux_norm=affine", "dataset.image_size=64", "aug.batch_fraction=0.25"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert [r["train/samples"] for r in metrics["history"] if "train/samples" in r] == [8, 8]
    assert "num_samples=8" in (proc.stdout + proc.stderr)
    assert (run / "figures" / "adv_epoch000.png").is_file()


@pytest.mark.slow
def test_ddp_rank_with_no_attacked_sample_joins_the_loss_reduction(tmp_path, phantom_root):
    # 1 of 8 train images is attacked: one rank measures the loss change of one sample, the other
    # has none and must still join the reduction (it used to skip it: a hang, or gloo's
    # "collective mismatch" in free mode). Both modes in one run, as two producers that attack
    # one sample each (so, for each, one rank has none): regenerate (slot fgsm) and free.
    split = "dataset.split={train: 0.5, val: 0.25, test: 0.25}"
    free = "{_target_: advaug.callbacks.adversarial_augmentation, method: fgsm, mode: free, fraction: 0.125, "
    free += "eps: 0.1, source: free, figure_samples: 0}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", *FIVE_STAGES, "batch_size=4", "trainer.max_epochs=3", "aug=fgsm", "aug.fraction=0.125"]
    args += [f"+aug.callbacks.free={free}"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    changes = re.findall(r"num_samples=1 .*loss_change=(\S+)", proc.stdout + proc.stderr)
    # regenerated pools for epochs 0, 1, 2; free ones, collected in epochs 0 and 1, for 1 and 2
    assert len(changes) == 5 and all(c != "nan" for c in changes), changes


@pytest.mark.slow
def test_ddp_free_mode_pool_holds_each_sample_once(tmp_path, phantom_root):
    # 9 train images on 2 ranks: Lightning's DistributedSampler pads the shards with a repeat, and
    # that sample used to enter the pool twice (10 copies of 9 images)
    split = "dataset.split={train: 0.5625, val: 0.1875, test: 0.25}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", *FIVE_STAGES, "batch_size=5", "trainer.max_epochs=3", "aug=fgsm", "aug.mode=free"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = re.findall(r"adversarial pool for epoch \d+: num_samples=(\d+)", proc.stdout + proc.stderr)
    assert sizes == ["9", "9"]


def test_ddp_sigterm_handler_only_records_and_passes_the_signal_on(monkeypatch):
    from types import SimpleNamespace

    from advaug.run.signals import DdpSigterm

    killed = []
    launcher = SimpleNamespace(kill=killed.append)
    connector = SimpleNamespace(received_sigterm=False)
    trainer = SimpleNamespace(world_size=2, global_rank=0, _signal_connector=connector,
                              strategy=SimpleNamespace(launcher=launcher))  # fmt: skip
    original = signal.getsignal(signal.SIGTERM)
    try:
        DdpSigterm().on_train_start(trainer, None)
        handler = signal.getsignal(signal.SIGTERM)
        assert handler is not original
        handler(signal.SIGTERM, None)  # no collective here: only the flag and the other ranks
        assert connector.received_sigterm and killed == [signal.SIGTERM]
        handler(signal.SIGTERM, None)  # a second SIGTERM is not passed on again
        assert killed == [signal.SIGTERM]
        signal.signal(signal.SIGTERM, original)
        DdpSigterm().on_validation_start(SimpleNamespace(**{**vars(trainer), "world_size": 1}), None)
        assert signal.getsignal(signal.SIGTERM) is original  # one process: Lightning's handler stays
    finally:
        signal.signal(signal.SIGTERM, original)


def test_ddp_sigterm_guard_covers_setup_and_its_record_outlives_lightnings_reset():
    from types import SimpleNamespace

    from advaug.run.signals import DdpSigterm, stopped_by_sigterm

    killed = []
    connector = SimpleNamespace(received_sigterm=False)
    callback = DdpSigterm()
    trainer = SimpleNamespace(world_size=2, global_rank=0, _signal_connector=connector, callbacks=[callback],
                              strategy=SimpleNamespace(launcher=SimpleNamespace(kill=killed.append)))  # fmt: skip
    original = signal.getsignal(signal.SIGTERM)
    try:
        with callback.guard(trainer):
            signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)  # in setup / on_fit_start
            assert killed == [signal.SIGTERM] and callback.received_sigterm
            connector.received_sigterm = False  # Lightning registers its handler: flag cleared
            assert stopped_by_sigterm(trainer, RuntimeError("Connection reset by peer"))
            callback.on_train_start(trainer, None)
            assert connector.received_sigterm  # so the loop stops at its first batch
        assert signal.getsignal(signal.SIGTERM) is original  # restored after the guarded call
        single = SimpleNamespace(**{**vars(trainer), "world_size": 1})
        with DdpSigterm().guard(single):
            assert signal.getsignal(signal.SIGTERM) is original  # one process: nothing replaced
    finally:
        signal.signal(signal.SIGTERM, original)
