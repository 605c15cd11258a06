"""reproduce.py on the tiny model and toy course files: every table, the numbers in them equal to
the metrics.json they come from, reuse of finished runs, resuming after Ctrl-C, the synth skip
line and one-line errors. The runs are tiny (a few steps), run as reproduce.py runs them."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY, make_course_data

import ablation_report
import pages
import reproduce

# One thread per process: the tiny runs are too small to gain from more, and the CPU is shared.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def argv(data_dir, results, *extra):
    flags = ["--model", str(TINY), "--data-dir", str(data_dir), "--results", str(results), "--quick"]
    return [*flags, "--epochs", "1", "--steps", "3", "--mlm-steps", "2", *extra]


def run(data_dir, results, *extra):
    cmd = [sys.executable, "reproduce.py", *argv(data_dir, results, *extra)]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)


def tables(report):
    """{section heading: [[cell, ...] per row]} of a REPORT.md."""
    out, heading = {}, None
    for line in report.splitlines():
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("| ") and not line.startswith("| configuration"):
            out.setdefault(heading, []).append([c.strip() for c in line.strip("|").split(" | ")])
    return out


@pytest.fixture(scope="module")
def reproduced(data_dir, tmp_path_factory):
    """Two ablations (sentiment loss's quick rows, head dropout after MLM): four runs, MLM pretraining,
    two ensembles."""
    results = tmp_path_factory.mktemp("reproduce") / "results"
    first = run(data_dir, results, "--only", "sst-loss,head-dropout")
    assert first.returncode == 0, first.stdout + first.stderr
    return results, first.stdout


def test_every_chosen_table_is_written_with_the_numbers_of_its_runs(data_dir, reproduced):
    results, stdout = reproduced
    assert "ran 4 run(s), reused 0" in stdout
    report = (results / "REPORT.md").read_text()
    found = tables(report)
    titles = {a.name: a.title for a in reproduce.ablations()}
    assert set(found) == {titles["sst-loss"], titles["head-dropout"], "Ensembles (Tuning Up BERT Tables 5-6)"}
    args = reproduce.parse_args(argv(data_dir, results, "--only", "sst-loss,head-dropout"))
    checked = 0
    for run in reproduce.plan_runs(args):
        metrics = json.loads((run.folder(results) / "metrics.json").read_text())
        for label in run.labels:  # "ablation: configuration": the row of that table
            name, config = label.split(": ", 1)
            row = next(r for r in found[titles[name]] if r[0] == config)
            expected = [metrics["dev"]["sst"], metrics["dev"]["para"], metrics["dev"]["sts"]]
            expected += [metrics["overall"], metrics["plain_mean"]]
            assert [float(c) for c in row[1:6]] == pytest.approx(expected, abs=5e-5)
            checked += 1
    assert checked == 4
    ensembles = found["Ensembles (Tuning Up BERT Tables 5-6)"]
    assert [r[0].split(" (")[0] for r in ensembles] == [
        "best single run",
        "ensemble per task, chosen on dev",
        "the same, chosen on half of dev, scored on the other half",
    ]
    (path,) = (results / "ensembles").glob("best-of-each-configuration-[0-9a-f]*/metrics.json")
    ens = json.loads(path.read_text())
    assert [float(c) for c in ensembles[1][1:4]] == pytest.approx(
        [ens["dev"][t] for t in ("sst", "para", "sts")], abs=5e-5
    )
    assert "BERT and Beyond T3" in report and "SUSTech T5" in report  # the reports' figures beside ours
    for ablation in reproduce.ablations()[5], reproduce.ablations()[8]:  # each table's setup in its sentence
        assert f"Setup: {ablation.setup}" in report
    # every run of the table trained its report's recipe, with the row's keys over it
    dual = json.loads(
        next(results.glob("runs/bert-and-beyond_epochs-4_stagger-epochs-2-*/seed0/metrics.json")).read_text()
    )
    assert (dual["config"]["sst_loss"], dual["config"]["smart_variant"], dual["config"]["smart_eps"]) == (
        "dual",
        "normalize",
        1e-6,
    )
    assert (dual["config"]["stagger_epochs"], dual["config"]["epochs"], dual["config"]["sts_batch_size"]) == (2, 4, 10)
    html = (results / "REPORT.html").read_text()
    assert html.count("<svg") == 2 and "Task-head dropout" in html


def test_a_rerun_reuses_every_finished_run(data_dir, reproduced):
    results, _ = reproduced
    done = sorted(results.glob("runs/*/seed0/metrics.json"))
    assert len(done) == 4
    mtimes = {p: p.stat().st_mtime_ns for p in done}
    again = run(data_dir, results, "--only", "sst-loss,head-dropout")
    assert again.returncode == 0 and "ran 0 run(s), reused 4" in again.stdout
    assert "mlm.py" not in again.stdout  # the MLM pretraining is reused too
    assert {p: p.stat().st_mtime_ns for p in done} == mtimes
    # An ensemble interrupted while it wrote (no ensemble.json, its last file) is combined again; it
    # blocked every rerun ("--out ... already exists") or failed reading the missing file.
    (folder,) = (results / "ensembles").glob("best-of-each-configuration-[0-9a-f]*")
    (folder / "ensemble.json").unlink()
    third = run(data_dir, results, "--only", "sst-loss,head-dropout")
    assert third.returncode == 0, third.stdout + third.stderr
    assert f"removing the incomplete ensemble {folder}" in third.stdout and (folder / "ensemble.json").is_file()


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(data_dir, tmp_path):
    results = tmp_path / "results"
    # --only synth without --synth: the baseline alone, long enough (2 x 15 steps) to stop midway.
    cmd = [
        sys.executable,
        "reproduce.py",
        *argv(data_dir, results, "--only", "synth", "--epochs", "2", "--steps", "15"),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line.strip().startswith("epoch 1/2"):  # train.py is in its training loop
            proc.send_signal(signal.SIGINT)
            break
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "stopped in" in err and "run the same command again" in err
    (folder,) = results.glob("runs/*/seed0")
    assert (folder / "checkpoint.pt").is_file() and not (folder / "metrics.json").is_file()
    again = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"train.py --resume {folder}" in again.stdout and "ran 1 run(s), reused 0" in again.stdout
    metrics = json.loads((folder / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    # The synth ablation without --synth: the skip line on stdout and in the report.
    assert ablation_report.SYNTH_SKIPPED in again.stdout
    report = (results / "REPORT.md").read_text()
    assert "synth ablation skipped: no --synth FILE given" in report
    row = next(r for r in tables(report)["Synthetic SST paraphrases vs none"] if r[0] == "real + synthetic")
    assert row[1] == "not run (no --synth)"


def test_report_only_writes_every_table_of_the_full_reproduction(data_dir, tmp_path, capsys):
    results = tmp_path / "results"
    reproduce.reproduce(reproduce.parse_args(["--data-dir", str(data_dir), "--results", str(results), "--report-only"]))
    stdout = capsys.readouterr().out
    assert "90 distinct runs (0 finished)" in stdout and "expected time" in stdout
    report = (results / "REPORT.md").read_text()
    found = tables(report)
    esc = pages.md_escape  # REPORT.md shows the labels as written: Markdown in them is escaped
    assert set(found) == {esc(a.title) for a in reproduce.ablations()}
    assert "## Ensembles (Tuning Up BERT Tables 5-6)\n\nNo finished runs to combine." in report
    for ablation in reproduce.ablations():
        assert [r[0] for r in found[esc(ablation.title)]] == [esc(r.label) for r in ablation.rows]
        assert esc(f"Setup: {ablation.setup}") in report
    assert esc("No --synth file was given: these rows trained on the real SST rows only.") in report
    assert not list(results.glob("runs/*"))  # nothing was trained


def test_identical_flag_sets_run_once_and_quick_runs_never_mix_with_full_ones(data_dir, tmp_path):
    full = reproduce.parse_args(["--data-dir", str(data_dir)])
    quick = reproduce.parse_args(["--data-dir", str(data_dir), "--quick"])
    full_runs = reproduce.plan_runs(full)
    assert len({(r.key, r.seed) for r in full_runs}) == len(full_runs)
    # BERT and Beyond's final recipe (two QQP epochs first) is a row of two tables: one run per seed
    shared = [r for r in full_runs if "sst-loss: dual" in r.labels]
    assert len(shared) == 3 and all(len(r.labels) == 2 for r in shared)
    assert "smart-sst-para: λ=0.45 (the report's choice)" in shared[0].labels
    flags = shared[0].flags
    assert flags[flags.index("--epochs") + 1] == "4" and flags[flags.index("--stagger-epochs") + 1] == "2"
    assert int(flags[flags.index("--steps-per-epoch") + 1]) == full.budget.epochs * full.budget.steps // 4
    quick_keys = {r.key for r in reproduce.plan_runs(quick)}
    assert quick_keys and not quick_keys & {r.key for r in full_runs}
    summed = next(r for r in full_runs if "--pcgrad" in r.flags)
    steps = summed.flags[summed.flags.index("--steps-per-epoch") + 1]
    assert int(steps) == full.budget.steps // 3  # three tasks a step: the same number of batches
    # Tuning Up BERT's Table 1 rows are single-task: one run per task
    single = [r for r in full_runs if any(label.startswith("pair-encoding: cross, single") for label in r.labels)]
    assert sorted(r.flags[r.flags.index("--task") + 1] for r in single) == ["para"] * 3 + ["sts"] * 3


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "0"], "error: --seeds must be at least 1, got 0"),
        (["--only", "nope"], "error: --only: unknown ablation nope"),
        (["--synth", "missing.jsonl"], "error: --synth missing.jsonl: no such file"),
        (["--steps", "0"], "error: --steps must be at least 1, got 0"),
        (["--bogus"], "error: unrecognized arguments: --bogus"),
    ],
)
def test_bad_flags_are_one_line_errors(data_dir, tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as stop:
        reproduce.parse_args(argv(data_dir, tmp_path / "results", *extra))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "results").exists()


def test_results_inside_a_run_or_a_run_itself_are_refused(data_dir, reproduced, capsys):
    results, _ = reproduced
    run = next((results / "runs").glob("*/seed0/best.pt")).parent  # one of its train.py runs
    before = sorted(run.rglob("*"))
    for folder, where in ((run / "results", "is inside the run"), (run, "is the run")):
        with pytest.raises(SystemExit) as stop:
            reproduce.parse_args(argv(data_dir, folder))
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.count("\n") == 1, err
        assert f"error: --results {folder} {where} {run.resolve()}: choose a folder outside it" in err
    assert sorted(run.rglob("*")) == before
    assert reproduce.parse_args(argv(data_dir, results)).results == str(results)  # its own folder: a rerun


def test_a_failing_run_is_one_error_naming_its_folder_and_log(data_dir, tmp_path, monkeypatch):
    bad = tmp_path / "data"
    bad.mkdir()
    for f in data_dir.iterdir():
        (bad / f.name).write_text(f.read_text())
    lines = (bad / "ids-sst-train.csv").read_text().splitlines()
    (bad / "ids-sst-train.csv").write_text("\n".join(lines[:3] + [lines[3] + "\textra"] + lines[4:]) + "\n")
    results = tmp_path / "results"
    monkeypatch.setattr(sys, "argv", ["reproduce.py", *argv(bad, results, "--only", "synth")])
    with pytest.raises(SystemExit) as stop:
        reproduce.main()
    (folder,) = results.glob("runs/*/seed0")
    log = results / "logs" / f"{folder.parent.name}-seed0.log"
    message = str(stop.value.code)
    assert message.startswith(f"error: train.py failed (exit 1) in {folder}: error: {bad / 'ids-sst-train.csv'}")
    assert message.endswith(f"(whole log: {log})") and "\n" not in message and "Traceback" not in log.read_text()


def gone(pid):
    """The process has ended (a zombie nobody reaped yet counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1].startswith("Z")
    except FileNotFoundError:
        return True


def wait_gone(pid, bound=60):
    """Poll until `pid` has ended; the bound is generous (the child normally ends at once)."""
    for _ in range(bound * 10):
        if gone(pid):
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)  # leave nothing behind when the test fails
    return False


QUIET = "import os, sys, time\nprint(os.getpid(), flush=True)\ntime.sleep(300)\n"  # silent after its first line
PARENT = "import sys, reproduce\nreproduce.run_logged([sys.argv[1]], reproduce.Path(sys.argv[2]))\n"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_dies_with_reproduce_even_when_it_prints_nothing(tmp_path):
    """SIGKILL gives reproduce.py no chance to pass anything on; a child that prints nothing
    meanwhile never meets the broken pipe. It must end all the same."""
    (tmp_path / "quiet.py").write_text(QUIET)
    cmd = [sys.executable, "-c", PARENT, str(tmp_path / "quiet.py"), str(tmp_path / "log")]
    parent = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    assert parent.stdout.readline().startswith("  $ python ")
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    assert wait_gone(child), "the child outlived reproduce.py"


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killing_reproduce_ends_its_train_py(data_dir, tmp_path, sig):
    results = tmp_path / "results"
    cmd = [sys.executable, "reproduce.py", *argv(data_dir, results, "--only", "synth", "--steps", "100000")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in proc.stdout:
        if line.strip().startswith("epoch 1/1"):  # train.py is in its training loop
            break
    (lock,) = results.glob("runs/*/seed0/.lock")  # train.py holds its run folder: "pid host"
    child = int(lock.read_text().split()[0])
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert wait_gone(child), "train.py outlived reproduce.py"
    if sig == signal.SIGHUP:  # a closed terminal stops as Ctrl-C does: the run saved, to be continued
        assert proc.returncode == 130 and "run the same command again" in err, out + err
        assert (lock.parent / "checkpoint.pt").is_file() and not lock.exists()


@pytest.mark.parametrize("content", ["{}", '{"dev": {}, "config": {"epochs": null}}', "[]"])
def test_a_broken_metrics_json_is_one_line_even_with_plan(data_dir, tmp_path, monkeypatch, content):
    results = tmp_path / "results"
    bad = results / "runs" / "some-run" / "seed0" / "metrics.json"
    bad.parent.mkdir(parents=True)
    bad.write_text(content)
    for extra in (["--plan"], ["--report-only"]):
        monkeypatch.setattr(sys, "argv", ["reproduce.py", *argv(data_dir, results, "--only", "synth", *extra)])
        with pytest.raises(SystemExit) as stop:
            reproduce.main()
        message = str(stop.value.code)
        assert message.startswith(f"error: {bad}: not the metrics.json of a finished train.py run"), message
        assert "\n" not in message


def test_run_keys_change_with_the_data_they_read(tmp_path):
    # A finished run on other data was reused, and an interrupted one failed its --resume for ever.
    data, synth = tmp_path / "data", tmp_path / "synth.jsonl"
    make_course_data(data)
    synth.write_text('{"id": "a"}\n')

    def plan():
        args = reproduce.parse_args(["--data-dir", str(data), "--results", str(tmp_path / "r"), "--synth", str(synth)])
        return {r.key: r for r in reproduce.plan_runs(args)}, args.mlm_dir.name

    before, mlm_before = plan()
    synth.write_text('{"id": "a"}\n{"id": "b"}\n')  # synth.py paraphrase added rows
    after, mlm_after = plan()
    changed = {k for k in before if k not in after}
    assert changed and all("--sst-synth" in before[k].flags for k in changed)  # the synth rows only
    assert mlm_after == mlm_before
    path = data / "ids-sst-train.csv"
    path.write_text(path.read_text().replace(" .\t", " !\t", 1))
    edited, mlm_edited = plan()
    assert not set(edited) & set(after) and mlm_edited != mlm_after  # every run reads the course files


def test_run_keys_do_not_depend_on_where_the_results_or_the_checkout_lie(data_dir, tmp_path, monkeypatch):
    def plan(results):
        args = reproduce.parse_args(["--data-dir", str(data_dir), "--results", str(results), "--quick"])
        runs = reproduce.plan_runs(args)
        assert any(str(results) in " ".join(r.flags) for r in runs)  # an MLM row's --model lies inside it
        return args.mlm_dir.name, sorted((r.key, r.seed) for r in runs)

    here = plan(tmp_path / "a" / "results")
    assert plan(tmp_path / "moved" / "elsewhere") == here
    copy = tmp_path / "checkout"  # the same recipe in another clone of the project
    (copy / "recipes" / "cpu").mkdir(parents=True)
    shutil.copy(reproduce.MLM_RECIPE, copy / "recipes" / "cpu" / "sustech-mlm.toml")
    monkeypatch.setattr(reproduce, "ROOT", copy)
    monkeypatch.setattr(reproduce, "MLM_RECIPE", copy / "recipes" / "cpu" / "sustech-mlm.toml")
    assert plan(tmp_path / "a" / "results") == here
