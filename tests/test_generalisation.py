"""The report's generalisation table and k-fold aggregation, from fabricated run folders with known numbers."""

import csv
import json

import numpy as np
import pytest
from report_jobs import make_job, read_csv

from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.reporting import write_report
from advaug.reporting.collect import collect
from advaug.reporting.generalisation import generalisation_paired, generalisation_records
from advaug.reporting.paired import paired_rows
from advaug.statistics import BETTER

CVC = [f"cvc_{i:03d}" for i in range(1, 21)]
SCORES = np.random.default_rng(1).uniform(0.3, 0.7, len(CVC))


def write_rows(path, ids, scores):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS)
        writer.writeheader()
        for i, s in zip(ids, scores, strict=True):
            writer.writerow({"id": i, "miou": s, "iou_fg": s, "dice": s, "hd95": 1 - s, "mask_pixels": 9, "pred_pixels": 9})


def external_job(folder, aug, seed, test_miou, cvc_miou, gain):
    """A kvasir run that also scored cvc_clinicdb (metrics.json external + its per_image.csv)."""
    make_job(folder, "kvasir", aug, seed, test_miou)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics["external"] = {"cvc_clinicdb": {"dataset": "cvc_clinicdb", "split": "all", "images": len(CVC),
                                            "test": {"test/miou": cvc_miou, "test/iou_fg": cvc_miou / 2,
                                                     "test/dice": cvc_miou / 3}}}  # fmt: skip
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_rows(folder / "external" / "cvc_clinicdb" / "per_image.csv", CVC, SCORES + gain + 0.01 * (seed - 1))
    return folder


def test_the_table_puts_in_distribution_and_external_scores_side_by_side(tmp_path):
    root = tmp_path / "sweep"
    for seed, (t, c) in enumerate([(0.80, 0.50), (0.82, 0.54), (0.84, 0.58)]):
        external_job(root / f"none_{seed}", "none", seed, t, c, 0.0)
        external_job(root / f"fgsm_{seed}", "fgsm", seed, t - 0.1, c + 0.1, 0.05)
    jobs = collect([root])
    records = {(r["row"], r["column"], r["metric"]): r for r in generalisation_records(jobs)}
    own, ext = records[("none", "kvasir (test)", "miou")], records[("none", "cvc_clinicdb", "miou")]
    assert own["mean"] == pytest.approx(0.82) and own["std"] == pytest.approx(0.02) and own["n"] == 3
    assert ext["mean"] == pytest.approx(0.54) and ext["std"] == pytest.approx(0.04)
    assert records[("fgsm", "cvc_clinicdb", "miou")]["mean"] == pytest.approx(0.64)
    assert records[("fgsm", "cvc_clinicdb", "dice")]["mean"] == pytest.approx(0.64 / 3)
    (row,) = [r for r in generalisation_paired(jobs, ["none"], 500) if r["metric"] == "miou"]
    assert row["dataset"] == "kvasir → cvc_clinicdb" and row["method"] == "fgsm" and row["images"] == 20
    assert row["difference"] == pytest.approx(0.05) and row["verdict"] == BETTER and row["seeds"] == "3 vs 3"
    written = write_report([root], n_resamples=200)
    md = written["tables.md"].read_text()
    assert "## Generalisation: in-distribution test and external datasets" in md
    assert "| method | kvasir (test) | cvc_clinicdb |" in md
    assert "| none | **0.8200 ± 0.0200** (n=3) | 0.5400 ± 0.0400 (n=3) |" in md  # bold: best in its column
    assert "### Paired comparisons on the external images" in md and "| kvasir → cvc_clinicdb | fgsm | 20 |" in md
    assert len(read_csv(written["generalisation.csv"])) == 2 * 2 * 3  # methods x columns x metrics
    assert {r["dataset"] for r in read_csv(written["generalisation_paired.csv"])} == {"kvasir → cvc_clinicdb"}


def fold_job(root, aug, seed, fold, ids, scores, test_miou):
    folder = make_job(root / f"{aug}_s{seed}_f{fold}", "synthetic", aug, seed, test_miou,
                      overrides=("dataset.folds=3", f"dataset.fold={fold}"))  # fmt: skip
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.update(folds=3, fold=fold)
    (folder / "metrics.json").write_text(json.dumps(metrics))
    write_rows(folder / "per_image.csv", ids, scores)
    return folder


def test_folds_of_a_seed_join_into_one_model_scored_once_per_image(tmp_path):
    root = tmp_path / "kfold"
    ids = [f"img{i:02d}" for i in range(30)]
    base = np.random.default_rng(2).uniform(0.4, 0.8, 30)
    folds = [ids[0:10], ids[10:20], ids[20:30]]
    for aug, gain in [("none", 0.0), ("flip", 0.03)]:
        for seed in (0, 1):
            for fold, members in enumerate(folds):
                scores = [base[ids.index(i)] + gain for i in members]
                fold_job(root, aug, seed, fold, members, scores, 0.6 + 0.1 * fold + gain + 0.01 * seed)
    jobs = collect([root])
    assert {j.method for j in jobs} == {"none", "flip"}  # dataset.fold is no variant
    t3 = {(r["row"], r["metric"]): r for r in read_csv(write_report([root], n_resamples=200)["table3.csv"])}
    none = t3[("none", "miou")]
    # each seed: the mean over its 3 folds (0.6, 0.7, 0.8 + 0.01 seed): 0.70 and 0.71; n = 2 seeds
    assert float(none["mean"]) == pytest.approx(0.705) and none["n"] == "2"
    assert float(none["std"]) == pytest.approx(np.std([0.70, 0.71], ddof=1))
    (row,) = [r for r in paired_rows(jobs, ["none"], 500) if r["metric"] == "miou"]
    assert row["images"] == 30 and row["seeds"] == "2 vs 2"  # every image of the 3 test folds, once
    assert row["difference"] == pytest.approx(0.03) and row["reference_mean"] == pytest.approx(base.mean())


def test_a_fold_run_twice_is_refused_but_two_folds_are_not(tmp_path):
    root = tmp_path / "k"
    fold_job(root / "a", "none", 0, 0, ["x"], [0.5], 0.5)
    fold_job(root / "a", "none", 0, 1, ["y"], [0.5], 0.5)
    assert len(collect([root])) == 2
    fold_job(root / "b", "none", 0, 1, ["y"], [0.5], 0.5)
    with pytest.raises(Exception, match="seed 0, fold 1"):
        collect([root])
