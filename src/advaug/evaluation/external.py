"""External scoring: the best checkpoint of a run scored on other datasets (``eval_datasets``).

A model trained on one hospital's images meets another hospital's: ``eval_datasets: [cvc_clinicdb]``
in the training config scores the best checkpoint, after training, on each listed dataset. An entry
is a dataset config name (``cvc_clinicdb``: its whole folder, split ``all``) or a mapping::

    eval_datasets: [{dataset: cvc_clinicdb, split: test, robustness: true, name: cvc_test}]

``split`` one of train / val / test / all (default all); ``robustness: true`` also runs the
robustness grid (``robustness.*``) on it; ``name`` the folder and key of its results (default the
dataset's name, ``<name>_<split>`` for a split other than all); any other key overrides the dataset
config (``root``, ``mask_threshold``, ...). The images are read at the training run's
``dataset.image_size`` (the model's input size); an entry asking for another size, or a dataset
with other classes, is refused before training (:func:`advaug.config_checks.check_eval_datasets`).

Writes ``<run>/external/<name>/per_image.csv`` (the format of the test split's ``per_image.csv``),
``robustness.*`` there when asked, and ``metrics.json``'s ``external.<name>``: dataset, split,
images and the dataset-level scores (:data:`advaug.metrics.REPORTED`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from advaug.errors import ConfigError
from advaug.metric_keys import EXTERNAL_DIR, PER_IMAGE_FILE

log = logging.getLogger(__name__)

EVAL_SPLITS = ("train", "val", "test", "all")
ENTRY_KEYS = ("dataset", "split", "robustness", "name")  # the rest override the dataset config


@dataclass
class ExternalSet:
    """One entry of ``eval_datasets``: where its results go, what is scored, and its dataset config
    (resolved in the run's context: ``paths``, ``batch_size``), ready to instantiate."""

    key: str  # eval_datasets[i], for messages
    name: str
    dataset: str
    split: str
    robustness: bool
    node: DictConfig
    image_size_given: Any = None  # the entry's own image_size, when it set one


def compose_dataset(name: str, key: str) -> DictConfig:
    """``conf/dataset/<name>.yaml`` composed (its defaults list applied), unresolved."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from advaug.utils.config import config_dir

    overrides = [f"+dataset={name}"]
    try:
        if GlobalHydra.instance().is_initialized():  # inside src/train.py: Hydra's own search path
            composed = compose(overrides=overrides)
        else:  # train(cfg) called directly (tests, notebooks)
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                composed = compose(overrides=overrides)
    except HydraException as exc:
        known = sorted(p.stem for p in (config_dir() / "dataset").glob("*.yaml"))
        raise ConfigError(
            f"{key}={name}: no dataset config conf/dataset/{name}.yaml (choose one of {', '.join(known)})."
        ) from exc
    return composed.dataset


def _entry(item: Any, key: str) -> dict[str, Any]:
    if isinstance(item, str):
        return {"dataset": item}
    if isinstance(item, (dict, DictConfig)):
        entry = OmegaConf.to_container(item, resolve=True) if isinstance(item, DictConfig) else dict(item)
        if not isinstance(entry.get("dataset"), str):
            raise ConfigError(f"{key}={entry}: name the dataset config, e.g. {{dataset: cvc_clinicdb, split: all}}.")
        return entry
    raise ConfigError(f"{key}={item!r}: give a dataset config name (cvc_clinicdb) or {{dataset: ..., split: ...}}.")


def external_sets(cfg: DictConfig) -> list[ExternalSet]:
    """The entries of ``cfg.eval_datasets``, each with its dataset config composed and resolved;
    a malformed entry, an unknown dataset or split, or two entries of one name is a :class:`ConfigError`."""
    items = cfg.get("eval_datasets") or []
    if not isinstance(items, (list, ListConfig)):
        raise ConfigError(f"eval_datasets={items}: give a list, e.g. eval_datasets=[cvc_clinicdb].")
    sets: list[ExternalSet] = []
    for k, item in enumerate(items):
        key = f"eval_datasets[{k}]"
        entry = _entry(item, key)
        split = str(entry.get("split", "all"))
        if split not in EVAL_SPLITS:
            raise ConfigError(f"{key}.split={split}: choose one of {', '.join(EVAL_SPLITS)} (all = the whole folder).")
        robustness = entry.get("robustness", False)
        if not isinstance(robustness, bool):
            raise ConfigError(f"{key}.robustness={robustness}: true or false.")
        node = compose_dataset(entry["dataset"], key)
        context = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])  # for ${paths...}, ${batch_size}
        with open_dict(context):
            context.dataset = node
            overrides = {k: v for k, v in entry.items() if k not in ENTRY_KEYS}
            for name, value in overrides.items():
                context.dataset[name] = value
            if "image_size" not in overrides:  # the model's input size
                context.dataset.image_size = cfg.dataset.image_size
            # scored, never trained on: no augmentation, no pool batches, no fold of its own
            context.dataset.transform = context.dataset.base = context.dataset.batch_fraction = None
        resolved = OmegaConf.create(OmegaConf.to_container(context.dataset, resolve=True))
        default = str(resolved.get("name") or entry["dataset"])
        name = str(entry.get("name") or (default if split == "all" else f"{default}_{split}"))
        if any(s.name == name for s in sets):
            raise ConfigError(f"{key}: a second entry named '{name}'; give one of them another name: (name: ...).")
        sets.append(ExternalSet(key, name, entry["dataset"], split, robustness, resolved, overrides.get("image_size")))
    return sets


def score_external(
    cfg: DictConfig, model: Any, best: str, out: str | Path, device: Any = None
) -> dict[str, dict[str, Any]]:
    """Score the best checkpoint (``best``; the model as it is without one) on every set of
    ``eval_datasets``: per-image rows, dataset-level scores, optionally the robustness grid.
    Returns ``metrics.json``'s ``external`` record, by name."""
    from hydra.utils import instantiate

    from advaug.evaluation.robustness import evaluate_robustness
    from advaug.evaluation.runner import load_weights, run_robustness
    from advaug.per_image import PerImageRecorder

    scored = load_weights(model, best) if best else model
    scored = scored.to(device) if device is not None else scored
    record: dict[str, dict[str, Any]] = {}
    for ext in external_sets(cfg):
        folder = Path(out) / EXTERNAL_DIR / ext.name
        datamodule = instantiate(ext.node)
        datamodule.prepare_data()
        if ext.split == "all":
            ids = datamodule.load_all()
        else:
            datamodule.setup("test")
            ids = datamodule.ids[ext.split]
        recorder = PerImageRecorder(scored.num_classes, ids)
        loader = getattr(datamodule, f"{ext.split}_dataloader")()
        (clean,) = evaluate_robustness(scored, loader, methods=[], eps=[], labels=[], per_image=recorder)
        recorder.write(folder / PER_IMAGE_FILE)
        scores = {k: v for k, v in clean.items() if k not in ("method", "eps", "labels", "steps", "attack",
                                                              "zero_grad_fraction", "images", "delta_miou")}  # fmt: skip
        record[ext.name] = {
            "dataset": ext.node.get("name"),
            "config": ext.dataset,
            "root": str(ext.node.root),
            "split": ext.split,
            "images": clean["images"],
            "test": {f"test/{k}": v for k, v in scores.items()},
        }
        log.info(
            "external %s (%s, split %s, %d images): %s", ext.name, ext.dataset, ext.split, clean["images"],
            "  ".join(f"{k}={v:.4f}" for k, v in scores.items()),
        )  # fmt: skip
        if ext.robustness:
            grid = OmegaConf.merge(cfg.robustness, {"split": ext.split})
            meta = {"source": "external", "ckpt_path": best, "seed": cfg.get("seed"), "task_name": cfg.get("task_name"),
                    "dataset": ext.node.get("name"), "aug": OmegaConf.select(cfg, "aug.name")}  # fmt: skip
            run_robustness(grid, scored, datamodule, folder, meta, device)
    return record
