"""Every config choice composes, and the objects it describes can be built."""

from pathlib import Path

import pytest
from conftest import ROOT, compose_config
from hydra.utils import instantiate

GROUPS = ["dataset", "model", "optim", "aug", "trainer", "logger", "callbacks", "experiment"]


def choices(group):
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if not p.stem.startswith("_"))


@pytest.mark.parametrize("group,choice", [(g, c) for g in GROUPS for c in choices(g)])
def test_every_choice_composes(group, choice, tmp_path):
    overrides = [f"{group}={choice}"]
    if group == "dataset" and choice == "folder":
        overrides.append(f"dataset.root={tmp_path}")
    cfg = compose_config(overrides, tmp_path)
    assert cfg.trainer._target_.endswith("Trainer")
    assert cfg.model.net.classes == cfg.dataset.num_classes
    assert Path(cfg.paths.root_dir) == ROOT


@pytest.mark.parametrize("preset", choices("eps"))
def test_eps_presets_are_k_over_255_and_reach_the_callback(preset, tmp_path):
    cfg = compose_config(["aug=invfgsm", f"eps={preset}"], tmp_path)
    k = float(preset.removesuffix("over255"))
    assert cfg.aug.eps == k / 255 and cfg.aug.method == "invfgsm"  # the rest of aug is untouched
    assert instantiate(cfg.aug.callbacks.adversarial).eps == k / 255
    # a plain override still wins over the preset
    assert compose_config(["aug=fgsm", f"eps={preset}", "aug.eps=0.05"], tmp_path).aug.eps == 0.05


def test_default_objects_instantiate(tmp_path):
    cfg = compose_config([], tmp_path)
    model = instantiate(cfg.model)
    assert model.num_classes == 2
    assert type(model.net).__name__ == "Unet"
    dm = instantiate(cfg.dataset)
    assert dm.image_size == 128 and dm.batch_size == cfg.batch_size


def test_paper_optim_preset(tmp_path):
    cfg = compose_config(["optim=paper"], tmp_path)
    assert cfg.batch_size == 16 and cfg.dataset.batch_size == 16
    opt = instantiate(cfg.optim.optimizer)(params=instantiate(cfg.model.net).parameters())
    assert type(opt).__name__ == "SGD" and opt.defaults["lr"] == 0.1 and opt.defaults["momentum"] == 0.99


def test_override_paths_follow_output_dir(tmp_path):
    cfg = compose_config(["dataset=isbi2012"], tmp_path)
    assert cfg.callbacks.model_checkpoint.dirpath == str(tmp_path / "run" / "checkpoints")
    assert cfg.dataset.root.endswith("shared/datasets/isbi2012-em")


@pytest.mark.parametrize("name,count", [("colon", 1285), ("lumbar", 370)])
def test_paper_sized_stand_ins(tmp_path, name, count):
    # timing stand-ins for the paper's two sets: same image count, the paper's 128x128, own folder
    cfg = compose_config(["experiment=paper", f"dataset=synthetic_{name}"], tmp_path)
    assert cfg.dataset.generator.num_images == count and cfg.dataset.generator.size == 128
    assert cfg.dataset.name == f"synthetic_{name}" and cfg.dataset.root.endswith(f"synthetic_{name}")
    assert cfg.trainer.max_epochs == 30


def test_long_sweep_folder_names_stay_distinct(tmp_path):
    # Hydra sorts overrides by key: a plain cut at 120 characters dropped seed=/trainer.*, so
    # two sweeps' different jobs shared a folder (and the second skipped as "completed")
    from conftest import TINY

    from advaug.utils.config import safe_dirname

    head = "batch_size=4," + "x" * 150
    a, b = safe_dirname(head + ",seed=0"), safe_dirname(head + ",seed=1")
    assert a != b and len(a) == len(b) == 120 and a.startswith(head[:100])
    assert safe_dirname(head + ",seed=0") == a  # stable: a rerun finds its own folder
    assert safe_dirname("aug=fgsm,dataset.root=/a/b") == "aug=fgsm,dataset.root=_a_b"  # short: as before
    subdirs = set()
    for seed in (0, 1):
        cfg = compose_config(
            [*TINY, f"paths.data_dir={tmp_path}", f"seed={seed}", "hydra.job.num=0"], tmp_path
        )
        subdirs.add(cfg.hydra.sweep.subdir)
        assert len(cfg.hydra.sweep.subdir) <= len("0_") + 120
    assert len(subdirs) == 2


def test_folder_name_of_exactly_max_len_is_kept_as_it_is():
    from advaug.utils.config import safe_dirname

    assert safe_dirname("x" * 120) == "x" * 120  # a name that fits is never hashed
    assert safe_dirname("x" * 121) != "x" * 120 and len(safe_dirname("x" * 121)) == 120


def test_config_differences_counts_removed_nulled_and_moved_outside_values():
    from advaug.utils.config import config_differences

    old = {"paths": {"data_dir": "/a/data"}, "seed": 0, "aug": {"eps": 0.1}, "opts": {}}
    assert config_differences(old, old) == []
    # a key the new config lacks, a value set to null, an empty node dropped: all differences
    new = {"paths": {"data_dir": "/a/data"}, "seed": None, "aug": {}}
    assert config_differences(old, new) == [
        ("seed", 0, None),
        ("aug", "<missing>", {}),
        ("aug.eps", 0.1, "<missing>"),
        ("opts", {}, "<missing>"),
    ]
    # a folder beside the moved paths.data_dir (not below it) is another dataset
    old = {"paths": {"data_dir": "/a/data"}, "dataset": {"root": "/a/data2/kvasir"}}
    new = {"paths": {"data_dir": "/b/data"}, "dataset": {"root": "/b/data2/kvasir"}}
    assert config_differences(old, new) == [("dataset.root", "/a/data2/kvasir", "/b/data2/kvasir")]
    new["dataset"]["root"] = "/b/data/kvasir"
    old["dataset"]["root"] = "/a/data/kvasir"
    assert config_differences(old, new) == []  # below it: moved with it


def test_where_a_run_resumed_from_and_how_it_logged_do_not_change_its_results():
    from advaug.utils.config import config_differences

    old = {"seed": 0, "ckpt_path": None, "resume_dir": None, "trainer": {"devices": 1}, "logger": None}
    new = {
        "seed": 0,
        "ckpt_path": "last",
        "resume_dir": "/runs/x",
        "trainer": {"devices": 2},
        "logger": {"wandb": {"project": "p"}},
    }
    assert config_differences(old, new) == []
