"""Report maths and files from hand-made job folders: mean ± std over seeds, best cells, variants,
missing / failed jobs listed, Table 2 before/after, and src/report.py as a user runs it."""

import importlib.util
import json
import math
import statistics
import subprocess
import sys

import pytest
from conftest import ROOT
from report_jobs import eval_job, make_job, make_sweep, read_csv, resolved

from advaug.errors import ConfigError
from advaug.reporting import write_report
from advaug.reporting.aggregate import compare, mean_std, table1, table2, table3, table_epochs
from advaug.reporting.collect import collect
from advaug.reporting.tables import format_cell, metric_title, pivot_markdown, records_csv


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)



def test_mean_std_over_seeds():
    s = mean_std([0.7, 0.8, 0.9])
    assert s.mean == pytest.approx(0.8) and s.std == pytest.approx(0.1) and s.n == 3  # sample std (ddof=1)
    one = mean_std([0.5, None, float("nan")])
    assert one.mean == 0.5 and one.n == 1 and math.isnan(one.std)
    assert mean_std([]).n == 0
    assert format_cell(0.8, 0.1, 3) == "0.8000 ± 0.1000 (n=3)"
    assert format_cell(0.8, 0.1, 3, best=True) == "**0.8000 ± 0.1000** (n=3)"
    assert format_cell(0.5, math.nan, 1) == "0.5000 (n=1)" and format_cell(math.nan, math.nan, 0) == "—"


def test_tables_aggregate_seeds_and_mark_best(sweep):
    written = write_report([sweep])
    t3 = {(r["row"], r["column"], r["metric"]): r for r in read_csv(written["table3.csv"])}
    none = t3[("none", "colon", "miou")]
    assert float(none["mean"]) == pytest.approx(0.8) and float(none["std"]) == pytest.approx(0.1)
    assert none["n"] == "3"
    assert float(t3[("fgsm", "colon", "dice")]["mean"]) == pytest.approx(0.86 / 3)
    t1 = {(r["row"], r["column"], r["metric"]): r for r in read_csv(written["table1.csv"])}
    assert float(t1[("none", "epoch 10", "miou")]["mean"]) == pytest.approx(0.7)
    assert float(t1[("fgsm", "epoch 0", "miou")]["mean"]) == pytest.approx(0.5)
    assert t1[("fgsm", "epoch 0", "miou")]["std"] == "0.0"
    assert float(t1[("fgsm", "final", "iou_fg")]["mean"]) == pytest.approx(0.43)
    md = written["tables.md"].read_text()
    # fgsm (0.86) beats none (0.80) in the test-mIoU column: bold there, none not bold
    assert "| fgsm | **0.8600 ± 0.0100** (n=3) |" in md
    assert "| none | 0.8000 ± 0.1000 (n=3) |" in md
    assert "![val_miou_vs_epoch.png](val_miou_vs_epoch.png)" in md
    for name in ("val_miou_vs_epoch.png", "robustness_vs_eps.png"):
        assert (sweep / name).stat().st_size > 5000


def test_missing_and_failed_jobs_are_reported_not_dropped(sweep):
    written = write_report([sweep])
    jobs = {r["path"]: r for r in read_csv(written["jobs.csv"])}
    assert len(jobs) == 8
    assert (
        jobs["6_aug=invfgsm,seed=0"]["status"] == "failed"
        and "status='failed'" in jobs["6_aug=invfgsm,seed=0"]["reason"]
    )
    assert (
        jobs["7_aug=invfgsm,seed=1"]["status"] == "missing"
        and jobs["7_aug=invfgsm,seed=1"]["method"] == "invfgsm"
    )
    md = written["tables.md"].read_text()
    assert "6 completed, 1 failed, 1 missing" in md
    section = md.split("## Jobs missing or failed")[1].split("## Table 1")[0]
    assert "`6_aug=invfgsm,seed=0` | failed" in section and "`7_aug=invfgsm,seed=1` | missing" in section
    # the failed job's 0.99 must not reach the tables
    for table in ("table1.csv", "table2.csv", "table3.csv"):
        assert all("invfgsm" not in r["row"] for r in read_csv(written[table])), table
    jobs = collect([sweep])  # the aggregates themselves leave a failed job out too
    for records in (table1(jobs, [0, 30]), table2(jobs), table3(jobs)):
        assert records and all("invfgsm" not in r["row"] for r in records)


def test_table2_before_after_per_attack_and_eps(sweep):
    written = write_report([sweep])
    t2 = [r for r in read_csv(written["table2.csv"]) if r["metric"] == "miou"]
    cell = {(r["row"], r["column"]): r for r in t2}
    assert {r["block"] for r in t2} == {"fgsm / true labels"}
    assert float(cell[("before: none", "eps=0.0118")]["mean"]) == pytest.approx(0.6)
    assert float(cell[("after: fgsm", "eps=0.0118")]["mean"]) == pytest.approx(0.81)
    assert float(cell[("after: fgsm", "clean")]["mean"]) == pytest.approx(0.86)
    assert [r["column"] for r in t2 if r["row"] == "before: none"] == ["clean", "eps=0.0118", "eps=0.1176"]
    assert t2[0]["row"] == "before: none"  # before first
    assert cell[("before: none", "clean")]["n"] == "3"  # one clean value per seed, not per eps
    md = written["tables.md"].read_text()
    assert (
        "| fgsm / true labels | after: fgsm | **0.8600 ± 0.0100** (n=3) | **0.8100 ± 0.0100** (n=3) | 0.3000 ± 0.0000 (n=3) |"
        in md
    )


def test_swept_key_becomes_a_variant_and_epoch_columns(tmp_path):
    for i, (eps, seed) in enumerate([(0.05, 0), (0.05, 1), (0.1, 0)]):
        make_job(tmp_path / f"{i}", "lumbar", "fgsm", seed, 0.8 + eps, val={0: 0.5, 2: 0.6, 4: 0.7, 6: 0.8},
                 overrides=[f"aug.eps={eps}", "trainer.max_epochs=6"])  # fmt: skip
    jobs = collect([tmp_path])
    assert sorted({j.method for j in jobs}) == ["fgsm [aug.eps=0.05]", "fgsm [aug.eps=0.1]"]
    assert table_epochs(jobs) == [0, 2, 4, 6] and table_epochs(jobs, [0, 10]) == [0, 10]
    t3 = {r["row"]: r for r in read_csv(write_report([tmp_path])["table3.csv"]) if r["metric"] == "miou"}
    assert t3["fgsm [aug.eps=0.05]"]["n"] == "2" and t3["fgsm [aug.eps=0.1]"]["n"] == "1"


def test_report_script(sweep, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("report_script", ROOT / "src" / "report.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main([str(sweep), "--out", str(tmp_path / "r"), "--epochs", "0,30"]) == 0
    assert (tmp_path / "r" / "tables.md").is_file() and (tmp_path / "r" / "table2.csv").is_file()
    assert "| method | epoch 0 | epoch 30 | final |" in (tmp_path / "r" / "tables.md").read_text()
    with pytest.raises(SystemExit) as exc:
        script.main([str(tmp_path / "nowhere")])
    assert exc.value.code == 2 and "not a folder" in capsys.readouterr().err
    assert not (tmp_path / "nowhere").exists()


def test_report_warns_about_epoch_columns_no_run_reached(sweep, tmp_path, caplog, capsys):
    spec = importlib.util.spec_from_file_location("report_script", ROOT / "src" / "report.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with caplog.at_level("WARNING"):
        assert script.main([str(sweep), "--out", str(tmp_path / "r"), "--epochs", "0,30,50"]) == 0
    assert "--epochs 50: no completed run recorded that epoch (last epoch reached: 30)" in caplog.text
    assert "--epochs 30" not in caplog.text and "--epochs 0" not in caplog.text
    assert "| method | epoch 0 | epoch 30 | epoch 50 | final |" in (tmp_path / "r" / "tables.md").read_text()
    for bad in ("-1,10", "ten"):
        with pytest.raises(SystemExit) as exc:
            script.main([str(sweep), "--out", str(tmp_path / "bad"), "--epochs", bad])
        assert exc.value.code == 2 and "--epochs" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_evaluate_outputs_count_in_table2_only(tmp_path):
    make_job(tmp_path / "train" / "0", "colon", "none", 0, 0.8, robustness={("pgd", 0.1176, "pred"): 0.4})
    ev = tmp_path / "evaluate" / "runs" / "t"
    (ev / ".hydra").mkdir(parents=True)
    rows = [{"method": "clean", "eps": 0.0, "labels": "none", "steps": 0, "miou": 0.9},
            {"method": "pgd", "attack": "pgd-10", "eps": 0.1176, "labels": "pred", "steps": 10, "miou": 0.7}]  # fmt: skip
    meta = {"source": "evaluate", "dataset": "colon", "aug": "invfgsm", "seed": 0}
    (ev / "robustness.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    jobs = {j.path.name: j for j in collect([tmp_path])}
    assert jobs["t"].status == "evaluation" and jobs["t"].method == "invfgsm"
    written = write_report([tmp_path])
    t2 = {
        (r["block"], r["row"], r["column"]): r
        for r in read_csv(written["table2.csv"])
        if r["metric"] == "miou"
    }
    assert float(t2[("pgd-10 / pred labels", "after: invfgsm", "eps=0.1176")]["mean"]) == pytest.approx(0.7)
    assert float(t2[("pgd / pred labels", "before: none", "clean")]["mean"]) == pytest.approx(0.8)
    assert "Jobs missing or failed" not in written["tables.md"].read_text()
    assert [r["row"] for r in read_csv(written["table3.csv"]) if r["metric"] == "miou"] == ["none"]


def test_published_page_carries_header_provenance_and_figures(sweep, tmp_path):
    # what docs/results/kvasir-seg.md is made with: --name / --header / --figures
    for i, job in enumerate(sorted(p for p in sweep.iterdir() if (p / "metrics.json").is_file())):
        m = json.loads((job / "metrics.json").read_text())
        m.update(epochs=30, splits={"train": 8, "val": 2, "test": 2}, wall_time_s=100.0 + i)
        m["environment"] = {"device": "NVIDIA H200", "commit": "abc1234", "torch": "2.11.0"}
        (job / "metrics.json").write_text(json.dumps(m))
        (job / "figures").mkdir()
        (job / "figures" / "samples.png").write_bytes(b"\x89PNG" + bytes([i]) * 10)
    header = tmp_path / "header.md"
    header.write_text("Setup and conclusions written by hand.\n")
    out = tmp_path / "docs"
    written = write_report(
        [sweep], out, name="page", header=header, title="Colon", figures=["fgsm"], compare=["fgsm"]
    )
    page = (out / "page.md").read_text()
    assert written["page.md"] == out / "page.md"
    assert page.startswith("# Colon\n\nSetup and conclusions written by hand.\n")
    assert "| completed jobs | 6: 2 methods × seeds 0, 1, 2 |" in page
    assert "| epochs | 30 |" in page and '{"test": 2, "train": 8, "val": 2}' in page
    assert "min 100 s, median 102 s, max 105 s" in page
    assert "| device | NVIDIA H200 |" in page and "| commit | `abc1234` |" in page
    # files beside the page, linked relative to it; only the chosen method's grid, from seed 0
    assert (out / "page" / "table3.csv").is_file() and "(page/val_miou_vs_epoch.png)" in page
    copied = out / "page" / "samples_colon_fgsm.png"
    assert copied.read_bytes() == (sweep / "3_aug=fgsm,seed=0" / "figures" / "samples.png").read_bytes()
    assert "(<page/samples_colon_fgsm.png>)" in page and "samples_colon_none" not in page
    # fgsm 0.86 ± 0.01 vs none 0.80 ± 0.10: +0.06, pooled SD sqrt((0.01² + 0.1²) / 2) = 0.0711
    assert "| colon | none | 0.8600 | 0.8000 | +0.0600 | 0.0711 | +0.8 | 3 vs 3 |" in page
    assert (out / "page" / "margins.csv").is_file()


def test_an_override_that_repeats_the_default_is_no_variant(tmp_path):
    # one batch of jobs ran with an explicit trainer.max_epochs=30, another without: same runs
    for i, extra in enumerate([["trainer.max_epochs=30"], [], ["aug.eps=0.05"]]):
        job = make_job(tmp_path / f"{i}", "polyp", "fgsm", i, 0.7, overrides=extra)
        eps = 0.05 if extra == ["aug.eps=0.05"] else 0.1
        (job / "config_resolved.yaml").write_text(
            f"seed: {i}\ndataset: {{name: polyp}}\naug: {{name: fgsm, eps: {eps}}}\ntrainer: {{max_epochs: 30}}\n"
        )
    assert sorted(j.method for j in collect([tmp_path])) == ["fgsm", "fgsm", "fgsm [aug.eps=0.05]"]


def test_margins_csv_holds_every_margin_field(sweep, tmp_path):
    written = write_report([sweep], tmp_path / "out", compare=["fgsm"])
    rows = {r["metric"]: r for r in read_csv(written["margins.csv"])}
    assert set(rows) == {"miou", "iou_fg", "dice"}
    miou = rows["miou"]
    assert [miou[k] for k in ("dataset", "reference", "versus", "n")] == ["colon", "fgsm", "none", "3 vs 3"]
    assert float(miou["reference_mean"]) == pytest.approx(0.86)
    assert float(miou["versus_mean"]) == pytest.approx(0.8)
    assert float(miou["difference"]) == pytest.approx(0.06)
    pooled = math.sqrt((0.01**2 + 0.1**2) / 2)  # equal n: both pooled-SD formulas agree
    assert float(miou["pooled_sd"]) == pytest.approx(pooled)
    assert float(miou["margin_sd"]) == pytest.approx(0.06 / pooled)


def test_pooled_sd_weights_each_cell_by_its_seeds(tmp_path):
    ref, other = (0.80, 0.81, 0.82), (0.70, 0.78)  # the other method's third seed failed
    for s, v in enumerate(ref):
        make_job(tmp_path / f"inv_{s}", "polyp", "invfgsm", s, v)
    for s, v in enumerate(other):
        make_job(tmp_path / f"none_{s}", "polyp", "none", s, v)
    make_job(tmp_path / "none_2", "polyp", "none", 2, 0.5, status="failed")
    (row,) = compare([j for j in collect([tmp_path]) if j.ok], "invfgsm")
    pooled = math.sqrt((2 * statistics.variance(ref) + 1 * statistics.variance(other)) / 3)
    assert row["n"] == "3 vs 2" and row["pooled_sd"] == pytest.approx(pooled)
    assert row["margin_sd"] == pytest.approx((0.81 - 0.74) / pooled)


def test_an_evaluation_output_keeps_the_training_labels_and_takes_its_runs_row(tmp_path, caplog):
    runs, extras = tmp_path / "runs", tmp_path / "extras"
    train = ["trainer=gpu", "trainer.max_epochs=30"]  # evaluate's own config has no trainer keys
    for s in range(3):
        for aug in ("none", "invfgsm"):
            job = make_job(runs / f"{aug}_{s}", "polyp", aug, s, 0.7, overrides=train)
            resolved(job, s, aug, labels="'true'")
        job = make_job(
            extras / f"pred_{s}", "polyp", "invfgsm", s, 0.7, overrides=[*train, "aug.labels=pred"]
        )
        resolved(job, s, "invfgsm", labels="pred")
    eval_job(
        tmp_path / "eval" / "t0", extras / "pred_0", "polyp", "invfgsm", 0, [("pgd", 0.0118, "true", 0.5)]
    )
    jobs = {j.path.name: j for j in collect([runs, extras, tmp_path / "eval"])}
    assert {j.method for j in jobs.values()} == {"none", "invfgsm", "invfgsm [aug.labels=pred]"}
    assert jobs["t0"].status == "evaluation" and jobs["t0"].method == "invfgsm [aug.labels=pred]"
    assert jobs["t0"].seed == 0 and jobs["t0"].dataset == "polyp"
    # its training run outside the roots is still found through the checkpoint path
    jobs = {j.path.name: j for j in collect([runs, tmp_path / "eval"])}
    assert jobs["t0"].method == "invfgsm [aug.labels=pred]" and jobs["invfgsm_0"].method == "invfgsm"
    with caplog.at_level("WARNING"):
        written = write_report([runs, tmp_path / "eval"], tmp_path / "out", compare=["invfgsm", "invfgsn"],
                               figures=["nonee"])  # fmt: skip
    assert "## Margins of invfgsm" in written["tables.md"].read_text()
    assert {r["row"] for r in read_csv(written["table3.csv"])} == {"none", "invfgsm"}
    assert {r["row"] for r in read_csv(written["table2.csv"])} == {"after: invfgsm [aug.labels=pred]"}
    assert "--compare invfgsn: no method of that name" in caplog.text
    assert "--figures nonee: no method of that name" in caplog.text
    assert "--compare invfgsm:" not in caplog.text


def test_table2_keeps_one_value_per_model_an_evaluation_replaces_its_runs(tmp_path):
    for s in range(3):
        job = make_job(tmp_path / "train" / f"inv_{s}", "polyp", "invfgsm", s, 0.7 + s / 100,
                       robustness={("pgd", 0.0118, "true"): 0.2 + s / 100})  # fmt: skip
        resolved(job, s, "invfgsm")
    # the seed-0 checkpoint re-scored: its 0.0118 cell is replaced, eps 0.05 is new, clean too
    rows = [("clean", 0.0, "none", 0.75), ("pgd", 0.0118, "true", 0.26), ("pgd", 0.05, "true", 0.1)]
    eval_job(tmp_path / "evaluate" / "t0", tmp_path / "train" / "inv_0", "polyp", "invfgsm", 0, rows)
    t2 = {(r["row"], r["column"]): r for r in table2(collect([tmp_path])) if r["metric"] == "miou"}
    assert t2[("after: invfgsm", "eps=0.0118")]["n"] == 3  # not 4: one model, one value
    assert t2[("after: invfgsm", "eps=0.0118")]["mean"] == pytest.approx((0.26 + 0.21 + 0.22) / 3)
    assert t2[("after: invfgsm", "clean")]["mean"] == pytest.approx((0.75 + 0.71 + 0.72) / 3)
    assert t2[("after: invfgsm", "eps=0.05")]["n"] == 1


def test_robustness_off_the_whole_test_split_stays_out_of_table2(tmp_path, caplog):
    # Table 2 holds whole-test-split scores: an evaluation of the val split, or of a few batches,
    # must neither replace nor join them (it used to, under the "test split" title)
    for s in range(2):
        job = make_job(tmp_path / "train" / f"inv_{s}", "polyp", "invfgsm", s, 0.7,
                       robustness={("pgd", 0.0118, "true"): 0.2})  # fmt: skip
        resolved(job, s, "invfgsm")
    rows = [("clean", 0.0, "none", 0.9), ("pgd", 0.0118, "true", 0.9)]
    run0 = tmp_path / "train" / "inv_0"
    eval_job(tmp_path / "evaluate" / "val", run0, "polyp", "invfgsm", 0, rows, split="val")
    eval_job(tmp_path / "evaluate" / "few", run0, "polyp", "invfgsm", 0, rows, split="test",
             grid={"max_batches": 2})  # fmt: skip
    t2 = {(r["row"], r["column"]): r for r in table2(collect([tmp_path])) if r["metric"] == "miou"}
    assert t2[("after: invfgsm", "eps=0.0118")]["mean"] == pytest.approx(0.2)
    assert t2[("after: invfgsm", "clean")]["mean"] == pytest.approx(0.7)
    with caplog.at_level("WARNING"):
        page = write_report([tmp_path], tmp_path / "out")["tables.md"].read_text()
    assert "scored on the val split" in page and "scored on 2 test batches only" in page
    assert "left out of Table 2" in caplog.text


def test_one_seed_in_two_folders_is_an_error_and_overlapping_roots_count_once(tmp_path):
    a, b = tmp_path / "t1", tmp_path / "t2"
    for s in range(2):
        make_job(a / f"fgsm_{s}", "polyp", "fgsm", s, 0.6)
    assert len(collect([a, a / "fgsm_0", a])) == 2  # the same folder found three times is one job
    make_job(b / "fgsm_0", "polyp", "fgsm", 0, 0.6)  # the seed-0 job again, rerun into another folder
    with pytest.raises(ConfigError) as err:
        collect([a, b])
    assert str(a / "fgsm_0") in str(err.value) and str(b / "fgsm_0") in str(err.value)
    assert "Pass only one of them" in str(err.value)


def test_uneven_cells_compare_seed_sets_per_dataset(tmp_path):
    for ds in ("polyp", "colon"):
        for s in range(3):
            make_job(tmp_path / f"{ds}_none_{s}", ds, "none", s, 0.7)
            ok = (ds == "polyp" and s < 2) or (ds == "colon" and s == 2)
            make_job(tmp_path / f"{ds}_fgsm_{s}", ds, "fgsm", s, 0.6, status="completed" if ok else "failed")
    page = write_report([tmp_path], tmp_path / "out")["tables.md"].read_text()
    uneven = next(line for line in page.splitlines() if line.startswith("| uneven cells"))
    assert uneven.endswith(
        "| colon / fgsm: seeds [2] of [0, 1, 2]; polyp / fgsm: seeds [0, 1] of [0, 1, 2] |"
    )


def test_an_explicit_default_override_joins_the_plain_row(tmp_path):
    specs = [([], 0, "true"), ([], 1, "true"), (["aug.labels=true"], 2, "true"),
             (["aug.labels=pred"], 0, "pred"), (["aug.labels=pred"], 1, "pred"), (["aug.steps=3"], 0, 3)]  # fmt: skip
    for i, (extra, seed, value) in enumerate(specs):
        aug = "pgd" if extra == ["aug.steps=3"] else "invfgsm"
        key = "steps" if aug == "pgd" else "labels"
        job = make_job(tmp_path / f"{i}", "polyp", aug, seed, 0.7, overrides=extra)
        resolved(job, seed, aug, **{key: f"'{value}'"})
    methods = [j.method for j in sorted(collect([tmp_path]), key=lambda j: j.path.name)]
    assert methods[:3] == ["invfgsm"] * 3  # aug.labels=true repeats what the plain runs did
    assert methods[3:5] == ["invfgsm [aug.labels=pred]"] * 2
    assert methods[5] == "pgd [aug.steps=3]"  # no plain pgd run to compare with: the override labels it


def test_a_published_figure_of_a_label_with_a_slash(tmp_path):
    runs = tmp_path / "runs"
    for i, root in enumerate(["data/kvasir", "../shared/datasets/kvasir-seg"]):
        job = make_job(runs / f"{i}", "polyp", "none", i, 0.7, overrides=[f"dataset.root={root}"])
        (job / "figures").mkdir()
        (job / "figures" / "samples.png").write_bytes(b"\x89PNG" + bytes([i]))
    page = write_report([runs], tmp_path / "site", name="page")["page.md"].read_text()
    copied = sorted(p.name for p in (tmp_path / "site" / "page").glob("samples_*.png"))
    assert copied == ["samples_polyp_none_dataset.root=.._shared_datasets_kvasir-seg.png",
                      "samples_polyp_none_dataset.root=data_kvasir.png"]  # fmt: skip
    assert (tmp_path / "site" / "page" / copied[0]).read_bytes() == b"\x89PNG\x01"
    assert f"(<page/{copied[0]}>)" in page


def test_report_module_does_not_import_torch():
    # src/report.py runs on a laptop beside the sweep folders: no torch import (5 s) to read JSON
    # this checkout's src first: an installed advaug elsewhere (another worktree) would be tested instead
    code = f"import sys; sys.path.insert(0, {str(ROOT / 'src')!r}); import advaug.reporting.report; "
    code += "print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_paper_epochs_from_epoch_30_and_requested_epochs_sorted_once(tmp_path):
    make_job(tmp_path / "a", "colon", "none", 0, 0.8)  # history ends at epoch 30 exactly
    jobs = collect([tmp_path])
    assert table_epochs(jobs) == [0, 10, 20, 30]
    assert table_epochs(jobs, [20, 0, 20]) == [0, 20]


def test_margins_listed_largest_difference_first(tmp_path):
    for aug, score in [("fgsm", 0.86), ("none", 0.80), ("invfgsm", 0.60)]:
        for seed in range(2):
            make_job(tmp_path / f"{aug}_{seed}", "colon", aug, seed, score + seed / 100)
    rows = compare(collect([tmp_path]), "fgsm")
    assert [r["versus"] for r in rows] == ["invfgsm", "none"]
    assert [r["difference"] for r in rows] == pytest.approx([0.26, 0.06])


def test_a_none_variant_is_still_a_before_row_of_table2(tmp_path):
    for i, epochs in enumerate((6, 8)):
        make_job(tmp_path / f"none_{i}", "colon", "none", 0, 0.8, overrides=[f"trainer.max_epochs={epochs}"],
                 robustness={("fgsm", 0.0118, "true"): 0.5})  # fmt: skip
    rows = {r["row"] for r in table2(collect([tmp_path]))}
    assert rows == {"before: none [trainer.max_epochs=6]", "before: none [trainer.max_epochs=8]"}


def test_pivot_marks_the_best_within_its_block_among_two_filled_cells(tmp_path):
    def rec(block, row, column, mean, std=0.01, n=3):
        return {"table": 2, "dataset": "d", "block": block, "row": row, "column": column, "metric": "miou",
                "mean": mean, "std": std, "n": n}  # fmt: skip

    records = [
        rec("A", "r1", "c1", 0.5), rec("A", "r1", "c2", 0.9, math.nan, 1), rec("A", "r2", "c1", 0.6),
        rec("B", "r3", "c1", math.nan, math.nan, 0), rec("B", "r1", "c1", 0.8), rec("B", "r2", "c1", 0.7),
    ]  # fmt: skip
    assert pivot_markdown(records).splitlines() == [
        "| attack / labels | method | c1 | c2 |",
        "|---|---|---|---|",
        "| A | r1 | 0.5000 ± 0.0100 (n=3) | 0.9000 (n=1) |",  # B's 0.8 is another block; c2 has one cell
        "| A | r2 | **0.6000 ± 0.0100** (n=3) | — |",  # no cell: a dash keeps the columns aligned
        "| B | r3 | — | — |",  # an empty cell does not spoil the best of its column
        "| B | r1 | **0.8000 ± 0.0100** (n=3) | — |",
        "| B | r2 | 0.7000 ± 0.0100 (n=3) | — |",
    ]
    path = records_csv(tmp_path / "t.csv", records)
    rows = read_csv(path)
    assert rows[1]["std"] == "" and rows[3]["mean"] == "" and rows[0]["std"] == "0.01"  # NaN stays empty
    assert metric_title("iou_c2") == "IoU of class 2" and metric_title("dice_c3") == "dice of class 3"
    assert metric_title("miou").startswith("mean IoU") and metric_title("loss") == "loss"
