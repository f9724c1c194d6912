"""Config validation at the start of train(): one ConfigError naming the key, nothing written."""

import json

import pytest
from conftest import ROOT, TINY, compose_config, run_entry_script
from omegaconf import OmegaConf

from advaug.config_checks import check_config, check_gan_config
from advaug.errors import ConfigError
from advaug.gan.training import train_gan
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
        (["dataset=folder"], r"^dataset\.root is not set: .* \(e\.g\. dataset\.root=/path/to/data\)"),
        (["model.net.encoder_name=resnet19"], r"encoder_name=resnet19: not a segmentation_models_pytorch"),
        (["model.net.encoder_depth=4"], r"decoder_channels has 5 widths but model\.net\.encoder_depth=4"),
        (["optim.optimizer.lr=-1"], r"optim\.optimizer\.lr=-1: must be > 0"),
        (["optim=paper", "optim.optimizer.lr=0"], r"optim\.optimizer\.lr=0: must be > 0"),
        (["dataset.num_workers=-1"], r"dataset\.num_workers=-1: must be a whole number >= 0"),
        (["trainer.precision=foo"], r"trainer\.precision=foo: not a Lightning precision"),
        (["trainer.devices=0"], r"trainer\.devices=0: at least one device"),
        (
            ["batch_size=1", "dataset.image_size=32"],
            r"^batch_size=1 at .*BatchNorm .* \(e\.g\. batch_size=2\)",
        ),
        (["dataset.batch_size=1", "dataset.image_size=32"], r"^dataset\.batch_size=1 at .*BatchNorm"),
        (["aug=gan", "aug.gan.steps=0"], r"^aug\.gan\.steps=0: must be a whole number >= 1"),
        (["aug=gan", "aug.gan.batch_size=0"], r"^aug\.gan\.batch_size=0"),
        (["aug=gan", "aug.gan.module.depth=1"], r"^aug\.gan\.module\.depth=1: .*2 levels"),
        # 128 = 2**7: divisible, but a 1x1 innermost map (BatchNorm fails on a batch of one)
        (
            ["aug=gan", "aug.gan.module.depth=7"],
            r"^aug\.gan\.module\.depth=7: .*\(e\.g\. aug\.gan\.module\.depth=6",
        ),
        (
            ["aug=gan", "dataset.image_size=96", "aug.gan.module.depth=6"],
            r"^aug\.gan\.module\.depth=6: .*divisible .*\(e\.g\. aug\.gan\.module\.depth=5",
        ),
        (
            ["aug=gan", "aug.gan.module.disc_layers=6"],
            r"^aug\.gan\.module\.disc_layers=6: the PatchGAN .*\(e\.g\. aug\.gan\.module\.disc_layers=5\)",
        ),
        # a YAML boolean is no number (True would pass as 1)
        (["trainer.max_epochs=true"], r"^trainer\.max_epochs=True: must be a whole number"),
        (["aug=fgsm", "aug.eps=true"], r"^aug\.eps=True: eps is a perturbation size"),
        (["dataset.num_workers=true"], r"^dataset\.num_workers=True: must be a whole number >= 0"),
        (["seed=true"], r"^seed=True: must be a non-negative whole number"),
        (["trainer.devices=[]"], r"^trainer\.devices=\[\]: at least one device"),
        (["+evaluation.eps=2"], r"^evaluation\.eps=2: eps is a perturbation size"),
        # an eps preset where no attack reads it would be silently ignored
        (["aug=gan", "eps=4over255"], r"^aug\.eps=0\.0156.* with aug=gan: only the adversarial augmentations"),
        (["aug=flip", "eps=1over255"], r"^aug\.eps=0\.0039.* with aug=flip: .*drop the eps= preset"),
        # smaller than one encoder stride: the example is the smallest size that works
        (["dataset.image_size=16"], r"multiple of 32 \(e\.g\. dataset\.image_size=32 or 64\)"),
    ],
)
def test_bad_values_are_one_clear_error(overrides, message, tmp_path):
    cfg = compose_config(overrides, tmp_path)
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_batch_of_one_is_fine_where_the_deepest_map_is_larger_than_1x1(tmp_path):
    check_config(compose_config(["batch_size=1"], tmp_path))  # 128 / 2**5 = 4x4
    check_config(compose_config(["batch_size=1", "dataset.image_size=32", "model.net.encoder_depth=4",
                                 "model.net.decoder_channels=[32,16,16,8]"], tmp_path))  # fmt: skip


def test_edge_values_pass(tmp_path):
    # eps 0 and 1 are the ends of the range, seed 0 a seed, null an unset eps, tu-* any timm encoder
    check_config(compose_config(["robustness.eps=[0.0,1.0]", "seed=0", "+aug.eps_max=null"], tmp_path))
    from advaug.config_checks import check_model

    check_model(OmegaConf.create({"model": {"net": {"encoder_name": "tu-resnet18"}}}))


def test_gan_suggestions_and_image_size_of_train_gan(tmp_path):
    from advaug.config_checks import check_gan

    # 100 halves 5 times to a 3x3 map, but only twice evenly: the discriminator needs no evenness
    cfg = OmegaConf.create({"dataset": {"image_size": 100}, "gan": {"module": {"disc_layers": 6}}})
    with pytest.raises(ConfigError, match=r"\(e\.g\. gan\.module\.disc_layers=5\)"):
        check_gan(cfg, "gan")
    cfg = compose_config(["dataset.image_size=0"], tmp_path, config_name="train_gan")
    with pytest.raises(ConfigError, match=r"^dataset\.image_size=0: must be a whole number >= 1"):
        check_gan_config(cfg)


def test_train_refuses_before_writing_anything(tmp_path, tiny_overrides):
    cfg = compose_config([*tiny_overrides, "trainer.max_epochs=0"], tmp_path)
    with pytest.raises(ConfigError, match="trainer.max_epochs=0"):
        train(cfg)
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()


@pytest.mark.parametrize("precision", ["32", "32-true", "16-mixed", "bf16-mixed", "64"])
def test_lightning_precisions_pass(precision, tmp_path):
    check_config(compose_config([f"trainer.precision={precision}"], tmp_path))


def test_gan_checks_name_the_train_gan_keys(tmp_path):
    # src/train_gan.py's recipe is at `gan`, not `aug.gan`: the message names what the user types
    for overrides, message in (
        (["gan.steps=0"], r"^gan\.steps=0"),
        (["dataset.image_size=32", "gan.module.depth=5"], r"^gan\.module\.depth=5: .*gan\.module\.depth=4"),
        (["dataset.image_size=32", "gan.module.disc_layers=4"], r"^gan\.module\.disc_layers=4"),
    ):
        cfg = compose_config(overrides, tmp_path, config_name="train_gan")
        with pytest.raises(ConfigError, match=message):
            check_gan_config(cfg)
        with pytest.raises(ConfigError, match=message):
            train_gan(cfg)
        assert not (tmp_path / "run").exists() and not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["aug=fgsm", "aug.precision=fp16"], "precision"),
        (["aug=flip", "aug.fraction=-1"], "fraction"),
    ],
)
def test_constructor_errors_write_nothing(overrides, message, tmp_path, tiny_overrides):
    # raised while building the callbacks, after check_config: the run folder must stay unmade
    from advaug.run.entry import user_error

    cfg = compose_config([*tiny_overrides, "trainer.max_epochs=1", *overrides], tmp_path)
    with pytest.raises(Exception) as info:
        train(cfg)
    assert isinstance(user_error(info.value), ConfigError) and message in str(user_error(info.value))
    assert not (tmp_path / "run").exists()


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
    from advaug.run.entry import check_choices

    conf = ROOT / "conf"
    check_choices(
        ["aug=fgsm,none", "+aug.eps=0.1", "trainer.max_epochs=2", "experiment=null", "seed=1,2"], conf
    )
    with pytest.raises(SystemExit) as exit_info:
        check_choices(["dataset=colonn"], conf)
    assert exit_info.value.code == 2 and "dataset=colonn: no such choice" in capsys.readouterr().err
    # nested groups (Hydra's own launchers live outside conf/) and sweep functions are Hydra's
    check_choices(["hydra/launcher=basic", "aug=choice(fgsm,none)", "seed=range(0,3)"], conf)
    with pytest.raises(SystemExit):
        check_choices(["+dataset=colonn"], conf)  # an appended group is checked too
    assert "dataset=colonn: no such choice" in capsys.readouterr().err


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


@pytest.mark.parametrize("script", ["evaluate.py", "check_data.py", "train_gan.py"])
def test_other_entry_scripts_refuse_unknown_choices_in_one_line(script, tmp_path):
    proc = run_entry_script(script, ["dataset=foo", f"paths.log_dir={tmp_path / 'logs'}"], tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: dataset=foo: no such choice (no conf/dataset/foo.yaml)"
    )
    assert not (tmp_path / "logs").exists()


def test_unquoted_sweep_job_path_is_one_line_with_the_quoted_form(capsys):
    from advaug.run.entry import check_choices, check_path_quoting

    job = "logs/train/multiruns/t/0_aug=none,seed=0/checkpoints/best.ckpt"
    with pytest.raises(SystemExit) as stop:
        check_path_quoting([f"ckpt_path={job}"])
    assert stop.value.code == 2
    assert f"quote it: \"ckpt_path='{job}'\"" in capsys.readouterr().err
    check_path_quoting([f"ckpt_path='{job}'", "dataset.root=/a,/b", "seed=1"])  # quoted; a sweep list
    check_path_quoting([f'ckpt_path="{job}"', "aug.eps=a=b"])  # double quotes; not a path key
    # '+'/'~' prefixed keys and every paths.* key hold paths too; check_choices runs the same check
    for arg in (f"+ckpt_path={job}", f"~resume_dir={job}", f"paths.log_dir={job}"):
        with pytest.raises(SystemExit):
            check_path_quoting([arg])
    with pytest.raises(SystemExit):
        check_choices([f"resume_dir={job}"], ROOT / "conf")
    assert capsys.readouterr().err.count("quote it") == 4
