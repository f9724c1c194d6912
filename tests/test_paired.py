"""The report's paired tables from fabricated job folders with known per-image scores."""

import csv
import math

import numpy as np
import pytest
from test_report import make_job, read_csv

from advaug.metric_keys import PER_IMAGE_FIELDS
from advaug.reporting import write_report
from advaug.reporting.collect import collect
from advaug.reporting.paired import default_references, paired_rows
from advaug.statistics import BETTER, NO_DIFFERENCE, NOT_TESTED

IDS = [f"img{i:02d}" for i in range(30)]
BASE = np.random.default_rng(0).uniform(0.5, 0.9, len(IDS))


def per_image(folder, scores, hd=None):
    """Write ``per_image.csv`` as train(cfg) does: ``scores`` the per-image mean IoU."""
    hd = hd if hd is not None else 10 - 10 * np.asarray(scores)
    with open(folder / "per_image.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_IMAGE_FIELDS)
        writer.writeheader()
        for i, s, h in zip(IDS, scores, hd, strict=True):
            writer.writerow({"id": i, "miou": s, "iou_fg": s - 0.1, "dice": s - 0.05, "hd95": h,
                             "mask_pixels": 100, "pred_pixels": 90})  # fmt: skip


def sweep(root, gains, seeds=(0, 1, 2), dataset="colon", without=()):
    """One job per method and seed; method ``m`` (``aug`` or ``base + aug``) scores BASE + gains[m]
    (+ a seed wobble that cancels in the seed mean) on every image."""
    for method, gain in gains.items():
        base, _, aug = method.rpartition(" + ")
        for seed in seeds:
            name = f"{method.replace(' + ', '-')}_{seed}_{dataset}"
            folder = make_job(root / name, dataset, aug, seed, 0.8, base=base or None)
            if method not in without:
                per_image(folder, BASE + gain + 0.01 * (seed - 1))
    return root


def rows_of(rows, method, metric="miou", reference="none"):
    (row,) = [r for r in rows if (r["method"], r["metric"], r["reference"]) == (method, metric, reference)]
    return row


def test_a_method_005_above_on_every_image_is_better_and_an_identical_one_is_not(tmp_path):
    jobs = collect([sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05, "flip": 0.0})])
    rows = paired_rows(jobs, ["none"], n_resamples=1000)
    fgsm, flip = rows_of(rows, "fgsm"), rows_of(rows, "flip")
    assert fgsm["difference"] == pytest.approx(0.05) and fgsm["ci_low"] > 0 and fgsm["p"] < 1e-5
    assert fgsm["verdict"] == BETTER and fgsm["images"] == 30 and fgsm["seeds"] == "3 vs 3"
    assert fgsm["reference_mean"] == pytest.approx(BASE.mean()) and fgsm["resamples"] == 1000
    assert flip["difference"] == 0 and flip["ci_low"] <= 0 <= flip["ci_high"] and flip["p"] == 1.0
    assert flip["verdict"] == NO_DIFFERENCE
    # HD95 = 10 - 10 x score here: lower is better, so fgsm's drop in HD95 is "better" too
    hd = rows_of(rows, "fgsm", "hd95")
    assert hd["difference"] == pytest.approx(-0.5) and hd["verdict"] == BETTER


def test_holm_adjusts_within_one_reference_and_metric(tmp_path):
    jobs = collect([sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05, "flip": 0.05, "rotate": 0.0})])
    rows = [r for r in paired_rows(jobs, ["none"], n_resamples=200) if r["metric"] == "miou"]
    raw = sorted(r["p"] for r in rows)  # fgsm and flip tie; rotate p = 1
    by_method = {r["method"]: r for r in rows}
    assert by_method["fgsm"]["p_holm"] == pytest.approx(min(1, 3 * raw[0]))
    assert by_method["rotate"]["p_holm"] == 1.0


def test_runs_without_per_image_scores_are_named_not_invented(tmp_path):
    root = sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05}, without=("fgsm",))
    written = write_report([root], n_resamples=200)
    rows = read_csv(written["paired.csv"])
    fgsm = [r for r in rows if r["method"] == "fgsm"]
    assert len(fgsm) == 4 and all(r["verdict"] == NOT_TESTED and r["difference"] == "" for r in fgsm)
    assert "no per-image scores (3 run(s) made before per_image.csv was written)" in fgsm[0]["note"]
    page = written["tables.md"].read_text()
    assert "## Paired comparisons on the test images" in page and "No paired test could be made" in page
    assert page.count("| colon | none | fgsm | no per-image scores") == 1  # once, not once per metric


def test_a_partly_recorded_method_uses_its_recorded_seeds_and_says_so(tmp_path):
    root = sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05})
    (root / "fgsm_2_colon" / "per_image.csv").unlink()
    row = rows_of(paired_rows(collect([root]), ["none"], n_resamples=200), "fgsm")
    assert row["seeds"] == "3 vs 2 (of 3 vs 3)" and "1 run(s) without per_image.csv" in row["note"]
    assert row["difference"] == pytest.approx(0.05 - 0.005)  # seeds 0 and 1: wobble -0.01 and 0
    assert row["verdict"] == BETTER


def test_default_references_and_the_page(tmp_path):
    root = sweep(tmp_path / "s", {"none": 0.0, "same_steps": 0.0, "fgsm": 0.05})
    assert default_references(["fgsm", "same_steps", "none"]) == ["none", "same_steps"]
    written = write_report([root], n_resamples=500)
    rows = read_csv(written["paired.csv"])
    assert {r["reference"] for r in rows} == {"none", "same_steps"}
    assert len(rows) == 2 * 2 * 4  # 2 references x 2 other methods x 4 metrics
    page = written["tables.md"].read_text()
    assert "#### mean IoU (paper's): each method minus same_steps" in page
    assert "500 resamples" in page and "| colon | fgsm | 30 | 3 vs 3 |" in page
    assert "not a method selected on it" in page  # Table 3 bold is no selection


def test_explicit_reference_and_other_datasets_pair_within_their_own_dataset(tmp_path):
    root = sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05})
    sweep(root, {"none": 0.02, "fgsm": 0.02}, dataset="lumbar")
    rows = paired_rows(collect([root]), ["fgsm"], n_resamples=200)
    colon = [r for r in rows if r["dataset"] == "colon" and r["metric"] == "miou"]
    lumbar = [r for r in rows if r["dataset"] == "lumbar" and r["metric"] == "miou"]
    assert colon[0]["method"] == "none" and colon[0]["difference"] == pytest.approx(-0.05)
    assert lumbar[0]["difference"] == 0 and lumbar[0]["verdict"] == NO_DIFFERENCE
    assert not math.isnan(colon[0]["p_holm"])


def test_report_script_reference_and_resamples_options(tmp_path, capsys):
    import importlib.util

    from conftest import ROOT

    root = sweep(tmp_path / "s", {"none": 0.0, "fgsm": 0.05})
    spec = importlib.util.spec_from_file_location("report_script", ROOT / "src" / "report.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(root), "--reference", "fgsm", "--resamples", "300"]) == 0
    rows = read_csv(root / "paired.csv")
    assert {r["reference"] for r in rows} == {"fgsm"} and {r["resamples"] for r in rows} == {"300"}
    with pytest.raises(SystemExit):
        script.main([str(root), "--resamples", "5"])
    assert "at least 100 resamples" in capsys.readouterr().err


def test_a_stacked_arm_meets_the_controls_on_its_own_base(tmp_path):
    gains = {"none": 0.0, "fgsm": 0.02, "rotate + none": 0.04, "rotate + same_steps": 0.05, "rotate + fgsm": 0.07}
    root = sweep(tmp_path / "s", gains)
    jobs = collect([root])
    assert {j.method for j in jobs} == set(gains)
    assert default_references(sorted(gains)) == ["none", "same_steps"]
    assert default_references(["rotate + fgsm", "rotate + none"]) == ["none"]
    rows = paired_rows(jobs, ["none", "same_steps"], n_resamples=500)
    # rotate + fgsm against rotate + none (its base's control), not against plain none
    stacked = rows_of(rows, "rotate + fgsm", reference="rotate + none")
    assert stacked["difference"] == pytest.approx(0.03) and stacked["family"] == "none"
    assert rows_of(rows, "rotate + fgsm", reference="rotate + same_steps")["difference"] == pytest.approx(0.02)
    assert rows_of(rows, "fgsm")["difference"] == pytest.approx(0.02)
    assert not [r for r in rows if r["method"] == "rotate + fgsm" and r["reference"] == "none"]
    assert not [r for r in rows if r["method"] == "fgsm" and r["reference"] == "same_steps"]  # none there
    # one Holm family per reference name and metric: fgsm, rotate + same_steps, rotate + fgsm
    family = [r for r in rows if r["family"] == "none" and r["metric"] == "miou"]
    assert sorted(r["method"] for r in family) == ["fgsm", "rotate + fgsm", "rotate + same_steps"]
    page = write_report([root], n_resamples=200)["tables.md"].read_text()
    assert "each method minus none on the same base augmentation" in page
    assert "| colon | rotate + fgsm (vs rotate + none) | 30 | 3 vs 3 |" in page
    assert "| rotate + fgsm | " in page  # Table 3 row label
