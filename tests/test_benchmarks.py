"""benchmarks/: every script runs on tiny CPU settings and prints its figures (no timing is
asserted), and every command of the GPU runner parses with its script's options."""

import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, TINY

sys.path.insert(0, str(ROOT / "benchmarks"))
import advchain_cost  # noqa: E402
import attack_throughput  # noqa: E402
import common  # noqa: E402
import epoch_cost  # noqa: E402
import train_throughput  # noqa: E402
import twin_norm_forward  # noqa: E402

SCRIPTS = {"advchain_cost.py": advchain_cost, "attack_throughput.py": attack_throughput,
           "train_throughput.py": train_throughput, "epoch_cost.py": epoch_cost,
           "twin_norm_forward.py": twin_norm_forward}  # fmt: skip
# 4 clean + 4 pool images of 32², batch 2 (4 steps an epoch), on the CPU
SMALL_SET = ["--device", "cpu", "--num-images", "4", "--size", "32", "--batch", "2", "--epochs", "3"]


def test_every_script_is_in_the_runner_and_every_runner_command_parses():
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu.sh"), "--dry-run", "all"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    commands = [shlex.split(line) for line in done.stdout.splitlines()]
    assert commands and all(c[0] == "python3" for c in commands)
    used = {c[1].removeprefix("benchmarks/") for c in commands}
    on_disk = {p.name for p in (ROOT / "benchmarks").glob("*.py")} - {"common.py"}
    assert used == on_disk == set(SCRIPTS)
    for command in commands:
        SCRIPTS[command[1].removeprefix("benchmarks/")].parse_args(command[2:])  # exits on a bad option
    bad = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu.sh"), "--dry-run", "nope"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)  # fmt: skip
    assert bad.returncode == 2 and "unknown part" in bad.stderr


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_is_the_scripts_own(script, capsys):
    with pytest.raises(SystemExit) as exit_:
        SCRIPTS[script].parse_args(["--help"])
    assert exit_.value.code == 0
    first_line = (ROOT / "benchmarks" / script).read_text().split('"""')[1].splitlines()[0]
    assert first_line in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["--kinds", "none,bogus"],
        ["--loop", "plain", "--kinds", "regenerate"],  # the plain loop runs no attack
        ["--loop", "plain", "--profile"],
        ["--epochs", "2"],
    ],
)
def test_epoch_cost_rejects_what_it_cannot_measure(argv):
    with pytest.raises(SystemExit) as exit_:
        epoch_cost.parse_args(argv)
    assert exit_.value.code == 2


def test_epoch_cost_always_measures_none_first():
    assert epoch_cost.parse_args(["--kinds", "free,regenerate"]).kinds == ["none", "regenerate", "free"]


@pytest.mark.slow
def test_attack_throughput_prints_its_ratio(capsys):
    result = attack_throughput.main(["--device", "cpu", "--batch", "2", "--size", "32", "--repeats", "1"])
    assert result["ratio"] > 0 and "ratio ours / torchattacks" in capsys.readouterr().out


def test_twin_norm_forward_prints_every_case_and_ratio(capsys):
    result = twin_norm_forward.main(["--device", "cpu", "--batch", "4", "--size", "32", "--repeats", "1",
                                     "--adversarial", "0.5", "--modes", "affine", "--backward"])  # fmt: skip
    cases = ("affine_all_clean", "affine_mixed")
    assert set(result) == {"plain_ms"} | {f"{c}_{k}" for c in cases for k in ("ms", "ratio", "best_ratio")}
    out = capsys.readouterr().out
    assert "forward + backward" in out and "2 adversarial rows" in out and "affine, mixed |" in out


@pytest.mark.parametrize(
    "argv", [["--modes", "none"], ["--adversarial", "0"], ["--batch", "2", "--adversarial", "0.9"]]
)
def test_twin_norm_forward_rejects_what_is_not_a_mixed_twin_batch(argv):
    with pytest.raises(SystemExit) as exit_:
        twin_norm_forward.parse_args(argv)
    assert exit_.value.code == 2


@pytest.mark.slow
@pytest.mark.parametrize("net", ["unet", "conv1x1"])
def test_train_throughput_prints_ratio_and_host_overhead(net, capsys):
    size = "32" if net == "unet" else "8"
    result = train_throughput.main(["--device", "cpu", "--net", net, "--size", size, "--batch", "2",
                                    "--steps", "3", "--warmup", "1", "--repeats", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert f"net={net}" in out and "ratio Lightning / plain" in out and "host overhead" in out
    assert result["ratio"] > 0


@pytest.mark.slow
def test_epoch_cost_times_every_kind_side_by_side(capsys):
    ratios = epoch_cost.main([*SMALL_SET, "--repeats", "1", "--kinds", ",".join(epoch_cost.KINDS)])
    assert set(ratios) == {f"{k}_ratio" for k in epoch_cost.KINDS if k != "none"}
    out = capsys.readouterr().out
    for kind in epoch_cost.KINDS:
        assert f"{kind:>13}: " in out and "ms/step" in out
    assert "ratios to none, per steady epoch: regenerate" in out and "ratios to none, whole fit" in out
    assert "free minus none:" in out


@pytest.mark.slow
def test_epoch_cost_plain_loop_publishes_pinned_and_pageable(capsys):
    medians = epoch_cost.main(
        [*SMALL_SET, "--loop", "plain", "--repeats", "1", "--kinds", "free,free_pageable"]
    )
    assert set(medians) == {"none", "free", "free_pageable", "publish_free", "publish_free_pageable"}
    assert "publish pinned vs pageable" in capsys.readouterr().out


@pytest.mark.slow
def test_epoch_cost_profile_sees_the_attack_work(capsys):
    # the sign of the input gradient is taken by the epoch-end attack (regenerate) and by the
    # per-step hooks (free), never by plain training
    profiles = epoch_cost.main([*SMALL_SET, "--profile", "--top", "3"])
    assert set(profiles) == {"none", "regenerate", "free"}
    for prof in profiles.values():
        assert prof.steps == 4 and prof.wall > 0 and prof.host  # epoch 1: 4 clean + 4 pool, batch 2
    assert "aten::sign" not in profiles["none"].host
    assert "aten::sign" in profiles["regenerate"].host and "aten::sign" in profiles["free"].host
    out = capsys.readouterr().out
    assert "wall ratio free / none" in out and "host self time, regenerate minus none" in out


@pytest.mark.slow
def test_epoch_cost_counts_syncs_in_epoch_one(capsys):
    # on the CPU nothing waits, so the counts are 0, but the epoch and its steps are found
    totals = epoch_cost.main([*SMALL_SET, "--count-syncs", "--kinds", "free"])
    assert totals == {"none": 0, "free": 0}
    assert "free: 0 syncs in epoch 1 (4 steps" in capsys.readouterr().out


@pytest.mark.slow
def test_epoch_cost_product_run_reports_epoch_one(tmp_path):
    # the plumbing of `--count-syncs --product`: a src/train.py run with the counting callback
    tiny = " ".join(o.replace(" ", "") for o in TINY)
    steps, where = epoch_cost.product_run(
        f"{tiny} aug=invfgsm aug.mode=free paths.data_dir={tmp_path}", tmp_path / "run"
    )
    assert steps == 4 and sum(where.values()) == 0  # epoch 1: 8 clean + 8 free-mode copies, batch 4


def test_profile_counts_each_kernel_once():
    # the profiler credits a kernel's time both to its own event and to the launching host op
    from torch.autograd import DeviceType
    from torch.autograd.profiler_util import EventList, FunctionEvent

    common_ = dict(thread=0, input_shapes=[], stack=[], scope=0, use_device="cuda", cpu_memory_usage=0,
                   device_memory_usage=0, is_async=False, sequence_nr=-1, device_index=0)  # fmt: skip
    op = FunctionEvent(id=1, name="aten::mm", start_us=0, end_us=10, device_type=DeviceType.CPU, **common_)
    op.append_kernel("gemm_kernel", 0, 100)  # as the trace parser links a launched kernel
    kernel = FunctionEvent(
        id=2, name="gemm_kernel", start_us=5, end_us=105, device_type=DeviceType.CUDA, **common_
    )
    events = EventList([op, kernel], use_device="cuda")
    events._build_tree()
    assert common.self_times(events.key_averages(), device=True) == {"gemm_kernel": 0.1}
    assert set(common.self_times(events.key_averages(), device=False)) == {"aten::mm"}


def test_advchain_cost_prints_every_case_and_its_ratio_to_fgsm(capsys):
    result = advchain_cost.main(["--device", "cpu", "--batch", "2", "--size", "32", "--repeats", "1"])
    cases = ("advchain_n_iter_0", "advchain_n_iter_1", "photometric", "geometric", "consistency_term")
    assert set(result) == {"fgsm_ms_per_image"} | {f"{c}_{k}" for c in cases for k in ("ms_per_image", "ratio", "best_ratio")}
    assert all(v > 0 for v in result.values()) and "ratio to fgsm" in capsys.readouterr().out
