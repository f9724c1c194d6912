"""reporting/collect.py and variants.py: which folders are jobs, what a broken or half-written job
reads as, and which overrides make a variant."""

import json

import pytest
from report_jobs import eval_job, make_job, make_sweep, resolved

from advaug.errors import ConfigError
from advaug.reporting.collect import collect


@pytest.fixture
def sweep(tmp_path):
    return make_sweep(tmp_path)


# -- collect: which folders are jobs, and what a broken or half-written job reads as ---------------
def test_job_folders_by_any_marker_but_not_inside_a_job_or_a_hidden_folder(tmp_path):
    (tmp_path / "a").mkdir()  # hydra.output_subdir=null and crashed: only config_resolved.yaml
    (tmp_path / "a" / "config_resolved.yaml").write_text(
        "seed: 4\ndataset: {name: polyp}\naug: {name: fgsm}\n"
    )
    (tmp_path / "b" / ".hydra").mkdir(parents=True)
    (tmp_path / "b" / ".hydra" / "overrides.yaml").write_text("- aug=none\n")
    make_job(tmp_path / "c", "polyp", "none", 0, 0.7)
    (tmp_path / "c" / "eval").mkdir()  # a folder inside a job is that job's business, not a job
    (tmp_path / "c" / "eval" / "metrics.json").write_text('{"status": "completed", "seed": 0}')
    make_job(tmp_path / ".trash" / "d", "polyp", "none", 0, 0.7)  # hidden: not searched
    jobs = {j.path.name: j for j in collect([tmp_path])}
    assert sorted(jobs) == ["a", "b", "c"]
    a = jobs["a"]
    assert (a.status, a.dataset, a.aug, a.seed) == ("missing", "polyp", "fgsm", 4)  # facts from its config
    assert a.reason == "no metrics.json (the job crashed, was killed or is still running)"
    assert jobs["b"].status == "missing" and jobs["c"].status == "completed"


def test_a_broken_job_is_failed_or_missing_with_its_reason_never_an_error(tmp_path):
    (tmp_path / "list").mkdir()
    (tmp_path / "list" / "metrics.json").write_text("[1, 2]")
    (tmp_path / "stopped").mkdir()
    (tmp_path / "stopped" / "metrics.json").write_text(
        json.dumps({"status": "interrupted", "error": "SIGTERM at epoch 3", "seed": 1})
    )
    (tmp_path / "broken" / ".hydra").mkdir(parents=True)
    (tmp_path / "broken" / ".hydra" / "config.yaml").write_text("seed: [\n")  # cut off mid-write
    (tmp_path / "env" / ".hydra").mkdir(parents=True)  # resolves only where that variable was set
    (tmp_path / "env" / ".hydra" / "config.yaml").write_text(
        "seed: ${oc.env:ADVAUG_UNSET_SEED}\naug: {name: none}\n"
    )
    make_job(tmp_path / "done", "polyp", "none", 0, 0.7)
    (tmp_path / "done" / "robustness.json").write_text('{"meta": ')
    jobs = {j.path.name: j for j in collect([tmp_path])}
    assert (jobs["list"].status, jobs["list"].reason) == ("failed", "metrics.json is not a JSON object")
    assert (jobs["stopped"].status, jobs["stopped"].reason) == (
        "failed",
        "status='interrupted' SIGTERM at epoch 3",
    )
    assert jobs["broken"].status == "missing" and jobs["broken"].config is None
    assert (jobs["env"].status, jobs["env"].aug, jobs["env"].seed) == ("missing", "none", None)
    done = jobs["done"]
    assert done.status == "completed" and done.robustness is None
    assert done.reason.startswith("robustness.json unreadable (JSONDecodeError")


def test_metrics_json_facts_win_over_the_config(tmp_path):
    # the config of a `seed=null` run holds no seed; train() records the one it drew in metrics.json
    make_job(tmp_path / "0", "polyp", "fgsm", 0, 0.7)
    (tmp_path / "0" / ".hydra" / "config.yaml").write_text("seed: null\ndataset: {name: x}\naug: {name: y}\n")
    (job,) = collect([tmp_path])
    assert (job.dataset, job.aug, job.seed, job.method) == ("polyp", "fgsm", 0, "fgsm")


def test_run_paths_devices_and_plus_prefixes_make_no_variant(tmp_path):
    for i in range(3):
        extra = [f"hydra.run.dir=/runs/{i}", f"paths.output_dir=/out/{i}", f"trainer.devices=[{i}]",
                 f"logger={'csv' if i else 'wandb'}", f"trainer.enable_progress_bar={bool(i)}"]  # fmt: skip
        make_job(
            tmp_path / f"{i}",
            "polyp",
            "fgsm",
            i,
            0.7,
            overrides=extra + (["++aug.eps=0.05"] if i == 2 else []),
        )
    jobs = sorted(collect([tmp_path]), key=lambda j: j.path.name)
    assert [j.method for j in jobs] == ["fgsm", "fgsm", "fgsm [aug.eps=0.05]"]
    assert jobs[2].overrides["aug.eps"] == "0.05"


def test_a_config_group_choice_counts_as_an_override(tmp_path):
    # trainer=gpu names a config group: compared by its choice, not by the resolved keys it set
    for i, extra in enumerate([["trainer=gpu"], []]):
        job = make_job(tmp_path / f"{i}", "polyp", "fgsm", i, 0.7, overrides=extra)
        resolved(job, i, "fgsm")  # both resolved to trainer: {accelerator: gpu, max_epochs: 30}
    assert sorted(j.method for j in collect([tmp_path])) == ["fgsm", "fgsm [trainer=gpu]"]


def test_a_config_group_choice_that_repeats_the_default_is_no_variant(tmp_path):
    # Hydra records the option each group took in .hydra/hydra.yaml: `trainer=default` given on
    # the command line took the same option as no override at all
    for i, extra in enumerate([["trainer=default"], [], ["trainer=gpu"]]):
        job = make_job(tmp_path / f"{i}", "polyp", "fgsm", i, 0.7, overrides=extra)
        choice = extra[0].split("=")[1] if extra else "default"
        (job / ".hydra" / "hydra.yaml").write_text(
            f"hydra:\n  run: {{dir: '${{now:%H}}'}}\n  runtime:\n    choices: {{trainer: {choice}, aug: fgsm}}\n"
        )
    methods = [j.method for j in sorted(collect([tmp_path]), key=lambda j: j.path.name)]
    assert methods == ["fgsm", "fgsm", "fgsm [trainer=gpu]"]


def test_a_variant_is_judged_against_runs_of_the_same_aug_only(tmp_path):
    # pgd's plain runs use predicted labels: that must not make invfgsm's aug.labels=pred its plain row
    specs = [("invfgsm", 0, [], "'true'"), ("invfgsm", 1, [], "'true'"), ("invfgsm", 0, ["aug.labels=pred"], "pred"),
             ("pgd", 0, [], "pred")]  # fmt: skip
    for i, (aug, seed, extra, labels) in enumerate(specs):
        resolved(
            make_job(tmp_path / f"{i}", "polyp", aug, seed, 0.7, overrides=extra), seed, aug, labels=labels
        )
    methods = [j.method for j in sorted(collect([tmp_path]), key=lambda j: j.path.name)]
    assert methods == ["invfgsm", "invfgsm", "invfgsm [aug.labels=pred]", "pgd"]


def test_an_evaluation_of_a_run_without_config_resolved_takes_its_row_but_keeps_its_dataset(tmp_path):
    # a run with only .hydra/ (no config_resolved.yaml) is still the run the checkpoint came from;
    # the evaluation was on another dataset and recorded no seed (the run drew one: seed=null)
    runs = tmp_path / "runs"
    make_job(runs / "plain", "polyp", "invfgsm", 0, 0.7)
    make_job(runs / "pred", "polyp", "invfgsm", 1, 0.7, overrides=["aug.labels=pred"])
    eval_job(
        tmp_path / "eval" / "t0", runs / "pred", "colon", "invfgsm", None, [("pgd", 0.0118, "true", 0.5)]
    )
    jobs = {j.path.name: j for j in collect([runs, tmp_path / "eval"])}
    t0 = jobs["t0"]
    assert t0.status == "evaluation" and t0.method == "invfgsm [aug.labels=pred]"
    assert (t0.dataset, t0.seed) == ("colon", 1)


def test_a_failed_rerun_or_seedless_jobs_are_no_duplicate_seed(tmp_path):
    make_job(tmp_path / "try1", "polyp", "fgsm", 0, 0.5, status="failed")
    make_job(tmp_path / "try2", "polyp", "fgsm", 0, 0.7)  # the rerun of the failed seed 0
    for name in ("x", "y"):  # jobs that recorded no seed cannot be told apart: not an error
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(
            '{"status": "completed", "dataset": "polyp", "aug": "none"}'
        )
    assert sorted(j.status for j in collect([tmp_path])) == ["completed", "completed", "completed", "failed"]


def test_a_folder_without_jobs_is_an_error(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"no job folders under .*empty \(looked for metrics\.json"):
        collect([tmp_path / "empty"])


def test_the_baseline_of_a_sweep_over_eps_is_the_plain_none_row(tmp_path):
    # -m aug=none,fgsm base=none,rotate aug.eps=0.01,0.05: none runs once per eps, identically
    root = tmp_path / "s"
    for aug in ("none", "fgsm"):
        for base in (None, "rotate"):
            for eps in ("0.01", "0.05"):
                name = f"{aug}_{base}_{eps}"
                make_job(root / name, "colon", aug, 0, 0.8, base=base, overrides=[f"aug.eps={eps}"])
    jobs = collect([root])
    methods = sorted(j.method for j in jobs if j.ok)
    assert methods == ["fgsm [aug.eps=0.01]", "fgsm [aug.eps=0.05]", "none",
                       "rotate + fgsm [aug.eps=0.01]", "rotate + fgsm [aug.eps=0.05]", "rotate + none"]  # fmt: skip
    (repeat,) = [j for j in jobs if j.status == "repeat" and j.base == "none"]
    assert repeat.method == "none" and "none_None_0.01" in repeat.reason and "reads no aug.eps" in repeat.reason


def test_advchain_rows_are_labelled_like_the_other_methods(tmp_path):
    # a stacked arm, a variant chain and a swept budget: the same labels as for the attacks
    specs = [("advchain", None, []), ("advchain", "flip", []), ("advchain_geometric", None, []),
             ("advchain", None, ["aug.affine.rotate=10"])]  # fmt: skip
    for i, (aug, base, extra) in enumerate(specs):
        make_job(tmp_path / f"{i}", "polyp", aug, 0 if i != 3 else 1, 0.7, overrides=extra, base=base)
    methods = [j.method for j in sorted(collect([tmp_path]), key=lambda j: j.path.name)]
    assert methods == ["advchain", "flip + advchain", "advchain_geometric", "advchain [aug.affine.rotate=10]"]
