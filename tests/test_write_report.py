"""reporting/report.py (write_report): jobs.csv columns, sections per dataset / class, counts,
warnings, figure names."""

import json

import pytest
from report_jobs import make_job, make_sweep, read_csv

from advaug.reporting import write_report
from advaug.reporting.collect import collect


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)


# -- write_report: jobs.csv columns, sections per dataset / class, counts, warnings, figure names ---
def test_jobs_csv_columns_and_sections_per_dataset_and_per_class(tmp_path):
    make_job(tmp_path / "c0", "colon", "none", 0, 0.8, robustness={("fgsm", 0.0118, "true"): 0.5})
    job = make_job(tmp_path / "p0", "polyp", "none", 0, 0.6)
    m = json.loads((job / "metrics.json").read_text())
    m["test"].update({"test/iou_c1": 0.25, "test/iou_c2": 0.75})  # a 3-class run
    (job / "metrics.json").write_text(json.dumps(m))
    written = write_report([tmp_path], tmp_path / "out")
    rows = {r["path"]: r for r in read_csv(written["jobs.csv"])}
    assert (rows["../c0"]["test_miou"], rows["../c0"]["robustness"]) == ("0.8", "yes")
    assert (rows["../p0"]["test_miou"], rows["../p0"]["robustness"]) == ("0.6", "no")
    md = written["tables.md"].read_text()
    assert ". Jobs: 2 completed. Cells:" in md  # no "0 failed, 0 missing, 0 evaluation"
    table1 = md.split("## Table 1")[1].split("## Table 2")[0]
    assert "dataset **colon**" in table1 and "dataset **polyp**" in table1
    table3 = md.split("## Table 3")[1]
    assert "dataset **" not in table3  # one table, datasets as columns
    assert "#### IoU of class 1\n\n| method | polyp |\n|---|---|\n| none | 0.2500 (n=1) |" in table3
    figures = md.split("## Figures")[1]
    assert "robustness_vs_eps.png" in figures and ".csv" not in figures


def test_a_report_of_failed_jobs_only_warns_and_draws_no_curves(tmp_path, caplog):
    root = tmp_path / "failed"
    make_job(root / "0", "colon", "invfgsm", 0, 0.5, status="failed")
    with caplog.at_level("WARNING"):
        written = write_report([root], tmp_path / "out", compare=["invfgsm"], figures=["invfgsm"])
    assert "val_miou_vs_epoch.png" not in written and "margins.csv" not in written
    assert not (tmp_path / "out" / "val_miou_vs_epoch.png").exists()
    assert "_no robustness.json found_" in written["tables.md"].read_text()
    # --compare needs completed runs of the method; --figures takes any job's grid
    assert "--compare invfgsm: no method of that name" in caplog.text and "--figures" not in caplog.text
    assert f"job {root / '0'}: failed (status='failed')" in caplog.text


def test_margins_section_lists_each_other_method_once(sweep, tmp_path):
    page = write_report([sweep], tmp_path / "out", compare=["fgsm"])["tables.md"].read_text()
    section = page.split("## Margins of fgsm")[1].split("## Figures")[0]
    assert [line.split(" | ")[1] for line in section.splitlines() if line.startswith("| colon")] == ["none"]


def test_published_grids_of_labels_that_reduce_to_one_name_are_all_kept(tmp_path):
    runs = tmp_path / "runs"
    for i, root in enumerate(["a/b", "a_b", "a//b"]):  # all three become "..._dataset.root=a_b"
        job = make_job(runs / f"{i}", "polyp", "none", i, 0.7, overrides=[f"dataset.root={root}"])
        (job / "figures").mkdir()
        (job / "figures" / "samples.png").write_bytes(b"\x89PNG" + bytes([i]))
    write_report([runs], tmp_path / "site", name="page")
    copied = {p.name: p.read_bytes() for p in (tmp_path / "site" / "page").glob("samples_*.png")}
    stem = "samples_polyp_none_dataset.root=a_b"
    assert sorted(copied) == [f"{stem}.png", f"{stem}_2.png", f"{stem}_3.png"]
    assert sorted(copied.values()) == [b"\x89PNG\x00", b"\x89PNG\x01", b"\x89PNG\x02"]


def test_grids_inside_the_output_folder_are_linked_in_place_not_copied(tmp_path):
    job = make_job(tmp_path / "runs" / "0", "polyp", "none", 0, 0.7)
    (job / "figures").mkdir()
    (job / "figures" / "samples.png").write_bytes(b"\x89PNG")
    written = write_report([tmp_path / "runs"], tmp_path, name="page")
    assert (
        written["page.md"] == written["tables.md"] == tmp_path / "page.md"
    )  # src/report.py prints tables.md
    page = written["page.md"].read_text()
    assert "(<runs/0/figures/samples.png>)" in page  # already beside the page: no copy
    assert not list((tmp_path / "page").glob("samples_*.png"))
    page = write_report([tmp_path / "runs"], tmp_path / "out")["tables.md"].read_text()  # no name: in place
    assert "(<../runs/0/figures/samples.png>)" in page and not list((tmp_path / "out").glob("samples_*.png"))


def test_the_same_jobs_through_another_spelling_of_the_root_count_once(tmp_path, monkeypatch):
    make_job(tmp_path / "t1" / "fgsm_0", "polyp", "fgsm", 0, 0.6)
    monkeypatch.chdir(tmp_path)
    assert len(collect([tmp_path / "t1", "t1", tmp_path / "t1" / ".." / "t1"])) == 1
