"""Multirun: a failing job is recorded in <sweep dir>/summary.json while the others complete;
rerunning into the same sweep folder skips completed jobs instead of overwriting them."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, subprocess_env
from omegaconf import OmegaConf

from advaug.reporting.collect import collect
from advaug.run.sweep import SweepSummary, summarize_sweep


def _sweep_command(tmp_path, sweep):
    """``python src/train.py -m`` on tiny data into ``sweep``, without the robustness grid."""
    return [sys.executable, str(ROOT / "src" / "train.py"), "-m", *TINY, "robustness.enabled=false",
            f"paths.data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={sweep}"]  # fmt: skip


def _job(sweep, name, record=None, overrides=()):
    (sweep / name / ".hydra").mkdir(parents=True)
    (sweep / name / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if record is not None:
        (sweep / name / "metrics.json").write_text(json.dumps(record))


def test_summary_lists_ok_failed_and_incomplete_jobs(tmp_path):
    _job(tmp_path, "0_seed=0", {"status": "completed", "test": {"test/miou": 0.7}}, ["seed=0"])
    _job(tmp_path, "1_seed=1", {"status": "failed", "error": "loss became nan at epoch 1"}, ["seed=1"])
    _job(tmp_path, "2_seed=2", None, ["seed=2"])
    (tmp_path / "not_a_job").mkdir()
    summary = summarize_sweep(tmp_path)
    assert summary["counts"] == {"ok": 1, "failed": 1, "incomplete": 1}
    ok, failed, incomplete = summary["jobs"]
    assert ok == {"job": "0_seed=0", "overrides": ["seed=0"], "status": "ok", "test": {"test/miou": 0.7}}
    assert failed["status"] == "failed" and failed["error"] == "loss became nan at epoch 1"
    assert incomplete["status"] == "incomplete"


def test_summary_agrees_with_the_report_without_hydra_folders(tmp_path, capsys):
    # hydra.output_subdir=null: no .hydra/ in any job folder; one metrics.json cut off mid-write
    for name, text in [("0_seed=0", json.dumps({"status": "completed", "test": {}})),
                       ("1_seed=1", json.dumps({"status": "failed", "error": "loss became nan"})),
                       ("2_seed=2", '{"status": "compl')]:  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(text)
    summary = summarize_sweep(tmp_path)
    assert summary["counts"] == {"ok": 1, "failed": 2}
    assert [j["job"] for j in summary["jobs"]] == ["0_seed=0", "1_seed=1", "2_seed=2"]
    assert summary["jobs"][1]["error"] == "loss became nan"
    assert "metrics.json unreadable" in summary["jobs"][2]["error"]
    assert sorted(j.status for j in collect([tmp_path])) == ["completed", "failed", "failed"]
    with pytest.raises(SystemExit) as exc:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exc.value.code == 1 and "2 of 3 sweep jobs did not complete" in capsys.readouterr().err
    assert json.loads((tmp_path / "summary.json").read_text())["counts"] == {"ok": 1, "failed": 2}


def test_summary_marks_completed_jobs_older_than_the_sweep_as_skipped(tmp_path):
    _job(tmp_path, "0_seed=0", {"status": "completed", "test": {}}, ["seed=0"])
    _job(tmp_path, "1_seed=1", {"status": "completed", "test": {}}, ["seed=1"])
    _job(tmp_path, "2_seed=2", {"status": "failed", "error": "x"}, ["seed=2"])
    for name, mtime in [("0_seed=0", 1000.0), ("1_seed=1", 3000.0), ("2_seed=2", 1000.0)]:
        os.utime(tmp_path / name / "metrics.json", (mtime, mtime))
    summary = summarize_sweep(tmp_path, started_at=2000.0)
    assert summary["counts"] == {"ok": 2, "skipped": 1, "failed": 1}
    assert [j.get("skipped", False) for j in summary["jobs"]] == [True, False, False]
    assert "skipped" not in summarize_sweep(tmp_path)["counts"]  # no start time: nothing judged skipped

    callback = SweepSummary()
    callback.on_multirun_start(OmegaConf.create({}))
    with pytest.raises(SystemExit):  # the failed job
        callback.on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    written = json.loads((tmp_path / "summary.json").read_text())
    assert [j.get("skipped", False) for j in written["jobs"]] == [True, True, False]


@pytest.mark.slow
def test_sweep_with_failing_jobs_keeps_the_others_and_reruns_without_overwriting(tmp_path):
    sweep = tmp_path / "sweep"
    args = [
        *_sweep_command(tmp_path, sweep),
        "+callbacks.nan._target_=fault_callbacks.NanLoss",
        "trainer.max_epochs=1,-1",
        "+callbacks.nan.at_epoch=0,9",
    ]
    env = subprocess_env(tmp_path, fault_callbacks=True)
    proc = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "3 of 4 sweep jobs did not complete" in proc.stderr and "Traceback" not in proc.stderr
    summary = json.loads((sweep / "summary.json").read_text())
    swept = ("trainer.max_epochs=", "+callbacks.nan.at_epoch=")
    by_overrides = {tuple(o for o in j["overrides"] if o.startswith(swept)): j for j in summary["jobs"]}
    ok = by_overrides[("trainer.max_epochs=1", "+callbacks.nan.at_epoch=9")]
    nan = by_overrides[("trainer.max_epochs=1", "+callbacks.nan.at_epoch=0")]
    assert ok["status"] == "ok" and 0 <= ok["test"]["test/miou"] <= 1
    assert nan["status"] == "failed" and "loss became nan at epoch 0" in nan["error"]
    bad = [j for o, j in by_overrides.items() if "trainer.max_epochs=-1" in o]
    assert len(bad) == 2 and all("trainer.max_epochs=-1" in j["error"] for j in bad)
    kept = (sweep / ok["job"] / "metrics.json").read_text()
    assert json.loads(kept)["status"] == "completed"

    again = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1
    assert "already holds a completed run: skipped" in again.stdout + again.stderr
    assert (sweep / ok["job"] / "metrics.json").read_text() == kept  # untouched, not retrained
    rerun = json.loads((sweep / "summary.json").read_text())
    assert rerun["counts"] == {"ok": 1, "skipped": 1, "failed": 3}
    assert [j["job"] for j in rerun["jobs"] if j.get("skipped")] == [ok["job"]]


@pytest.mark.slow
def test_rerun_with_other_seeds_into_the_same_sweep_dir_trains_them(tmp_path):
    # the overrides are sorted by key and seed= comes after 120 characters of the tiny ones: the
    # second sweep's job 0 used to land in the first one's folder and be skipped as completed
    sweep = tmp_path / "sweep"
    base = [*_sweep_command(tmp_path, sweep), "trainer.max_epochs=1"]
    env = subprocess_env(tmp_path)
    for seed in (0, 1):
        proc = subprocess.run(
            [*base, f"seed={seed}"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "already holds a completed run" not in proc.stdout + proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 2 and all(p.name.startswith("0_") and len(p.name) <= 122 for p in jobs)
    for job in jobs:  # each folder holds the run its overrides say
        seed = json.loads((job / "metrics.json").read_text())["seed"]
        assert f"seed={seed}" in OmegaConf.load(job / ".hydra" / "overrides.yaml")


def _group_pids(pgid: int) -> dict[int, str]:
    """The live (not zombie) processes of process group ``pgid``, pid -> command line (from /proc)."""
    live = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            live[int(stat.parent.name)] = cmd
    return live


def _live_in_group(pgid: int) -> list[str]:
    return sorted(_group_pids(pgid).values())


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_sigterm_to_a_joblib_sweep_stops_its_worker_processes(tmp_path):
    # `timeout`, `kill` or a scheduler signal the sweep's own process: the loky workers running
    # the jobs used to outlive it and go on training (and writing) unsupervised
    marker = tmp_path / "paused"
    args = [
        *_sweep_command(tmp_path, tmp_path / "sweep"),
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "+callbacks.pause._target_=fault_callbacks.PauseOnce",
        f"+callbacks.pause.marker={marker}",
        "+callbacks.pause.epoch=0",
        "+callbacks.pause.batch=0",
        "seed=0,1",
    ]
    env = subprocess_env(tmp_path, fault_callbacks=True)
    proc = subprocess.Popen(
        args,
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers are found, and never leak
    )
    try:
        deadline = time.time() + 240
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else "no pause"
        assert len(_live_in_group(proc.pid)) > 1  # the sweep and its workers
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.time() + 15
        while _live_in_group(proc.pid) and time.time() < deadline:
            time.sleep(0.5)
        assert _live_in_group(proc.pid) == []
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in _group_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.stderr.close()


def test_sweep_end_exits_1_for_incomplete_jobs_too_and_skips_a_missing_folder(tmp_path, capsys):
    _job(tmp_path, "0_seed=0", {"status": "completed", "test": {"test/miou": 0.7}}, ["seed=0"])
    _job(tmp_path, "1_seed=1", None, ["seed=1"])  # killed: no metrics.json
    with pytest.raises(SystemExit) as stop:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert stop.value.code == 1
    assert "sweep job 1_seed=1 incomplete" in capsys.readouterr().err
    assert json.loads((tmp_path / "summary.json").read_text())["counts"] == {"ok": 1, "incomplete": 1}
    # a sweep that made no folder (every job refused before writing): nothing to summarise
    missing = tmp_path / "never"
    SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(missing)}}}))
    assert not missing.exists()


def test_sigterm_handler_only_for_joblib_sweeps():
    from advaug.run.signals import _stop_on_sigterm, stop_workers_on_sigterm

    before = signal.getsignal(signal.SIGTERM)
    try:
        basic = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
        stop_workers_on_sigterm(OmegaConf.create({"hydra": {"launcher": {"_target_": basic}}}))
        assert signal.getsignal(signal.SIGTERM) is before  # in-process jobs: Lightning handles it
        joblib = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
        stop_workers_on_sigterm(OmegaConf.create({"hydra": {"launcher": {"_target_": joblib}}}))
        assert signal.getsignal(signal.SIGTERM) is _stop_on_sigterm
    finally:
        signal.signal(signal.SIGTERM, before)
