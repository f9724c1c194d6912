"""The benchmark scripts still run and print their ratios (tiny sizes; no timing is asserted)."""

import subprocess
import sys

import pytest
from conftest import ROOT, TINY

# 4 clean + 4 pool images of 32², batch 2, on the CPU: the options the epoch scripts share
SMALL_SET = ["--device", "cpu", "--num-images", "4", "--size", "32", "--batch", "2"]
CASES = {
    "attack_throughput.py": (
        ["--device", "cpu", "--batch", "2", "--size", "32", "--repeats", "1"],
        "ratio ours / torchattacks",
    ),
    "train_throughput.py": (
        [
            "--device",
            "cpu",
            "--size",
            "32",
            "--batch",
            "2",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
        ],
        "ratio Lightning / plain",
    ),
    "epoch_overhead.py": (
        [*SMALL_SET, "--epochs", "3", "--repeats", "1", "--input-grad"],
        "ratio input gradient only / none",
    ),
    "free_mode_costs.py": (
        [*SMALL_SET, "--repeats", "1", "--profile-publish"],
        "s pageable)",  # the publish to a pinning and to a non-pinning DataModule, side by side
    ),
    "step_overhead.py": (
        ["--steps", "20", "--repeats", "1", "--free", "8"],
        "host cost of free mode's hooks",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_prints_its_ratio(script, tmp_path):
    args, expected = CASES[script]
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout


@pytest.mark.slow
def test_sync_count_product_run_reports_epoch_one(tmp_path):
    # the plumbing of `sync_count.py --product` (a src/train.py run with the counting callback,
    # its JSON report); on the CPU nothing waits, so the count is 0 but the steps are there
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import sync_count

    tiny = " ".join(o.replace(" ", "") for o in TINY)
    steps, where = sync_count.product_run(
        f"{tiny} aug=invfgsm aug.mode=free paths.data_dir={tmp_path}", tmp_path / "run"
    )
    assert steps == 4 and sum(where.values()) == 0  # epoch 1: 8 clean + 8 free-mode copies, batch 4


@pytest.mark.slow
def test_profile_epoch_sees_the_attack_work(capsys):
    # epoch 1 of each kind is profiled; the sign of the input gradient is taken by the epoch-end
    # attack (regenerate) and by the per-step hooks (free), never by plain training
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import profile_epoch

    profiles = profile_epoch.main([*SMALL_SET, "--top", "3"])
    assert set(profiles) == {"none", "regenerate", "free"}
    for prof in profiles.values():
        assert prof.steps == 4 and prof.wall > 0 and prof.host  # 4 clean + 4 pool, batch 2
    assert "aten::sign" not in profiles["none"].host
    assert "aten::sign" in profiles["regenerate"].host and "aten::sign" in profiles["free"].host
    out = capsys.readouterr().out
    assert "wall ratio free / none" in out and "host self time, regenerate minus none" in out


def test_profile_epoch_counts_each_kernel_once():
    # the profiler credits a kernel's time both to its own event and to the launching host op
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import profile_epoch
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import EventList, FunctionEvent

    common = dict(thread=0, input_shapes=[], stack=[], scope=0, use_device="cuda", cpu_memory_usage=0,
                  device_memory_usage=0, is_async=False, sequence_nr=-1, device_index=0)  # fmt: skip
    op = FunctionEvent(id=1, name="aten::mm", start_us=0, end_us=10, device_type=DeviceType.CPU, **common)
    op.append_kernel("gemm_kernel", 0, 100)  # as the trace parser links a launched kernel
    kernel = FunctionEvent(
        id=2, name="gemm_kernel", start_us=5, end_us=105, device_type=DeviceType.CUDA, **common
    )
    events = EventList([op, kernel], use_device="cuda")
    events._build_tree()
    assert profile_epoch.self_times(events.key_averages(), device=True) == {"gemm_kernel": 0.1}
    assert set(profile_epoch.self_times(events.key_averages(), device=False)) == {"aten::mm"}


@pytest.mark.parametrize(("script", "own"), [("sync_count.py", "--product"), ("profile_epoch.py", "--kinds")])
def test_help_of_the_scripts_sharing_epoch_overhead_options_is_their_own(script, own):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    first_line = (ROOT / "benchmarks" / script).read_text().split('"""')[1].splitlines()[0]
    assert first_line in proc.stdout and own in proc.stdout and "--num-images" in proc.stdout
