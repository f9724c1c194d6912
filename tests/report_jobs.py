"""Hand-made job folders for the report tests, as train / evaluate leave them."""

import csv
import json


def make_job(
    folder, dataset, aug, seed, test_miou, *, val=None, status="completed", robustness=None, overrides=(),
    base=None,
):
    """A job folder as train(cfg) leaves it: .hydra/overrides.yaml, metrics.json, maybe robustness.json."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {o}\n" for o in [f"dataset={dataset}", f"aug={aug}", f"seed={seed}", *overrides])
        + (f"- base={base}\n" if base else "")
    )
    (folder / ".hydra" / "config.yaml").write_text(
        f"seed: {seed}\ndataset: {{name: {dataset}}}\naug: {{name: {aug}}}\nbase: {{name: {base or 'none'}}}\n"
    )
    val = val or {0: 0.5, 10: test_miou - 0.1, 20: test_miou - 0.05, 30: test_miou}
    history = [{"epoch": e, "val/miou": v, "val/iou_fg": v / 2, "val/dice": v / 3} for e, v in val.items()]
    metrics = {"status": status, "dataset": dataset, "aug": aug, "base": base or "none", "seed": seed, "history": history,
               "test": {"test/miou": test_miou, "test/iou_fg": test_miou / 2, "test/dice": test_miou / 3}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if robustness is not None:
        rows = [{"method": "clean", "eps": 0.0, "labels": "none", "steps": 0, "miou": test_miou}]
        rows += [
            {"method": m, "eps": e, "labels": lab, "steps": 1, "miou": v}
            for (m, e, lab), v in robustness.items()
        ]
        for r in rows:
            r.update(iou_fg=r["miou"] / 2, dice=r["miou"] / 3)
        (folder / "robustness.json").write_text(json.dumps({"meta": {"source": "train"}, "rows": rows}))
    return folder


def make_sweep(tmp_path):
    """Two augs x 3 seeds of completed jobs, a failed one and one that crashed before metrics.json."""
    root = tmp_path / "multiruns" / "2024-01-01_00-00-00"
    n = 0
    for aug, scores in [("none", (0.70, 0.80, 0.90)), ("fgsm", (0.85, 0.86, 0.87))]:
        for seed, score in enumerate(scores):
            attack = {
                ("fgsm", 0.0118, "true"): score - 0.2 + (0.15 if aug == "fgsm" else 0),
                ("fgsm", 0.1176, "true"): 0.3,
            }
            make_job(root / f"{n}_aug={aug},seed={seed}", "colon", aug, seed, score, robustness=attack)
            n += 1
    make_job(root / f"{n}_aug=invfgsm,seed=0", "colon", "invfgsm", 0, 0.99, status="failed",
             robustness={("fgsm", 0.0118, "true"): 0.99})  # fmt: skip
    crashed = root / f"{n + 1}_aug=invfgsm,seed=1"
    (crashed / ".hydra").mkdir(parents=True)
    (crashed / ".hydra" / "config.yaml").write_text("seed: 1\ndataset: {name: colon}\naug: {name: invfgsm}\n")
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def eval_job(folder, run, dataset, aug, seed, rows, **meta_extra):
    """A src/evaluate.py output folder as evaluate_checkpoint leaves it: robustness.json whose meta
    names the scored checkpoint, and an evaluate config without the training keys (no trainer.*)."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- ckpt_path={run}/checkpoints/best.ckpt\n")
    (folder / ".hydra" / "config.yaml").write_text("task_name: evaluate\nrobustness: {eps: [0.0118]}\n")
    meta = {"source": "evaluate", "ckpt_path": str(run.resolve() / "checkpoints" / "best.ckpt"),
            "dataset": dataset, "aug": aug, "seed": seed, **meta_extra}  # fmt: skip
    rows = [{"method": m, "attack": m, "eps": e, "labels": lab, "steps": 1, "miou": v, "iou_fg": v, "dice": v}
            for m, e, lab, v in rows]  # fmt: skip
    (folder / "robustness.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    return folder


def resolved(job, seed, aug, **aug_keys):
    """Give a job folder a config_resolved.yaml with trainer keys and the aug's effective values."""
    extra = "".join(f", {k}: {v}" for k, v in aug_keys.items())
    (job / "config_resolved.yaml").write_text(
        f"seed: {seed}\ndataset: {{name: polyp}}\naug: {{name: {aug}{extra}}}\n"
        "trainer: {accelerator: gpu, max_epochs: 30}\n"
    )
    return job
