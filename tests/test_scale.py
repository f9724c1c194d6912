"""Scale and operations: DDP (2 CPU processes), parallel sweeps, W&B offline, the Dockerfile."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import wandb
from conftest import ROOT, TINY, compose_config, subprocess_env
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from packaging.requirements import Requirement
from packaging.version import Version
from test_train import run_script

from advaug.errors import ConfigError
from advaug.training import train

# subprocess runs: no robustness grid, one epoch, so that a job costs seconds
FAST = ["robustness.enabled=false", "trainer.max_epochs=1"]


def script_args(tmp_path: Path, data: Path | None = None) -> list[str]:
    return [
        f"paths.data_dir={data or tmp_path / 'data'}",
        f"paths.log_dir={tmp_path / 'logs'}",
        *TINY,
        *FAST,
    ]


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
    common = ["dataset=folder", f"dataset.root={phantom_root}", split, "trainer.max_epochs=3"]
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
    args += ["trainer=ddp_cpu", "batch_size=2", "trainer.max_epochs=4", f"hydra.run.dir={run}"]
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


# -- sweeps ------------------------------------------------------------------------------------


def test_sweep_over_aug_dataset_eps_seed_has_one_dir_per_job(tmp_path):
    sweep = ["aug=fgsm,invfgsm", "dataset=synthetic,folder", "aug.eps=0.05,0.1", "seed=0,1"]
    parsed = OverridesParser.create().parse_overrides(sweep)
    (jobs,) = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    assert len(jobs) == 16
    dirs = set()
    for num, job in enumerate(jobs):
        cfg = compose_config([*job, "dataset.root=/x", f"hydra.job.num={num}"], tmp_path)
        hydra = cfg.hydra
        path = Path(hydra.sweep.dir) / hydra.sweep.subdir
        assert path.name.startswith(f"{num}_")
        assert all(o in str(path) for o in job)  # every swept value is in the folder name
        dirs.add(path)
    assert len(dirs) == 16
    # no job folder lies inside another job's folder
    assert not any(a != b and b.is_relative_to(a) for a in dirs for b in dirs)


@pytest.mark.slow
def test_joblib_launcher_runs_two_jobs_in_parallel(tmp_path):
    # DataLoader workers inside joblib's (loky) worker processes: the training loaders and the
    # classic pool (aug.num_workers=2) both failed there with "'Process' object has no attribute 'env'"
    args = [
        "-m",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "aug=none,flip",
        "dataset.num_workers=1",
    ]
    proc = run_script([*args, *script_args(tmp_path)], cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1"]
    metrics = [json.loads((j / "metrics.json").read_text()) for j in jobs]
    assert [(m["aug"], m["status"]) for m in metrics] == [("none", "completed"), ("flip", "completed")]


def test_loader_workers_get_a_standard_start_method_inside_joblib(monkeypatch):
    import multiprocessing

    from advaug.data.workers import worker_context

    assert worker_context(2) is None  # an ordinary process: the DataLoader's own default
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "loky")
    assert worker_context(0) is None
    context = worker_context(2)
    assert context.get_start_method() == multiprocessing.get_all_start_methods()[0]
    # a standard start method set by the user (spawn for CUDA in workers, forkserver) is kept
    for method in ("fork", "spawn", "forkserver"):
        monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False, m=method: m)
        assert worker_context(2) is None


@pytest.mark.slow
def test_a_failing_sweep_job_does_not_stop_the_others(tmp_path, phantom_root):
    roots = f"dataset.root={tmp_path / 'missing'},{phantom_root}"
    args = [a for a in script_args(tmp_path) if "generator" not in a]
    proc = run_script(["-m", "dataset=folder", roots, *args], cwd=tmp_path, timeout=400)
    assert proc.returncode != 0  # the sweep reports the failure ...
    assert "does not exist" in proc.stderr
    (sweep,) = list((tmp_path / "logs" / "train" / "multiruns").iterdir())
    status = {
        p.name.split("_")[0]: json.loads((p / "metrics.json").read_text())["status"]
        for p in sweep.iterdir()
        if (p / "metrics.json").is_file()
    }
    assert status.get("0") != "completed" and status["1"] == "completed"  # ... after job 1 ran to the end


def test_slurm_launcher_example_composes():
    proc = run_script(["hydra/launcher=slurm_gpu", "--cfg", "hydra", "--package", "hydra.launcher"], ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    launcher = OmegaConf.create(proc.stdout)  # the plugin's schema with our values on top
    assert launcher._target_.endswith("submitit_launcher.SlurmLauncher")
    assert launcher.gpus_per_node == launcher.tasks_per_node == 1


# -- W&B ---------------------------------------------------------------------------------------


def test_wandb_names_follow_the_sweep(tmp_path):
    cfg = compose_config(
        ["logger=wandb", "aug=invfgsm", "aug.eps=0.05", "seed=3", "task_name=paper"], tmp_path
    )
    logger = cfg.logger.wandb
    assert (logger.name, logger.group, logger.offline) == ("invfgsm-synthetic-eps0.05-seed3", "paper", True)
    assert "csv" in cfg.logger  # W&B comes on top of the CSV log, not instead


def test_wandb_offline_run_has_config_history_and_figures(tmp_path, tiny_overrides, monkeypatch):
    secret = "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_API_KEY", secret)
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [
        *tiny_overrides,
        "logger=wandb",
        "trainer.max_epochs=1",
        "robustness.methods=[fgsm]",
        "robustness.eps=[0.01]",
        "robustness.max_batches=1",
    ]
    cfg = compose_config(overrides, tmp_path)
    metrics = train(cfg)
    wandb.teardown()  # waits for the wandb-core service to flush the event log (as at process exit)
    out = tmp_path / "run"
    assert (out / "figures" / "samples.png").is_file()
    (run_dir,) = list((out / "wandb").glob("offline-run-*"))
    # wandb >= 0.19 keeps config, history and summary in the run's event log (what `wandb sync`
    # uploads) rather than in files/*.yaml|json when offline: look for them there
    (events,) = list(run_dir.glob("run-*.wandb"))
    log = events.read_bytes()
    for expected in (
        "decoder_channels",
        "none-synthetic-eps0-seed1234",
        "val/miou",
        "test/miou",
        "best_val_miou",
    ):
        assert expected.encode() in log, expected
    assert list((run_dir / "files" / "media" / "images" / "figures").glob("samples_*.png"))
    assert metrics["test"]["test/miou"] >= 0
    assert (out / "csv" / "hparams.yaml").is_file()
    for path in out.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_wandb_run_stores_each_adversarial_figure_once(tmp_path, tiny_overrides, monkeypatch):
    # the callback logs adv_epochNNN.png at its step (adv/samples); the end of the run logged every
    # figures/*.png again under figures/, so the offline run held (and uploaded) each one twice
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    overrides = [*tiny_overrides, "logger=wandb", "aug=fgsm", "trainer.max_epochs=1", "test=false"]
    train(compose_config([*overrides, "robustness.enabled=false"], tmp_path))
    wandb.teardown()
    out = tmp_path / "run"
    drawn = sorted(p.name for p in (out / "figures").glob("adv_epoch*.png"))
    assert drawn == ["adv_epoch000.png"]
    (run_dir,) = list((out / "wandb").glob("offline-run-*"))
    media = run_dir / "files" / "media" / "images"
    assert len(list((media / "adv").glob("samples_*.png"))) == 1  # one per pool, at its step
    assert not list(media.glob("figures/adv_epoch*.png"))  # not a second copy at the end


def _wandb_logger(tmp_path, **kwargs):
    from advaug.loggers import WandbLogger

    return WandbLogger(project="advaug-test", save_dir=str(tmp_path), **kwargs)


def test_wandb_mode_disabled_is_honoured_and_writes_no_run(tmp_path, monkeypatch):
    # Lightning's offline=True (the config default) set WANDB_MODE=dryrun over the user's value
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = _wandb_logger(tmp_path, offline=True)
    logger.experiment.log({"x": 1.0})
    wandb.finish()
    assert os.environ["WANDB_MODE"] == "disabled"
    assert not list(tmp_path.rglob("offline-run-*")) and not list(tmp_path.rglob("run-*"))


def test_wandb_offline_from_the_config_leaves_wandb_mode_unset(tmp_path, monkeypatch):
    # WANDB_MODE unset: logger.wandb.offline decides, without leaking into the environment (a
    # later job of the same sweep process would take it for the user's WANDB_MODE)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = _wandb_logger(tmp_path, offline=True)
    logger.experiment.log({"x": 1.0})
    wandb.finish()
    assert "WANDB_MODE" not in os.environ
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 1


@pytest.mark.parametrize("env_mode", [None, "offline"])
def test_wandb_log_model_offline_is_one_config_error(tmp_path, monkeypatch, env_mode):
    from hydra.utils import instantiate

    from advaug.run.entry import user_error

    if env_mode:
        monkeypatch.setenv("WANDB_MODE", env_mode)
    else:
        monkeypatch.delenv("WANDB_MODE", raising=False)
    cfg = compose_config(["logger=wandb", "logger.wandb.log_model=true"], tmp_path)
    with pytest.raises(Exception) as exc:
        instantiate(cfg.logger.wandb)
    found = user_error(exc.value)  # what src/train.py prints as its one line
    assert isinstance(found, ConfigError), exc.value
    setting = f"WANDB_MODE={env_mode}" if env_mode else "logger.wandb.offline=true"
    assert "logger.wandb.log_model=True" in str(found) and setting in str(found)
    assert "WANDB_OFFLINE=false" in str(found) and "WANDB_MODE=online" in str(found)
    assert not (tmp_path / "run" / "wandb").exists()


# -- Docker ------------------------------------------------------------------------------------


def _dockerfile() -> str:
    # join continuation lines so each instruction is one line
    return re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())


def test_dockerfile_installs_the_project_not_a_separate_list():
    text = _dockerfile()
    installs = [line for line in text.splitlines() if "pip install" in line]
    assert installs, "the Dockerfile must pip install the project"
    for line in installs:
        args = line.split("pip install", 1)[1].split("&&")[0].split()
        packages = [a for a in args if not a.startswith("-")]
        assert packages == ["."] or packages == [".[cluster]"], f"hand-written requirements in: {line}"
    assert "COPY pyproject.toml" in text
    assert re.search(r'ENTRYPOINT \["python", "src/train.py"\]', text)
    volumes = re.search(r"VOLUME (\[.*\])", text)
    assert volumes and set(json.loads(volumes.group(1))) >= {
        "/workspace/advaug/logs",
        "/workspace/advaug/data",
    }


def test_dockerfile_base_image_torch_satisfies_pyproject():
    base = re.search(
        r"^FROM pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", _dockerfile(), re.M
    )
    assert base, "base image must be an official pytorch/pytorch CUDA runtime tag"
    # (tomllib is 3.11+; the project supports 3.10): the one "torch..." requirement string
    (spec,) = re.findall(r'"(torch\s*[<>=!~][^"]*)"', (ROOT / "pyproject.toml").read_text())
    torch = Requirement(spec)
    assert Version(base.group(1)) in torch.specifier, (base.group(1), str(torch.specifier))


def test_dockerignore_keeps_sources():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert not {"src", "conf", "src/advaug", "**/data"} & set(ignored)


@pytest.mark.slow
def test_ddp_adversarial_pool_is_gathered_from_both_ranks(tmp_path, phantom_root):
    # Each of the 2 CPU ranks attacks its own shard of the 8 train images; after the gather every
    # rank trains on the same 8-image pool, so each epoch sees 8 clean + 8 adversarial samples.
    split = "dataset.split={train: 0.5, val: 0.25, test: 0.25}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", "batch_size=4", "trainer.max_epochs=2", "aug=fgsm"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert [r["train/samples"] for r in metrics["history"] if "train/samples" in r] == [16, 16]
    assert "num_samples=8" in (proc.stdout + proc.stderr)
    assert (run / "figures" / "adv_epoch000.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["regenerate", "free"])
def test_ddp_rank_with_no_attacked_sample_joins_the_loss_reduction(tmp_path, phantom_root, mode):
    # 1 of 8 train images is attacked: one rank measures the loss change of one sample, the other
    # has none and must still join the reduction (it used to skip it: a hang, or gloo's
    # "collective mismatch" in free mode)
    split = "dataset.split={train: 0.5, val: 0.25, test: 0.25}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", "batch_size=4", "trainer.max_epochs=3", "aug=fgsm", "aug.fraction=0.125"]
    args += [f"aug.mode={mode}"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert json.loads((run / "metrics.json").read_text())["status"] == "completed"
    changes = re.findall(r"num_samples=1 .*loss_change=(\S+)", proc.stdout + proc.stderr)
    assert changes and all(c != "nan" for c in changes)


@pytest.mark.slow
def test_ddp_free_mode_pool_holds_each_sample_once(tmp_path, phantom_root):
    # 9 train images on 2 ranks: Lightning's DistributedSampler pads the shards with a repeat, and
    # that sample used to enter the pool twice (10 copies of 9 images)
    split = "dataset.split={train: 0.5625, val: 0.1875, test: 0.25}"
    args = [*script_args(tmp_path), "dataset=folder", f"dataset.root={phantom_root}", split]
    args += ["trainer=ddp_cpu", "batch_size=5", "trainer.max_epochs=3", "aug=fgsm", "aug.mode=free"]
    proc = run_script([a for a in args if "generator" not in a], cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sizes = re.findall(r"adversarial pool for epoch \d+: num_samples=(\d+)", proc.stdout + proc.stderr)
    assert sizes == ["9", "9"]


def test_csv_metrics_survive_a_resume_in_the_same_folder(tmp_path):
    # Lightning's writer deletes metrics.csv when its folder is not empty: a run resumed in place
    # lost every row logged before the interruption
    from advaug.loggers import CSVLogger

    first = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    first.log_metrics({"val/miou": 0.5}, step=0)
    first.log_metrics({"train/loss_step": 0.9}, step=4)
    first.save()
    again = CSVLogger(save_dir=str(tmp_path), name="csv", version="")
    again.log_metrics({"train/loss_step": 0.8}, step=9)
    again.log_metrics({"val/dice": 0.3}, step=9)  # a key the file has no column for yet
    again.save()
    with open(tmp_path / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["0", "4", "9", "9"]
    assert (
        rows[0]["val/miou"] == "0.5" and rows[2]["train/loss_step"] == "0.8" and rows[3]["val/dice"] == "0.3"
    )


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
