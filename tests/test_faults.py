"""Faults: a diverging loss stops the run cleanly, a killed run resumes exactly, results are
never overwritten."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY, compose_config, subprocess_env
from omegaconf import OmegaConf

from advaug.errors import ConfigError
from advaug.run.entry import run_entry
from advaug.run.resume import latest_last_checkpoint, resolve_ckpt_path
from advaug.training import train

FAST = ["robustness.enabled=false"]


@pytest.mark.parametrize("defer", [False, True], ids=["at-once", "one-step-late"])
def test_nan_loss_stops_with_one_message_and_keeps_last_good_checkpoint(
    tmp_path, tiny_overrides, capsys, defer
):
    # defer=True is the GPU path (the loss is read later, without waiting), forced here on the CPU
    cfg = compose_config(
        [
            *tiny_overrides,
            *FAST,
            f"model.defer_finite_check={defer}",
            "trainer.max_epochs=3",
            "+callbacks.nan._target_=fault_callbacks.NanLoss",
            "+callbacks.nan.at_epoch=1",
        ],
        tmp_path,
    )
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        run_entry(train, cfg, output_dir=out)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: loss became nan at epoch 1, step 2 (batch 0)")
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error_type"] == "TrainingDivergedError"
    assert "epoch 1, step 2" in record["error"]
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 2  # the end of the last good epoch
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_deferred_nan_check_catches_the_last_batch_before_the_epoch_end_checkpoint(
    tmp_path, tiny_overrides, capsys
):
    # NaN only in the last batch of epoch 1: the one-step-late check must still fire before any
    # epoch-end hook (the adversarial pool, last.ckpt) works with the diverged weights
    ends = tmp_path / "epoch_ends.txt"
    cfg = compose_config(
        [
            *tiny_overrides,
            *FAST,
            "model.defer_finite_check=true",
            "+callbacks.nan._target_=fault_callbacks.NanLoss",
            "+callbacks.nan.at_epoch=1",
            "+callbacks.nan.only_batch=1",
            "+callbacks.ends._target_=fault_callbacks.EpochEnds",
            f"+callbacks.ends.path={ends}",
        ],
        tmp_path,
    )
    out = tmp_path / "run"
    with pytest.raises(SystemExit):
        run_entry(train, cfg, output_dir=out)
    assert "loss became nan at epoch 1, step 3 (batch 1)" in capsys.readouterr().err
    assert ends.read_text().split() == ["0"]  # epoch 1's end hooks never ran
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 0 and last["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


def test_error_after_a_sigterm_is_recorded_interrupted_and_resumes(tmp_path, tiny_overrides):
    # under DDP the SIGTERM handler kills the other ranks, so rank 0's next collective raises a
    # backend error: the run was stopped, not broken, and must resume instead of restarting
    overrides = [*tiny_overrides, *FAST, "trainer.max_epochs=2"]
    cfg = compose_config(
        [*overrides, "+callbacks.term._target_=fault_callbacks.SigtermThenCollectiveError"], tmp_path
    )
    out = tmp_path / "run"
    cfg.paths.output_dir = str(out)
    with pytest.raises(SystemExit) as exit_info:
        run_entry(train, cfg, output_dir=out)
    assert exit_info.value.code is None  # exit status 0, as Lightning's own SIGTERM stop
    record = json.loads((out / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["error_type"] == "SIGTERMException"
    assert record["cause"].startswith("RuntimeError: ") and "Connection reset" in record["cause"]
    # the split it trained on is recorded already, before the run is resumed
    assert set(json.loads((out / "splits.json").read_text())) == {"train", "val", "test"}
    # the same command again continues from the end of epoch 0
    again = compose_config(overrides, tmp_path)
    again.paths.output_dir = str(out)
    assert resolve_ckpt_path(again) == str(out / "checkpoints" / "last.ckpt")


def test_resume_refuses_a_changed_split_until_the_recorded_one_is_restored(tmp_path, tiny_overrides, capsys):
    overrides = [*tiny_overrides, *FAST, "trainer.max_epochs=2", "test=false"]
    first = tmp_path / "first"
    cfg = compose_config(
        [*overrides, "+callbacks.term._target_=fault_callbacks.SigtermThenCollectiveError"], tmp_path
    )
    cfg.paths.output_dir = str(first)
    with pytest.raises(SystemExit):
        run_entry(train, cfg, output_dir=first)
    recorded = json.loads((first / "splits.json").read_text())
    # another split seed stands for files added to the folder: the seeded split is reshuffled
    moved = compose_config([*overrides, "dataset.split_seed=7", f"resume_dir={first}"], tmp_path)
    moved.paths.output_dir = str(tmp_path / "second")
    with pytest.raises(SystemExit) as exit_info:
        run_entry(train, moved, output_dir=tmp_path / "second")
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    root = tmp_path / "data" / "synthetic"
    assert "split is no longer the one that run started with" in err and f"{root}/splits.json" in err
    assert not (tmp_path / "second" / "checkpoints").exists()  # nothing trained on the wrong split
    # with the recorded split put in place, the same resume goes on and keeps that split
    (root / "splits.json").write_text(json.dumps(recorded))
    moved.paths.output_dir = str(tmp_path / "third")
    metrics = run_entry(train, moved, output_dir=tmp_path / "third")
    assert metrics["status"] == "completed" and metrics["epochs"] == 2
    assert json.loads((tmp_path / "third" / "splits.json").read_text()) == recorded


def test_split_check_compares_ids_not_their_order(tmp_path):
    from types import SimpleNamespace

    from advaug.callbacks.splits_record import check_same_split
    from advaug.errors import DatasetError

    record, dm, ckpt = (
        tmp_path / "splits.json",
        SimpleNamespace(root=tmp_path / "data"),
        tmp_path / "last.ckpt",
    )
    ids = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}
    record.write_text(json.dumps({"train": ["b", "a"], "val": ["c"], "test": ["d"]}))
    check_same_split(ids, record, dm, ckpt)  # same ids in another order: the same split
    record.write_text(json.dumps({"train": ["a", "d"], "val": ["c"], "test": ["b"]}))
    with pytest.raises(
        DatasetError, match=r"the test/train split is no longer .* Copy .*splits.json to .*data/splits.json"
    ):
        check_same_split(ids, record, dm, ckpt)
    record.write_text("{not json")
    check_same_split(ids, record, dm, ckpt)  # unreadable: nothing to compare with, no error
    record.write_text(json.dumps([["a", "b"]]))
    check_same_split(ids, record, dm, ckpt)  # not a split record: nothing to compare with, no error
    # a split the record lacks counts as changed when this run has ids in it
    record.write_text(json.dumps({"train": ["a", "b"], "test": ["d"]}))
    with pytest.raises(DatasetError, match=r"the val split is no longer"):
        check_same_split(ids, record, dm, ckpt)


def test_split_record_is_written_at_fit_by_rank_zero_and_checked_beside_the_checkpoint(tmp_path):
    from types import SimpleNamespace

    from advaug.callbacks.splits_record import SplitsRecord
    from advaug.errors import DatasetError

    ids = {"train": ["a", "b"], "val": ["c"], "test": ["d"]}
    dm = SimpleNamespace(ids=ids, root=tmp_path / "data")
    out = tmp_path / "run" / "splits.json"
    SplitsRecord(out).setup(SimpleNamespace(datamodule=dm, is_global_zero=True), None, "test")
    assert not out.exists()  # written when fit starts only
    SplitsRecord(out).setup(SimpleNamespace(datamodule=object(), is_global_zero=True), None, "fit")
    assert not out.exists()  # a DataModule without ids: nothing to record
    SplitsRecord(out).setup(SimpleNamespace(datamodule=dm, is_global_zero=False), None, "fit")
    assert not out.exists()  # one writer under DDP
    SplitsRecord(out).setup(SimpleNamespace(datamodule=dm, is_global_zero=True), None, "fit")
    assert json.loads(out.read_text()) == ids
    # a checkpoint kept in a folder of its own, with its run's splits.json beside it
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "splits.json").write_text(json.dumps({"train": ["a", "d"], "val": ["c"], "test": ["b"]}))
    resumed = SplitsRecord(tmp_path / "again" / "splits.json", resume_from=kept / "last.ckpt")
    with pytest.raises(DatasetError, match=r"the test/train split is no longer"):
        resumed.setup(SimpleNamespace(datamodule=dm, is_global_zero=True), None, "fit")
    assert not (tmp_path / "again" / "splits.json").exists()


def test_an_ordinary_error_stays_failed(tmp_path):
    from types import SimpleNamespace

    from advaug.run.signals import sigterm_as_interrupt, stopped_by_sigterm

    calm, termed = SimpleNamespace(received_sigterm=False), SimpleNamespace(received_sigterm=True)
    with pytest.raises(RuntimeError, match="boom"), sigterm_as_interrupt(calm):
        raise RuntimeError("boom")
    assert stopped_by_sigterm(termed, RuntimeError("boom"))

    def _sigterm_notifier_fn():  # Lightning's handler, whose own broadcast raised before it set the flag
        raise RuntimeError("Connection reset by peer")

    try:
        try:
            _sigterm_notifier_fn()
        except RuntimeError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert stopped_by_sigterm(calm, outer)  # found through the cause chain
    assert not stopped_by_sigterm(calm, ValueError("x"))


def test_sigterm_is_found_through_implicit_and_explicit_chains_and_any_error_type():
    from types import SimpleNamespace

    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from advaug.run.signals import sigterm_as_interrupt, stopped_by_sigterm

    calm, termed = SimpleNamespace(received_sigterm=False), SimpleNamespace(received_sigterm=True)

    def _sigterm_notifier_fn():
        raise RuntimeError("Connection reset by peer")

    try:
        _sigterm_notifier_fn()
    except RuntimeError as inner:
        notified = inner
    try:
        try:
            _sigterm_notifier_fn()
        except RuntimeError:
            raise ValueError("raised while handling it")  # noqa: B904 (implicit __context__ only)
    except ValueError as outer:
        assert outer.__cause__ is None and stopped_by_sigterm(calm, outer)
    explicit = ValueError("chained outside a handler")
    explicit.__cause__ = notified  # __cause__ only, no __context__
    assert explicit.__context__ is None and stopped_by_sigterm(calm, explicit)
    # a cycle in the chain ends the search
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not stopped_by_sigterm(calm, a)
    # any error type after a SIGTERM is the stop, not a fault of the run
    with pytest.raises(SIGTERMException) as info, sigterm_as_interrupt(termed):
        raise KeyError("store")
    assert isinstance(info.value.__cause__, KeyError)


def test_failure_record_never_replaces_a_completed_run(tmp_path):
    from advaug.run.folder import record_failure

    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed", "test": {"test/miou": 0.5}}))
    assert record_failure(tmp_path, RuntimeError("boom")) is None
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "completed"


def _cfg(tmp_path, out, **keys):
    cfg = compose_config([f"{k}={v}" for k, v in keys.items()], tmp_path)
    cfg.paths.output_dir = str(out)
    return cfg


def _fake_run(run_dir, mtime, status=None):
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"x")
    os.utime(ckpt, (mtime, mtime))
    if status:
        (run_dir / "metrics.json").write_text(json.dumps({"status": status}))
    return ckpt


def test_resume_resolution(tmp_path):
    runs = tmp_path / "logs" / "train" / "runs"
    older = _fake_run(runs / "2024-01-01_00-00-00", 1_000)
    newer = _fake_run(runs / "2024-01-02_00-00-00", 2_000)
    fresh = runs / "2024-01-03_00-00-00"
    assert resolve_ckpt_path(_cfg(tmp_path, fresh)) is None
    assert resolve_ckpt_path(_cfg(tmp_path, fresh, ckpt_path="last")) == str(newer)
    assert resolve_ckpt_path(_cfg(tmp_path, fresh, ckpt_path=older)) == str(older)
    assert resolve_ckpt_path(_cfg(tmp_path, fresh, resume_dir=older.parents[1])) == str(older)
    # rerunning in a fixed run folder that was killed (last.ckpt, no metrics.json) continues it
    assert resolve_ckpt_path(_cfg(tmp_path, newer.parents[1])) == str(newer)
    # ... so does one stopped by Ctrl-C or a SIGTERM pre-emption (metrics.json says interrupted)
    stopped = _fake_run(runs / "stopped", 2_500, status="interrupted")
    assert resolve_ckpt_path(_cfg(tmp_path, runs / "stopped")) == str(stopped)
    # ... but a failed run starts afresh, its checkpoints moved aside (kept, never reused), and a
    # completed one is never overwritten
    _fake_run(runs / "failed", 3_000, status="failed")
    assert resolve_ckpt_path(_cfg(tmp_path, runs / "failed")) is None
    assert not (runs / "failed" / "checkpoints").exists()
    assert (runs / "failed" / "checkpoints.failed" / "last.ckpt").read_bytes() == b"x"
    (runs / "failed" / "checkpoints").mkdir()  # the next failed attempt's files
    assert resolve_ckpt_path(_cfg(tmp_path, runs / "failed")) is None
    assert (runs / "failed" / "checkpoints.failed-2").is_dir()
    _fake_run(runs / "done", 4_000, status="completed")
    with pytest.raises(ConfigError, match="already holds a completed run"):
        resolve_ckpt_path(_cfg(tmp_path, runs / "done"))
    with pytest.raises(ConfigError, match="ckpt_path=.*nope.ckpt: no such file"):
        resolve_ckpt_path(_cfg(tmp_path, fresh, ckpt_path=tmp_path / "nope.ckpt"))
    with pytest.raises(ConfigError, match="resume_dir=.*does not exist"):
        resolve_ckpt_path(_cfg(tmp_path, fresh, resume_dir=tmp_path))
    with pytest.raises(ConfigError, match="ckpt_path=last: no checkpoints/last.ckpt"):
        resolve_ckpt_path(_cfg(tmp_path, tmp_path / "elsewhere" / "x", ckpt_path="last"))
    # a sweep job looks for the same job folder of earlier sweeps
    multi = tmp_path / "multiruns"
    job = _fake_run(multi / "t1" / "0_seed=1", 1_000)
    _fake_run(multi / "t1" / "1_seed=2", 5_000)
    assert latest_last_checkpoint(multi / "t2" / "0_seed=1", multirun=True) == job


def _completed_job(tmp_path, *overrides):
    """A sweep job's config (hydra.mode=MULTIRUN) and its folder holding a completed run of it."""
    cfg = compose_config([*TINY, "hydra.mode=MULTIRUN", *overrides], tmp_path)
    out = tmp_path / "run"
    out.mkdir(parents=True)
    run_cfg = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    (out / "config_resolved.yaml").write_text(OmegaConf.to_yaml(run_cfg, resolve=True))
    (out / "metrics.json").write_text(json.dumps({"status": "completed", "seed": cfg.seed}))
    return cfg, out


def _never(cfg):
    raise AssertionError("a completed sweep job was run again")


def test_completed_sweep_job_is_skipped_only_for_the_same_config(tmp_path):
    cfg, out = _completed_job(tmp_path / "a", "seed=0")
    # keys that do not change results may differ: the folder's run is still this job's
    same = compose_config(
        [
            *TINY,
            "hydra.mode=MULTIRUN",
            "seed=0",
            "trainer.enable_progress_bar=true",
            "tags=[x]",
            "callbacks.model_checkpoint.keep_last=false",
        ],
        tmp_path / "a",
    )
    same.paths.log_dir = str(tmp_path / "elsewhere")
    assert run_entry(_never, same, output_dir=out) == {"status": "completed", "seed": 0}
    other = compose_config([*TINY, "hydra.mode=MULTIRUN", "seed=2", "optim.optimizer.lr=0.5"], tmp_path / "a")
    kept = (out / "metrics.json").read_text()
    with pytest.raises(ConfigError) as exc:
        run_entry(_never, other, output_dir=out)
    message = str(exc.value)
    assert str(out) in message and "different configuration" in message and "hydra.sweep.dir" in message
    assert "seed: 0 then, 2 now" in message and "lr: 0.001 then, 0.5 now" in message
    assert (out / "metrics.json").read_text() == kept  # the earlier run's record is untouched
    (out / "config_resolved.yaml").write_text("seed: [\n")  # cut off: cannot vouch for the run
    with pytest.raises(ConfigError, match="not a readable run config"):
        run_entry(_never, same, output_dir=out)
    # no config_resolved.yaml to compare with: skipped as before
    (out / "config_resolved.yaml").unlink()
    assert run_entry(_never, other, output_dir=out)["seed"] == 0


def test_many_config_differences_are_listed_four_then_counted(tmp_path):
    from advaug.run.resume import check_same_run

    _, out = _completed_job(tmp_path / "a", "seed=0")
    changed = ["seed=1", "batch_size=8", "optim.optimizer.lr=0.5", "trainer.max_epochs=7", "aug=flip"]
    other = compose_config([*TINY, "hydra.mode=MULTIRUN", *changed], tmp_path / "a")
    with pytest.raises(ConfigError) as info:
        check_same_run(out, other)
    listed = str(info.value).split("(", 1)[1].split(")")[0]
    assert listed.count(" then, ") == 4
    more = int(str(info.value).split("(and ")[1].split(" more)")[0])
    assert more >= 1
    other4 = compose_config([*TINY, "hydra.mode=MULTIRUN", "seed=1"], tmp_path / "a")
    with pytest.raises(ConfigError) as info:
        check_same_run(out, other4, shown=1)
    assert "more)" not in str(info.value)  # exactly as many as shown: nothing left to count
    (out / "config_resolved.yaml").write_text("- seed\n- 0\n")  # YAML, but not a run config
    with pytest.raises(ConfigError, match="not a readable run config"):
        check_same_run(out, other4)


def _boom(cfg):
    raise RuntimeError("boom")


def test_unexpected_error_is_recorded_failed_and_a_sweep_goes_on(tmp_path, monkeypatch):
    import advaug.run.entry

    monkeypatch.setattr(advaug.run.entry, "in_multirun", lambda: False)
    with pytest.raises(RuntimeError, match="boom"):
        run_entry(_boom, None, output_dir=tmp_path)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and record["error_type"] == "RuntimeError"
    monkeypatch.setattr(advaug.run.entry, "in_multirun", lambda: True)
    (tmp_path / "metrics.json").unlink()
    assert run_entry(_boom, None, output_dir=tmp_path) is None  # recorded; the next job runs
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_only_rank_zero_records_and_only_a_sweep_skips_a_completed_folder(tmp_path, monkeypatch):
    import advaug.run.entry

    monkeypatch.setattr(advaug.run.entry, "in_multirun", lambda: False)
    monkeypatch.setattr(advaug.run.entry, "is_rank_zero", lambda: False)
    with pytest.raises(RuntimeError, match="boom"):
        run_entry(_boom, None, output_dir=tmp_path)
    assert not (tmp_path / "metrics.json").exists()  # one writer under DDP: rank 0
    monkeypatch.setattr(advaug.run.entry, "is_rank_zero", lambda: True)
    (tmp_path / "metrics.json").write_text(json.dumps({"status": "completed"}))
    # a single run is not skipped: train() itself refuses to overwrite (resolve_ckpt_path)
    with pytest.raises(RuntimeError, match="boom"):
        run_entry(_boom, None, output_dir=tmp_path)
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"status": "completed"}


def test_user_error_is_found_behind_an_implicit_context():
    from advaug.run.entry import user_error

    try:
        try:
            raise ConfigError("bad value")
        except ConfigError:
            raise RuntimeError("while handling it")  # noqa: B904 (no explicit cause)
    except RuntimeError as outer:
        found = user_error(outer)
    assert isinstance(found, ConfigError) and str(found) == "bad value"
    assert user_error(RuntimeError("x")) is None


def test_moved_sweep_folder_still_matches_its_run(tmp_path):
    from advaug.run.resume import check_same_run

    cfg, out = _completed_job(tmp_path / "a", "seed=0")
    moved = compose_config([*TINY, "hydra.mode=MULTIRUN", "seed=0"], tmp_path / "b")
    moved.paths.output_dir, moved.paths.data_dir = str(tmp_path / "b" / "run"), str(tmp_path / "d2")
    check_same_run(out, moved)  # checkpoint dirpath, dataset.root follow paths.*: no error


def test_an_option_added_later_left_null_still_matches_the_run(tmp_path):
    # a sweep completed with an older advaug, rerun after an upgrade that added a config key
    from advaug.run.resume import check_same_run

    cfg, out = _completed_job(tmp_path / "a", "seed=0")
    newer = compose_config(
        [*TINY, "hydra.mode=MULTIRUN", "seed=0", "+dataset.added_later=null"], tmp_path / "a"
    )
    check_same_run(out, newer)  # null: the new option's off setting, the old behaviour
    newer.dataset.added_later = [0, 4095]
    with pytest.raises(ConfigError, match=r"dataset.added_later: '<missing>' then, \[0, 4095\] now"):
        check_same_run(out, newer)


def test_ckpt_path_last_in_a_sweep_finds_only_the_same_configuration(tmp_path):
    # job folders are named after the overrides; long ones end in a hash of all of them, so an
    # earlier sweep's job of another seed is not taken for this one's
    from advaug.utils.config import safe_dirname

    common = "batch_size=4," + ",".join(f"dataset.k{i}=v{i}" for i in range(20))
    names = {seed: "0_" + safe_dirname(f"{common},seed={seed}") for seed in (0, 1)}
    multi = tmp_path / "multiruns"
    seed0 = _fake_run(multi / "t1" / names[0], 1_000)
    _fake_run(multi / "t1" / names[1], 2_000)
    assert latest_last_checkpoint(multi / "t2" / names[0], multirun=True) == seed0


def comparable(metrics):
    """The results of a run without wall-clock timings and paths."""
    history = [
        {k: v for k, v in r.items() if not k.startswith("train/") or k == "train/loss"}
        for r in metrics["history"]
    ]
    return {
        "test": metrics["test"],
        "history": history,
        "epochs": metrics["epochs"],
        "best_val_miou": metrics["best_val_miou"],
    }


RESUME = [
    *TINY,
    *FAST,
    "trainer.max_epochs=3",
    "trainer.deterministic=true",
    "+callbacks.pool._target_=fault_callbacks.RandomPool",
]


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tmp_path, tiny_overrides):
    reference = train(compose_config([*tiny_overrides, *RESUME], tmp_path / "ref"))

    run = tmp_path / "run"
    marker = tmp_path / "paused"
    args = [
        sys.executable,
        str(ROOT / "src" / "train.py"),
        *RESUME,
        f"paths.data_dir={tmp_path / 'data'}",
        f"hydra.run.dir={run}",
        "+callbacks.pause._target_=fault_callbacks.PauseOnce",
        f"+callbacks.pause.marker={marker}",
        "+callbacks.pause.epoch=2",
        "+callbacks.pause.batch=1",
    ]
    env = subprocess_env(tmp_path, fault_callbacks=True)
    proc = subprocess.Popen(
        args, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else "no pause"
    os.kill(proc.pid, signal.SIGKILL)  # mid-epoch 3 (0-based 2), after its first batch
    proc.wait()
    proc.stderr.close()
    assert not (run / "metrics.json").exists()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1

    rerun = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "holds an unfinished run: resuming" in rerun.stdout + rerun.stderr
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["status"] == "completed"
    assert [r["epoch"] for r in resumed["history"]] == [0, 1, 2, 3]
    assert comparable(resumed) == comparable(reference)
    print("reference", reference["test"], "\nresumed  ", resumed["test"])


def test_resume_guards_both_options_ranks_and_repeated_failures(tmp_path, monkeypatch):
    import advaug.run.resume as resume

    runs = tmp_path / "logs" / "train" / "runs"
    older = _fake_run(runs / "old", 1_000)
    with pytest.raises(ConfigError, match="ckpt_path=.* and resume_dir=.*: give one of them"):
        resolve_ckpt_path(_cfg(tmp_path, runs / "new", ckpt_path=older, resume_dir=older.parents[1]))
    # a failed run's folder: its checkpoints move aside on rank 0 only, a third time too
    failed = runs / "failed"
    _fake_run(failed, 2_000, status="failed")
    monkeypatch.setattr(resume, "is_rank_zero", lambda: False)
    assert resolve_ckpt_path(_cfg(tmp_path, failed)) is None
    assert (failed / "checkpoints" / "last.ckpt").is_file()  # other DDP ranks leave it to rank 0
    monkeypatch.setattr(resume, "is_rank_zero", lambda: True)
    for n, name in enumerate(["checkpoints.failed", "checkpoints.failed-2", "checkpoints.failed-3"]):
        (failed / "checkpoints").mkdir(exist_ok=True)
        (failed / "checkpoints" / "attempt").write_text(str(n))
        assert resolve_ckpt_path(_cfg(tmp_path, failed)) is None
        assert (failed / name / "attempt").read_text() == str(n)  # none overwritten
    # a failed run that wrote no checkpoints, and a killed one that wrote no last.ckpt: nothing to move
    (runs / "early").mkdir()
    (runs / "early" / "metrics.json").write_text(json.dumps({"status": "failed"}))
    assert resolve_ckpt_path(_cfg(tmp_path, runs / "early")) is None
    (runs / "killed" / "checkpoints").mkdir(parents=True)
    assert resolve_ckpt_path(_cfg(tmp_path, runs / "killed")) is None
    assert sorted(p.name for p in (runs / "killed").iterdir()) == ["checkpoints"]


def test_ckpt_path_last_inside_a_sweep_looks_in_earlier_sweeps(tmp_path, monkeypatch):
    import advaug.run.resume as resume

    multi = tmp_path / "multiruns"
    job = _fake_run(multi / "t1" / "0_seed=1", 1_000)
    _fake_run(multi / "t2" / "1_seed=2", 2_000)  # a newer run of another job of this sweep
    monkeypatch.setattr(resume, "in_multirun", lambda: True)
    assert resolve_ckpt_path(_cfg(tmp_path, multi / "t2" / "0_seed=1", ckpt_path="last")) == str(job)


@pytest.mark.parametrize("text", ["{broken", "[1, 2]"])
def test_unreadable_metrics_json_is_no_status(tmp_path, text):
    from advaug.run.folder import is_completed, read_status

    (tmp_path / "metrics.json").write_text(text)
    assert read_status(tmp_path) is None and not is_completed(tmp_path)
