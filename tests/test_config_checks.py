"""Config validation at the start of train(): one ConfigError naming the key, nothing written."""

import json

import pytest
from conftest import ROOT, TINY, compose_config, run_entry_script

from advaug.config_checks import check_config
from advaug.errors import ConfigError
from advaug.training import train

AUGS = sorted(p.stem for p in (ROOT / "conf" / "aug").glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("aug", AUGS)
def test_shipped_configs_pass(aug, tmp_path):
    check_config(compose_config([f"aug={aug}"], tmp_path))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["trainer.max_epochs=-1"], r"trainer\.max_epochs=-1: must be a whole number >= 1"),
        (["trainer.max_epochs=0"], r"trainer\.max_epochs=0"),
        (["trainer.max_epochs=2", "trainer.min_epochs=5"], r"trainer\.min_epochs=5 is larger"),
        (["batch_size=0"], r"batch_size=0: must be a whole number >= 1"),
        (["dataset.eval_batch_size=0"], r"dataset\.eval_batch_size=0"),
        (["aug=fgsm", "aug.eps=1.5"], r"aug\.eps=1\.5: eps is a perturbation size"),
        (["aug=invfgsm", "aug.eps=-0.1"], r"aug\.eps=-0\.1"),
        (["robustness.eps=[0.01,2.0]"], r"robustness\.eps\[1\]=2\.0"),
        (
            ["dataset.image_size=100"],
            r"dataset\.image_size=100: .* multiple of 32 \(e\.g\. dataset\.image_size=96",
        ),
        (["seed=-3"], r"seed=-3"),
    ],
)
def test_bad_values_are_one_clear_error(overrides, message, tmp_path):
    cfg = compose_config(overrides, tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_train_refuses_before_writing_anything(tmp_path, tiny_overrides):
    cfg = compose_config([*tiny_overrides, "trainer.max_epochs=0"], tmp_path)
    with pytest.raises(ConfigError, match="trainer.max_epochs=0"):
        train(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


def run_train(args, cwd):
    return run_entry_script("train.py", args, cwd)


def test_unknown_choice_is_one_line_without_outputs(tmp_path):
    proc = run_train(["-m", "aug=none,foo", f"paths.log_dir={tmp_path / 'logs'}"], tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: aug=foo: no such choice (no conf/aug/foo.yaml). Available: " + ", ".join(AUGS) + "."
    ]
    assert not (tmp_path / "logs").exists()


def test_check_choices_leaves_other_syntax_to_hydra(tmp_path, capsys):
    from advaug.cli import check_choices

    conf = ROOT / "conf"
    check_choices(
        ["aug=fgsm,none", "+aug.eps=0.1", "trainer.max_epochs=2", "experiment=null", "seed=1,2"], conf
    )
    with pytest.raises(SystemExit) as exit_info:
        check_choices(["dataset=colonn"], conf)
    assert exit_info.value.code == 2 and "dataset=colonn: no such choice" in capsys.readouterr().err


def test_bad_value_exits_2_and_marks_the_run_failed(tmp_path):
    logs = tmp_path / "logs"
    proc = run_train(["trainer.max_epochs=-1", f"paths.log_dir={logs}", *TINY], tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: trainer.max_epochs=-1: must be a whole number >= 1 (e.g. trainer.max_epochs=10)."
    ]
    assert "Traceback" not in proc.stderr
    (run,) = list((logs / "train" / "runs").iterdir())
    record = json.loads((run / "metrics.json").read_text())
    assert record["status"] == "failed" and "trainer.max_epochs=-1" in record["error"]
    assert not (run / "checkpoints").exists()
