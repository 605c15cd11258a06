"""Tests for ensemble.py: averaging by hand, the subset it chooses (exhaustive and greedy) on
prediction files built so the best one is known, the held-out score of --select-on, every error,
and end to end on two tiny train.py runs."""

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, make_course_data

import data
import ensemble
import predictions
from ensemble import EnsembleError, combine, decide, exhaustive, greedy, split_dev
from predictions import PredictionFileError
from tasks import TASKS, score

ROOT = Path(__file__).resolve().parent.parent


def write_gold(folder, task, ids, labels, split="dev"):
    """A course file: an unnamed index column, then id, the sentences and (labels not None) the label."""
    columns = ["id", *TASKS[task].text_columns] + [TASKS[task].label_column] * (labels is not None)
    rows = [
        f"{i}\t{id_}\t" + "\t".join(["a b ."] * len(TASKS[task].text_columns)) + f"\t{y}" * (y is not None)
        for i, (id_, y) in enumerate(zip(ids, labels if labels is not None else [None] * len(ids)))
    ]
    path = Path(folder) / TASKS[task].files[split]
    path.write_text("\t" + "\t".join(columns) + "\n" + "\n".join(rows) + "\n")
    return path


def write_run(folder, outputs, metrics=None):
    """A run folder: outputs {(task, split): (ids, raw values)} as predictions/ files, and a metrics.json."""
    for (task, split), (ids, raw) in outputs.items():
        raw = np.asarray(raw, dtype=np.float64)
        predictions.write(Path(folder) / "predictions", task, split, ids, decide(task, raw), raw)
    if metrics is not None:
        (Path(folder) / "metrics.json").write_text(json.dumps(metrics))
    return str(folder)


def write_dev_runs(folder, task, y, runs):
    """A gold dev file of labels y and one run folder a, b, c, ... per row of runs (their dev raw outputs)."""
    ids = [f"{task[0]}{i}" for i in range(len(y))]
    write_gold(folder, task, ids, y)
    return [write_run(folder / name, {(task, "dev"): (ids, r)}) for name, r in zip("abcdefgh", runs)]


def run_ensemble(tmp_path, runs, *extra, data_dir=None):
    argv = [*map(str, runs), "--out", str(tmp_path / "ens"), "--data-dir", str(data_dir or tmp_path), *extra]
    return ensemble.ensemble(ensemble.parse_args(argv))


# ----------------------------------------------------------------------------
# combining, by hand


def test_averaging_by_hand():
    # sst: equal weights (0.7+0.1)/2, (0.2+0.3)/2, (0.1+0.6)/2 = 0.40, 0.25, 0.35 -> class 0;
    # weights 1, 3: (0.7+0.3)/4, (0.2+0.9)/4, (0.1+1.8)/4 = 0.25, 0.275, 0.475 -> class 2
    sst = np.array([[[0.7, 0.2, 0.1]], [[0.1, 0.3, 0.6]]])  # (R=2, N=1, K=3)
    assert np.allclose(combine(sst, [1, 1]), [[0.40, 0.25, 0.35]]) and decide("sst", combine(sst, [1, 1])) == [0]
    assert np.allclose(combine(sst, [1, 3]), [[0.25, 0.275, 0.475]]) and decide("sst", combine(sst, [1, 3])) == [2]
    # para: (0.3+0.8)/2 = 0.55 -> 1; weights 3, 1: (0.9+0.8)/4 = 0.425 -> 0
    para = np.array([[0.3], [0.8]])
    assert decide("para", combine(para, [1, 1])) == [1] and decide("para", combine(para, [3, 1])) == [0]
    # sts: averaged raw, clipped only at the end: (5.5+4.9)/2 = 5.2 -> 5; (-0.3+0.1)/2 = -0.1 -> 0
    sts = np.array([[5.5, -0.3, 2.0], [4.9, 0.1, 3.0]])
    assert np.allclose(combine(sts, [1, 1]), [5.2, -0.1, 2.5])
    assert np.allclose(decide("sts", combine(sts, [1, 1])), [5.0, 0.0, 2.5])


# ----------------------------------------------------------------------------
# choosing: prediction files built so that the best subset is known


def complementary_para(n=20):
    """Labels and four runs' P(paraphrase): a and b are each right on half the rows, and where
    one is confidently right the other is mildly wrong, so only their mean gets every row.
    c is confidently right on 70% and confidently wrong on the rest; d is noise."""
    y = np.arange(n) % 2
    right, mild_wrong = np.where(y == 1, 0.9, 0.1), np.where(y == 1, 0.4, 0.6)
    first = np.arange(n) < n // 2
    a, b = np.where(first, right, mild_wrong), np.where(first, mild_wrong, right)
    c = np.where(np.arange(n) < 0.7 * n, np.where(y == 1, 0.95, 0.05), np.where(y == 1, 0.05, 0.95))
    d = np.random.default_rng(0).uniform(0, 1, n)
    return y, np.stack([a, b, c, d])


def test_exhaustive_chooses_the_known_best_subset():
    y, runs = complementary_para()
    assert [score("para", decide("para", r), y) for r in runs[:3]] == [0.5, 0.5, 0.7]
    counts = exhaustive("para", runs, np.ones(4), y)
    assert counts.tolist() == [1, 1, 0, 0]
    assert score("para", decide("para", combine(runs, counts)), y) == 1.0


def test_a_long_exhaustive_search_shows_progress(monkeypatch, capsys):
    y, runs = complementary_para()
    monkeypatch.setattr(ensemble, "PROGRESS_EVERY_S", -1)  # report after every subset
    exhaustive("para", runs, np.ones(4), y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 15 and lines[-1].startswith("  para: 15/15 subsets") and "ETA 0s" in lines[-1]
    monkeypatch.setattr(ensemble, "PROGRESS_EVERY_S", 10**9)  # a search shorter than that: not a word
    exhaustive("para", runs, np.ones(4), y)
    assert capsys.readouterr().out == ""


def test_zero_weight_runs_are_never_chosen():
    y, runs = complementary_para()
    assert exhaustive("para", runs, np.array([1.0, 0.0, 1.0, 1.0]), y).tolist() == [0, 0, 1, 0]


def weighted_sts(n=40):
    """Gold scores and four runs where (2 a + b) / 3 is exactly the gold: a = y + e, b = y - 2e.
    Every value is a multiple of 1/4, so the sums are exact and a tie is a tie."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 6, n).astype(np.float64)
    e = rng.choice([-0.5, -0.25, 0.25, 0.5], n)
    c, d = y + rng.choice([-1.5, 1.5], n), rng.integers(0, 6, n).astype(np.float64)
    return y, np.stack([y + e, y - 2 * e, c, d])


def test_greedy_finds_the_weighted_multiset():
    y, runs = weighted_sts()
    # step 1: a (error e) beats b (2e), c (1.5); step 2: a + b (error e/2); step 3: 2a + b = y exactly
    counts = greedy("sts", runs, np.ones(4), y, steps=20)
    assert counts.tolist() == [2, 1, 0, 0]
    assert np.allclose(combine(runs, counts), y)
    assert greedy("sts", runs, np.ones(4), y, steps=2).tolist() == [1, 1, 0, 0]
    # exhaustive search over sets cannot count a run twice, so it does worse here
    best_set = exhaustive("sts", runs, np.ones(4), y)
    assert score("sts", combine(runs, best_set), y) < score("sts", combine(runs, counts), y)


def test_cli_uses_greedy_beyond_max_exhaustive_and_writes_the_members(tmp_path):
    folders = write_dev_runs(tmp_path, "sts", *weighted_sts())
    info = run_ensemble(tmp_path, folders, "--max-exhaustive", "3")
    assert info["tasks"]["sts"]["method"] == "greedy"
    assert [(m["run"], m["count"]) for m in info["tasks"]["sts"]["members"]] == [(folders[0], 2), (folders[1], 1)]
    assert [m["weight"] for m in info["tasks"]["sts"]["members"]] == [1.0, 1.0]  # the run's --weights, not count * it
    assert info["dev"]["sts"] > 0.99
    two = run_ensemble(tmp_path / "two", folders, "--max-exhaustive", "3", "--greedy-steps", "2", data_dir=tmp_path)
    assert [m["count"] for m in two["tasks"]["sts"]["members"]] == [1, 1]
    assert (
        run_ensemble(tmp_path / "x", folders, "--max-exhaustive", "4", data_dir=tmp_path)["tasks"]["sts"]["method"]
        == "exhaustive"
    )


def test_all_averages_every_run_and_chooses_nothing(tmp_path, capsys):
    y, runs = complementary_para()  # the best subset is {a, b}; --all keeps c and d too
    folders = write_dev_runs(tmp_path, "para", y, runs)
    info = run_ensemble(tmp_path, folders, "--all")
    para = info["tasks"]["para"]
    assert para["method"] == "all" and [m["run"] for m in para["members"]] == folders
    expected = score("para", decide("para", runs.mean(0)), y)
    assert para["dev"] == expected and expected < 1.0  # the chosen {a, b} would score 1.0
    assert (
        info["note"].startswith("--all: every run averaged") and "--all: every run averaged" in capsys.readouterr().out
    )
    assert run_ensemble(tmp_path / "chosen", folders, data_dir=tmp_path)["dev"]["para"] == 1.0
    with pytest.raises(SystemExit):
        ensemble.parse_args([*folders, "--all", "--select-on", "0.5"])
    assert "--all chooses nothing on dev" in capsys.readouterr().err


def test_weights_change_the_average(tmp_path):
    # a = y + 3e and b = y - e: with weights 1 and 3 their mean is exactly y
    rng = np.random.default_rng(2)
    y, e = rng.uniform(0, 5, 30), rng.normal(0, 0.5, 30)
    ids = [f"t{i}" for i in range(30)]
    write_gold(tmp_path, "sts", ids, y.round(6))
    a = write_run(tmp_path / "a", {("sts", "dev"): (ids, y + 3 * e)})
    b = write_run(tmp_path / "b", {("sts", "dev"): (ids, y - e)})
    info = run_ensemble(tmp_path, [a, b], "--weights", "1", "3")
    assert [m["weight"] for m in info["tasks"]["sts"]["members"]] == [1.0, 3.0]
    got_ids, raw = predictions.read_raw(tmp_path / "ens" / "predictions" / "sts-dev-raw.csv")
    assert got_ids == ids and np.allclose(raw, y, atol=1e-5)


# ----------------------------------------------------------------------------
# choosing on part of dev, scoring on the rest


def test_split_dev_is_seeded_disjoint_and_complete():
    choose, held = split_dev(20, 0.3, seed=0)
    assert len(choose) == 6 and len(held) == 14 and sorted([*choose, *held]) == list(range(20))
    assert split_dev(20, 0.3, seed=0)[0].tolist() == choose.tolist()
    assert split_dev(20, 0.3, seed=1)[0].tolist() != choose.tolist()
    with pytest.raises(EnsembleError, match="--select-on 0.01: leaves 0 of 20 dev rows"):
        split_dev(20, 0.01, seed=0)
    # round(fraction * n) rows, not fewer: 0.66 * 10 = 6.6 -> 7; and never all of them: 0.99 * 20 = 19.8 -> 20
    assert [len(part) for part in split_dev(10, 0.66, seed=0)] == [7, 3]
    with pytest.raises(EnsembleError, match=r"--select-on 0.99: leaves 20 of 20 dev rows to choose on; need 1 to 19"):
        split_dev(20, 0.99, seed=0)


def test_select_on_reports_the_held_out_score(tmp_path, capsys):
    n = 20
    choose, held = split_dev(n, 0.5, seed=0)
    y = np.arange(n) % 2
    # a: right on every choosing row, wrong on 3 of the 10 held-out rows -> held-out accuracy 7/10;
    # b: wrong on 2 choosing rows, right on every held-out row -> 18/20 on all of dev, beating a's 17/20
    a_wrong, b_wrong = np.isin(np.arange(n), held[:3]), np.isin(np.arange(n), choose[:2])
    a = np.where(a_wrong, 1 - y, y) * 0.8 + 0.1  # 0.9 or 0.1
    b = np.where(b_wrong, 1 - y, y) * 0.6 + 0.2  # 0.8 or 0.2: a mean with a follows a
    ids = [f"p{i}" for i in range(n)]
    write_gold(tmp_path, "para", ids, y)
    runs = [write_run(tmp_path / name, {("para", "dev"): (ids, r)}) for name, r in (("a", a), ("b", b))]

    on_all = run_ensemble(tmp_path / "all", runs, data_dir=tmp_path)
    assert [m["run"] for m in on_all["tasks"]["para"]["members"]] == [runs[1]] and on_all["dev"]["para"] == 0.9
    assert "optimistic" in capsys.readouterr().out

    info = run_ensemble(tmp_path / "half", runs, "--select-on", "0.5", data_dir=tmp_path)
    h = info["tasks"]["para"]["held_out"]
    assert [m["run"] for m in info["tasks"]["para"]["members"]] == [runs[0]]
    assert (h["choose_rows"], h["held_out_rows"]) == (10, 10)
    assert h["ensemble_on_choose_rows"] == 1.0 and h["ensemble"] == 0.7  # 10/10 chosen on, 7/10 held out
    assert h["best_single_run"] == runs[0] and h["best_single"] == 0.7
    assert info["dev"]["para"] == 0.85 and info["held_out"]["dev"] == {"para": 0.7}
    out = capsys.readouterr().out
    assert "held out" in out and "0.7000" in out

    # another seed, another split: a is no longer perfect on the rows it is chosen on
    other = run_ensemble(tmp_path / "seed1", runs, "--select-on", "0.5", "--seed", "1", data_dir=tmp_path)
    rows = split_dev(n, 0.5, seed=1)[0]
    assert other["tasks"]["para"]["held_out"]["ensemble_on_choose_rows"] < 1.0 and np.isin(held[:3], rows).any()


# ----------------------------------------------------------------------------
# runs that cover different tasks, and ensembles of ensembles


def test_runs_with_some_tasks_only_and_an_ensemble_of_ensembles(tmp_path, capsys):
    y, runs = complementary_para()
    ids = [f"p{i}" for i in range(len(y))]
    sst_ids, sst_y = ["s0", "s1", "s2"], [0, 4, 2]
    write_gold(tmp_path, "para", ids, y)
    write_gold(tmp_path, "sst", sst_ids, sst_y)
    one_hot = np.eye(5)[sst_y]  # like synth.py label: certain labels
    full = [
        write_run(tmp_path / name, {("para", "dev"): (ids, r), ("sst", "dev"): (sst_ids, np.full((3, 5), 0.2))})
        for name, r in zip("ab", runs)
    ]
    synth = write_run(tmp_path / "synth", {("sst", "dev"): (sst_ids, one_hot)}, metrics={})
    info = run_ensemble(tmp_path, [*full, synth])
    assert info["tasks"]["sst"]["candidates"] == [*full, synth] and info["tasks"]["para"]["candidates"] == full
    assert info["dev"] == {"sst": 1.0, "para": 1.0}
    assert capsys.readouterr().out.count(" - ") >= 1  # the synth row has no para score

    again = run_ensemble(tmp_path / "again", [tmp_path / "ens", full[0]], data_dir=tmp_path)
    assert again["dev"] == {"sst": 1.0, "para": 1.0}


# ----------------------------------------------------------------------------
# errors: a clear message naming the run and file, and nothing written


@pytest.fixture
def two_runs(tmp_path):
    """Gold sts labels and two good runs a and b with dev and test predictions; returns (ids, y)."""
    y = np.array([0.0, 1.0, 2.5, 4.0, 5.0])
    ids = [f"t{i}" for i in range(5)]
    write_gold(tmp_path, "sts", ids, y)
    write_gold(tmp_path, "sts", ["x", "z"], None, split="test")
    for name in "ab":
        write_run(tmp_path / name, {("sts", "dev"): (ids, y + 0.1), ("sts", "test"): (["x", "z"], [1.0, 2.0])})
    return ids, y


def breaks(tmp_path, ids, y):
    """Each case: how to break the two good runs (or the flags), and the error it must give."""
    p = tmp_path / "b" / "predictions"
    return {
        "ids differ from the dev file": (
            lambda: write_run(tmp_path / "b", {("sts", "dev"): (["t0", "t1", "t2", "t3", "t9"], y)}),
            r"b/predictions/sts-dev-raw\.csv: its ids differ from the dev file .*1 missing \['t4'\], 1 extra \['t9'\]",
        ),
        "test ids differ from the test file": (
            lambda: write_run(tmp_path / "b", {("sts", "test"): (["x", "y"], [1.0, 2.0])}),
            r"b/predictions/sts-test-raw\.csv: its ids differ from the test file .*sts-test-student\.csv: "
            r"1 missing \['z'\], 1 extra \['y'\]",
        ),
        "test file truncated": (
            lambda: write_run(tmp_path / "b", {("sts", "test"): (["x"], [1.0])}),
            r"b/predictions/sts-test-raw\.csv: its ids differ from the test file .*: 1 missing \['z'\], 0 extra",
        ),
        "no test file to check test predictions against": (
            lambda: (tmp_path / TASKS["sts"].files["test"]).unlink(),
            r"sts-test-student\.csv: no such file \(the sts test ids, to check the runs' test predictions, "
            r"from --data-dir",
        ),
        "an id that would forge rows": (
            lambda: (p / "sts-test-raw.csv").write_text('id\tscore\nx\t1.0\n"z , 4 \n"\t2.0\n'),
            r"b/predictions/sts-test-raw\.csv:3: id '\"z , 4 ' holds a space, comma, quote",
        ),
        "duplicate test id": (
            lambda: (p / "sts-test-raw.csv").write_text("id\tscore\nx\t1.0\nx\t2.0\n"),
            r"b/predictions/sts-test-raw\.csv:3: duplicate id 'x' \(first on line 2\)",
        ),
        "not UTF-8": (
            lambda: (p / "sts-dev-raw.csv").write_bytes(b"id\tscore\nt0\t1.0\nt\xff1\t2.0\n"),
            r"b/predictions/sts-dev-raw\.csv:3: not UTF-8 text \(byte 0xff",
        ),
        "a 200,000-character field": (
            lambda: (p / "sts-dev-raw.csv").write_text("id\tscore\nt0\t" + "9" * 200_000 + "\n"),
            r"b/predictions/sts-dev-raw\.csv:2: non-finite value in '9999.*\(200000 characters\)$",
        ),
        "task its metrics.json promises": (
            lambda: (tmp_path / "b" / "metrics.json").write_text('{"dev": {"sts": 0.5, "para": 0.7}}'),
            r"b/predictions/para-dev-raw\.csv: no such file, though .*b/metrics\.json has para dev scores",
        ),
        "test without dev": (
            lambda: write_run(tmp_path / "b", {("para", "test"): (["q"], [0.5])}),
            r"b/predictions/para-dev-raw\.csv: no such file, though the run has para test predictions",
        ),
        "no run folder": (lambda: shutil.rmtree(tmp_path / "b"), r"b: no such run folder"),
        "no predictions": (
            lambda: shutil.rmtree(p),
            r"b: no predictions/\*-raw\.csv",
        ),
        "malformed number": (
            lambda: (p / "sts-dev-raw.csv").write_text("id\tscore\nt0\tone\n"),
            r"b/predictions/sts-dev-raw\.csv:2: not a number",
        ),
        "not a probability distribution": (
            lambda: write_run(tmp_path / "b", {("sst", "dev"): (["s0", "s1"], [[0.5, 0.5], [0.5, 0.6]])}),
            r"b/predictions/sst-dev-raw\.csv:3: not a probability distribution",
        ),
        "probability out of range": (
            lambda: (p / "para-dev-raw.csv").write_text("id\tprob\nq0\t0.5\nq1\t1.5\n"),
            r"b/predictions/para-dev-raw\.csv:3: not a probability",
        ),
        "wrong columns": (
            lambda: (p / "sts-dev-raw.csv").write_text("id\tp0\tp1\nt0\t0.5\t0.5\n"),
            r"b/predictions/sts-dev-raw\.csv:1: expected a header .id<TAB>score.",
        ),
        "malformed metrics.json": (
            lambda: (tmp_path / "b" / "metrics.json").write_text("[1, 2"),
            r"b/metrics\.json: not a JSON object",
        ),
        "metrics.json dev scores not an object": (
            lambda: (tmp_path / "b" / "metrics.json").write_text('{"config": {}, "dev": ["sts", "para"]}'),
            r"b/metrics\.json: not a JSON object \(with 'config' and 'dev' objects",
        ),
    }


CASES = list(breaks(Path("."), [], np.zeros(5)))


@pytest.mark.parametrize("case", CASES)
def test_bad_runs_stop_with_an_error_naming_the_file(tmp_path, two_runs, case):
    change, message = breaks(tmp_path, *two_runs)[case]
    change()
    with pytest.raises((EnsembleError, PredictionFileError), match=message):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "ens").exists()


def test_different_numbers_of_classes(tmp_path):
    write_gold(tmp_path, "sst", ["s0"], [1])
    a = write_run(tmp_path / "a", {("sst", "dev"): (["s0"], [[0.5, 0.5, 0.0]])})
    b = write_run(tmp_path / "b", {("sst", "dev"): (["s0"], [[0.5, 0.5]])})
    with pytest.raises(EnsembleError, match=r"b/predictions/sst-dev-raw\.csv: 2 classes, but .*a's sst dev"):
        run_ensemble(tmp_path, [a, b])
    assert not (tmp_path / "ens").exists()
    # a run's test predictions with other classes than its own dev predictions: argmax over 2 columns
    # would write a 5-class test submission of classes 0 and 1 only
    write_run(tmp_path / "a", {("sst", "test"): (["x"], [[0.5, 0.5]])})
    with pytest.raises(EnsembleError, match=r"a/predictions/sst-test-raw\.csv: 2 classes, but .*a's sst dev .* 3$"):
        run_ensemble(tmp_path, [a])


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--weights", "1"], r"--weights: 1 weights for 2 runs"),
        (["--weights", "1", "-1"], r"--weights: must be finite and >= 0"),
        (["--weights", "1", "inf"], r"--weights: must be finite and >= 0, got \[1\.0, inf\]"),
        (["--weights", "0", "0"], r"--weights: all are 0"),
        (["--select-on", "0.1"], r"--select-on 0.1: leaves 0 of 5 dev rows"),
        (
            ["--sts-dev", "nowhere.csv"],
            r"nowhere\.csv: no such file \(the sts dev labels, from --sts-dev; set --data-dir or --sts-dev",
        ),
    ],
)
def test_bad_flags_stop_with_an_error_naming_the_flag(tmp_path, two_runs, flags, message):
    with pytest.raises(EnsembleError, match=message):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"], *flags)
    assert not (tmp_path / "ens").exists()


def test_out_must_be_new_and_runs_distinct(tmp_path, two_runs):
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "keep.txt").write_text("mine")
    with pytest.raises(EnsembleError, match=r"--out .*ens: already exists and is not an empty folder"):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert [f.name for f in (tmp_path / "ens").iterdir()] == ["keep.txt"]
    with pytest.raises(EnsembleError, match=r"a/: given twice"):
        run_ensemble(tmp_path / "x", [tmp_path / "a", f"{tmp_path / 'a'}/"], data_dir=tmp_path)


def test_out_naming_a_file_is_refused_and_the_file_kept(tmp_path, two_runs):
    (tmp_path / "ens").write_text("mine")
    with pytest.raises(EnsembleError, match=r"--out .*ens: already exists and is not an empty folder"):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert (tmp_path / "ens").read_text() == "mine"


def test_out_is_readable_by_others_like_a_folder_mkdir_makes(tmp_path, two_runs):
    run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    # written into a mkdtemp folder (mode 0o700) and renamed: others must still read and enter it
    assert (tmp_path / "ens").stat().st_mode & 0o755 == 0o755


def test_out_inside_a_run_is_refused_before_anything_is_written(tmp_path, two_runs):
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "a").rglob("*"))
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "a" / "ens"), "--data-dir", str(tmp_path)]
    with pytest.raises(EnsembleError, match=r"--out .*a/ens is inside the run .*a: choose a folder outside"):
        ensemble.ensemble(ensemble.parse_args(argv))
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "a").rglob("*")) == before


def test_out_inside_a_run_not_combined_is_refused_too(tmp_path, two_runs):
    ids, y = two_runs
    write_run(tmp_path / "c", {("sts", "dev"): (ids, y)}, {"dev": {"sts": 1.0}})  # a finished run, not a member
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "c").rglob("*"))
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c" / "ens"), "--data-dir", str(tmp_path)]
    message = rf"--out .*c/ens is inside the run {tmp_path.resolve() / 'c'}: choose a folder outside it"
    with pytest.raises(EnsembleError, match=message):
        ensemble.ensemble(ensemble.parse_args(argv))
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "c").rglob("*")) == before


def test_ctrl_c_while_writing_leaves_no_half_written_out(tmp_path, two_runs, monkeypatch):
    write = ensemble.predictions.write

    def interrupted(folder, task, split, *rest):
        write(folder, task, split, *rest)
        if split == "dev":  # the dev predictions are written, the test ones and metrics.json not yet
            raise KeyboardInterrupt

    monkeypatch.setattr(ensemble.predictions, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "ens").exists()  # never an ensemble of dev predictions alone
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".ens")] == []


def test_an_out_written_meanwhile_by_another_process_is_kept(tmp_path, two_runs, monkeypatch):
    write = ensemble.predictions.write

    def other_process_first(*args):  # the other ensemble.py finishes while this one writes
        (tmp_path / "ens").mkdir(exist_ok=True)
        (tmp_path / "ens" / "ensemble.json").write_text("the other's")
        write(*args)

    monkeypatch.setattr(ensemble.predictions, "write", other_process_first)
    with pytest.raises(EnsembleError, match=r"--out .*ens: another process wrote into it meanwhile"):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert [p.name for p in (tmp_path / "ens").iterdir()] == ["ensemble.json"]
    assert (tmp_path / "ens" / "ensemble.json").read_text() == "the other's"


# ----------------------------------------------------------------------------
# test predictions against the test file, classes against gold, course files from metrics.json,
# members with dev predictions only (issue 26)
def test_members_truncated_alike_still_miss_test_rows(tmp_path, two_runs):
    ids, y = two_runs
    write_gold(tmp_path, "sts", [f"x{i}" for i in range(80)], None, split="test")  # the test file has 80 rows
    for name in "ab":  # both members agree with each other, on 10 of them
        write_run(tmp_path / name, {("sts", "test"): ([f"x{i}" for i in range(10)], np.ones(10))})
    with pytest.raises(
        EnsembleError, match=r"a/predictions/sts-test-raw\.csv: its ids differ from the test file .*70 missing"
    ):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "ens").exists()


def test_gold_classes_must_be_the_runs_classes(tmp_path):
    write_gold(tmp_path, "sst", ["s0", "s1", "s2"], [0, 4, 2])
    three = write_run(tmp_path / "three", {("sst", "dev"): (["s0", "s1", "s2"], np.eye(3)[[0, 1, 2]])})
    with pytest.raises(
        PredictionFileError,
        match=r"sst-dev\.csv:3: sentiment 4 is not one of the 3 classes of .*three/predictions/sst-dev-raw\.csv$",
    ):
        run_ensemble(tmp_path, [three])
    write_gold(tmp_path, "sst", ["s0", "s1", "s2"], [0, 7, 2])
    five = write_run(tmp_path / "five", {("sst", "dev"): (["s0", "s1", "s2"], np.eye(5)[[0, 1, 2]])})
    with pytest.raises(
        PredictionFileError, match=r"sst-dev\.csv:3: sentiment 7 is not one of the 5 classes of .*five/"
    ):
        run_ensemble(tmp_path, [five])
    assert not (tmp_path / "ens").exists()


def test_course_files_default_to_those_the_runs_recorded(tmp_path, two_runs, capsys):
    ids, y = two_runs
    data_dir = tmp_path  # where two_runs wrote the dev and test files
    for name in "ab":
        (tmp_path / name / "metrics.json").write_text(json.dumps({"config": {"data_dir": str(data_dir)}}))
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens")]
    info = ensemble.ensemble(ensemble.parse_args(argv))  # no --data-dir: the runs' own files
    assert info["dev"]["sts"] > 0.99
    recorded = json.loads((tmp_path / "ens" / "metrics.json").read_text())["config"]
    assert (recorded["sts_dev"], recorded["sts_test"]) == (
        str(data_dir / "sts-dev.csv"),
        str(data_dir / "sts-test-student.csv"),
    )
    # an ensemble of the ensemble finds them through its metrics.json too
    again = ensemble.ensemble(ensemble.parse_args([str(tmp_path / "ens"), "--out", str(tmp_path / "again")]))
    assert again["dev"] == info["dev"]

    other = tmp_path / "other"
    other.mkdir()
    write_gold(other, "sts", ids, y[::-1])  # another dev file: the members disagree
    (tmp_path / "b" / "metrics.json").write_text(
        json.dumps({"config": {"sts_dev": str(other / "sts-dev.csv"), "data_dir": str(data_dir)}})
    )
    argv[-1] = str(tmp_path / "ens2")
    message = (
        r"the runs were scored on different sts dev files \(.*a used .*sts-dev\.csv, .*b used .*other/sts-dev\.csv\)"
    )
    # both files are here and differ: other examples, which --data-dir would have let mix (it advised it)
    with pytest.raises(EnsembleError, match=message + ": their rows are not the same examples"):
        ensemble.ensemble(ensemble.parse_args(argv))
    (other / "sts-dev.csv").rename(other / "moved.csv")  # b's file is gone: which one it was, --data-dir says
    with pytest.raises(EnsembleError, match=message + ": pass --data-dir"):
        ensemble.ensemble(ensemble.parse_args(argv))
    assert ensemble.ensemble(ensemble.parse_args([*argv, "--data-dir", str(data_dir)]))["dev"] == info["dev"]


def test_a_dev_only_member_is_scored_on_dev_but_not_chosen(tmp_path, two_runs, capsys):
    ids, y = two_runs
    dev_only = write_run(tmp_path / "llm", {("sts", "dev"): (ids, y)}, metrics={"dev": {"sts": 1.0}})  # perfect on dev
    info = run_ensemble(tmp_path, [tmp_path / "a", dev_only])
    sts = info["tasks"]["sts"]
    assert sts["singles"][dev_only] == 1.0 and sts["dev_only"] == [dev_only]
    assert [m["run"] for m in sts["members"]] == [str(tmp_path / "a")]
    assert predictions.read_raw(tmp_path / "ens" / "predictions" / "sts-test-raw.csv") == (
        ["x", "z"],
        pytest.approx([1.0, 2.0]),
    )
    out = capsys.readouterr().out
    assert f"note: sts: {dev_only} has no test predictions ({dev_only}/predictions/sts-test-raw.csv)" in out
    # alone (no member has test predictions) it is a dev-only ensemble, as before
    alone = run_ensemble(tmp_path / "alone", [dev_only], data_dir=tmp_path)["tasks"]["sts"]
    assert alone["members"][0]["run"] == dev_only and alone["dev_only"] == []
    assert "no test predictions (" not in capsys.readouterr().out


def test_a_negative_seed_is_a_flag_error(capsys):
    with pytest.raises(SystemExit):
        ensemble.parse_args(["a", "--select-on", "0.5", "--seed", "-1"])
    assert "--seed must be 0 or more, got -1" in capsys.readouterr().err


# ----------------------------------------------------------------------------
# end to end: two tiny train.py runs, then ensemble.py on them


def test_end_to_end_on_two_tiny_runs(tmp_path):
    make_course_data(tmp_path / "data", n=32)
    train = [sys.executable, "train.py", "--model", str(TINY), "--data-dir", str(tmp_path / "data")]
    steps = ["--epochs", "1", "--steps-per-epoch", "3", "--batch-size", "8"]
    # two runs that differ by their seed, side by side
    jobs = [
        subprocess.Popen(
            [*train, *steps, "--seed", seed, "--out", str(tmp_path / seed)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for seed in ("1", "2")
    ]
    for job in jobs:
        log = job.communicate()[0].decode()
        assert job.returncode == 0, log
    cmd = [sys.executable, "ensemble.py", str(tmp_path / "1"), str(tmp_path / "2"), "--out", str(tmp_path / "ens")]
    cmd += ["--data-dir", str(tmp_path / "data")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ensemble per task" in done.stdout and "optimistic" in done.stdout

    info = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert json.loads((tmp_path / "ens" / "metrics.json").read_text())["dev"] == info["dev"]
    for task, prefix in (("sst", "s"), ("para", "p"), ("sts", "t")):
        for split, n in (("dev", 16), ("test", 8)):
            path = tmp_path / "ens" / "predictions" / f"{task}-{split}-output.csv"
            assert path.read_text().startswith(f"id \t {TASKS[task].prediction_column} \n")
            ids, values = predictions.read_output(path)
            assert sorted(ids) == sorted(f"{prefix}{split}{i}" for i in range(n))
            assert np.all((values >= 0) & (values <= (5 if task == "sts" else 4 if task == "sst" else 1)))
        # the written dev predictions score what ensemble.json says
        gold = {ex.id: ex.label for ex in data.read_examples(tmp_path / "data" / TASKS[task].files["dev"], task)}
        ids, values = predictions.read_output(tmp_path / "ens" / "predictions" / f"{task}-dev-output.csv")
        assert score(task, values, [gold[i] for i in ids]) == pytest.approx(info["dev"][task], abs=1e-6)

    # the same command again: --out now holds the ensemble, so a one-line error and nothing touched
    before = (tmp_path / "ens" / "ensemble.json").read_text()
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 1 and again.stdout == "" and len(again.stderr.strip().splitlines()) == 1
    assert again.stderr.startswith("error: --out ") and "already exists" in again.stderr
    assert (tmp_path / "ens" / "ensemble.json").read_text() == before


# ----------------------------------------------------------------------------
# "Tuning Up BERT" §5.5: per-task best checkpoints as members, and 1-4 models per task


def test_max_per_task_caps_the_distinct_members():
    # complementary_para: a + b get every row, c alone 70%. One member allowed: c; two: a + b.
    y, runs = complementary_para()
    assert exhaustive("para", runs, np.ones(4), y, max_members=1).tolist() == [0, 0, 1, 0]
    assert exhaustive("para", runs, np.ones(4), y, max_members=2).tolist() == [1, 1, 0, 0]
    # weighted_sts: greedy's best multiset 2a + b has two distinct runs; capped at one it keeps a alone
    y, runs = weighted_sts()
    assert greedy("sts", runs, np.ones(4), y, steps=20, max_members=1).tolist() == [1, 0, 0, 0]
    assert greedy("sts", runs, np.ones(4), y, steps=20, max_members=2).tolist() == [2, 1, 0, 0]


def test_max_per_task_flag(tmp_path):
    folders = write_dev_runs(tmp_path, "para", *complementary_para())
    info = run_ensemble(tmp_path, folders, "--max-per-task", "1")
    assert [m["run"] for m in info["tasks"]["para"]["members"]] == [folders[2]] and info["max_per_task"] == 1
    greedy_info = run_ensemble(
        tmp_path / "g", folders, "--max-per-task", "1", "--max-exhaustive", "0", data_dir=tmp_path
    )
    assert len(greedy_info["tasks"]["para"]["members"]) == 1
    with pytest.raises(SystemExit):
        ensemble.parse_args([*folders, "--max-per-task", "0"])


def test_task_bests_adds_the_runs_best_task_folders(tmp_path):
    # Run a holds predictions a (half right) and, in a/best-para/, its para-best epoch's b (the other
    # half): only with --task-bests can the ensemble pair them and get every row.
    y, runs = complementary_para()
    ids = [f"p{i}" for i in range(len(y))]
    write_gold(tmp_path, "para", ids, y)
    a = write_run(tmp_path / "a", {("para", "dev"): (ids, runs[0])})
    write_run(tmp_path / "a" / "best-para", {("para", "dev"): (ids, runs[1])})
    c = write_run(tmp_path / "c", {("para", "dev"): (ids, runs[2])})
    plain = run_ensemble(tmp_path / "plain", [a, c], data_dir=tmp_path)
    assert plain["tasks"]["para"]["candidates"] == [a, c] and plain["dev"]["para"] == 0.7
    info = run_ensemble(tmp_path / "bests", [a, c], "--task-bests", data_dir=tmp_path)
    best_para = str(tmp_path / "a" / "best-para")
    assert info["tasks"]["para"]["candidates"] == [a, best_para, c]
    assert [m["run"] for m in info["tasks"]["para"]["members"]] == [a, best_para] and info["dev"]["para"] == 1.0
    # a/best-para named as well: --task-bests adds it too, and it once counted twice without a word
    with pytest.raises(ensemble.EnsembleError, match=r"best-para: given twice, as --task-bests adds"):
        run_ensemble(tmp_path / "twice", [a, best_para, c], "--task-bests", data_dir=tmp_path)


def test_train_writes_per_task_best_predictions_that_ensemble_uses(tmp_path):
    import torch

    import predict
    import train

    make_course_data(tmp_path / "data", n=48)
    out = tmp_path / "run"
    flags = ["--model", str(TINY), "--data-dir", str(tmp_path / "data"), "--out", str(out), "--epochs", "3"]
    flags += ["--steps-per-epoch", "4", "--batch-size", "8", "--lr", "1e-3", "--seed", "1", "--eval-subset", "0"]
    metrics = train.train(train.parse_args([*flags, "--no-report"]))
    # with this seed para's and sts's best epochs are not best.pt's (sst's is): their folders, not sst's
    differ = {t for t, b in metrics["best_per_task"].items() if b["epoch"] != metrics["best_epoch"]}
    assert differ == {"para", "sts"} and not (out / "best-sst").exists()
    model, tokenizer, _ = predict.load_trained(out)
    for task in differ:
        model.load_state_dict(torch.load(out / f"best-{task}.pt", weights_only=True)["model"])
        gold = data.read_examples(tmp_path / "data" / TASKS[task].files["dev"], task, labelled=True)
        expected = predict.predict(model, task, data.encode(tokenizer, gold, model.encoding[task]))
        ids, raw = predictions.read_raw(out / f"best-{task}" / "predictions" / f"{task}-dev-raw.csv")
        assert ids == [ex.id for ex in gold] and np.allclose(raw, expected[1], atol=1e-5)
        # the epoch's dev score that made it the task's best (the full dev set here)
        assert score(task, expected[0], [ex.label for ex in gold]) == pytest.approx(
            metrics["best_per_task"][task]["score"]
        )
        assert (out / f"best-{task}" / "predictions" / f"{task}-test-raw.csv").is_file()
    info = run_ensemble(tmp_path, [out], "--task-bests", data_dir=tmp_path / "data")
    assert info["tasks"]["para"]["candidates"] == [str(out), str(out / "best-para")]
    assert info["tasks"]["sst"]["candidates"] == [str(out)]


# ----------------------------------------------------------------------------
# pinned by mutation testing: each test fails if ensemble.py's rule is changed as its comment says


def test_para_at_exactly_one_half_is_not_a_paraphrase():
    # P > 0.5, as heads.py decides (whose relu head gives P = 0.5 exactly for cos <= 0): (0.25 + 0.75) / 2 = 0.5 -> 0
    assert decide("para", np.array([0.5, 0.5000001, 0.4999999])).tolist() == [0, 1, 0]
    assert decide("para", combine(np.array([[0.25], [0.75]]), [1, 1])).tolist() == [0]


def test_members_rows_in_another_order_are_matched_by_id(tmp_path):
    # b's file lists the rows backwards: p3 0.3, p2 0.6, p1 0.4, p0 0.7. By id the mean with a is
    # p0 (0.9 + 0.7) / 2 = 0.8, p1 (0.2 + 0.4) / 2 = 0.3, p2 0.7, p3 0.2; by line it would be 0.6, 0.4, 0.6, 0.4.
    ids, y = ["p0", "p1", "p2", "p3"], [1, 0, 1, 0]
    write_gold(tmp_path, "para", ids, y)
    a = write_run(tmp_path / "a", {("para", "dev"): (ids, [0.9, 0.2, 0.8, 0.1])})
    b = write_run(tmp_path / "b", {("para", "dev"): (ids[::-1], [0.3, 0.6, 0.4, 0.7])})
    info = run_ensemble(tmp_path, [a, b], "--all")
    assert info["tasks"]["para"]["singles"] == {a: 1.0, b: 1.0}  # b by line: 0, 1, 0, 1, all wrong
    got_ids, raw = predictions.read_raw(tmp_path / "ens" / "predictions" / "para-dev-raw.csv")
    assert got_ids == ids and np.allclose(raw, [0.8, 0.3, 0.7, 0.2])


def test_ties_keep_the_smaller_then_earlier_choice():
    # a and b are the same perfect run: every subset and every greedy ensemble scores 1.0
    y = np.array([1, 0])
    runs = np.array([[0.9, 0.1], [0.9, 0.1], [0.1, 0.9]])
    assert exhaustive("para", runs, np.ones(3), y).tolist() == [1, 0, 0]
    # greedy: step 1 adds a (the first of a, b); steps 2 and 3 tie at 1.0 and are not kept
    assert greedy("para", runs, np.ones(3), y, steps=3).tolist() == [1, 0, 0]


def test_zero_weight_runs_are_not_candidates_even_alone():
    # y mostly 0; a (weight 1) is wrong on every row. b has weight 0: alone it would be the empty
    # average (0/0), which predicts class 0 and scores 3/4, so counting it a candidate would choose it.
    y = np.array([0, 0, 0, 1])
    runs = np.array([[0.9, 0.9, 0.9, 0.1], [0.1, 0.1, 0.1, 0.9]])
    assert exhaustive("para", runs, np.array([1.0, 0.0]), y).tolist() == [1, 0]
    assert greedy("para", runs, np.array([1.0, 0.0]), y, steps=2).tolist() == [1, 0]


def test_the_runs_with_test_predictions_must_not_all_weigh_0(tmp_path, two_runs):
    ids, y = two_runs
    llm = write_run(tmp_path / "llm", {("sts", "dev"): (ids, y)})  # dev only: never chosen, weight or not
    with pytest.raises(EnsembleError, match=r"--weights: every run with sts test predictions has weight 0"):
        run_ensemble(tmp_path, [tmp_path / "a", llm], "--weights", "0", "1")
    assert not (tmp_path / "ens").exists()


def test_course_files_from_the_one_run_that_records_them(tmp_path, two_runs):
    # a records its data dir, b (like synth.py label's metrics.json) records none: a's files are used
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"config": {"data_dir": str(tmp_path)}}))
    (tmp_path / "b" / "metrics.json").write_text("{}")
    argv = [str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ens")]
    info = ensemble.ensemble(ensemble.parse_args(argv))
    assert info["config"]["sts_dev"] == str(tmp_path / "sts-dev.csv")
    # both record the same missing folder: the message names the first run's metrics.json
    for name in "ab":
        (tmp_path / name / "metrics.json").write_text(json.dumps({"config": {"data_dir": str(tmp_path / "gone")}}))
    argv[-1] = str(tmp_path / "ens2")
    with pytest.raises(EnsembleError, match=r"gone/sts-dev\.csv: no such file \(the sts dev labels, from .*/a/metrics"):
        ensemble.ensemble(ensemble.parse_args(argv))


def test_course_files_default_to_data_when_no_run_records_them(tmp_path, two_runs, monkeypatch):
    (tmp_path / "data").mkdir()
    for name in ("sts-dev.csv", "sts-test-student.csv"):
        shutil.copy(tmp_path / name, tmp_path / "data" / name)
    monkeypatch.chdir(tmp_path)
    info = ensemble.ensemble(ensemble.parse_args(["a", "b", "--out", "ens"]))
    assert (info["config"]["sts_dev"], info["config"]["sts_test"]) == ("data/sts-dev.csv", "data/sts-test-student.csv")


def test_a_long_id_list_is_cut_to_three():
    assert ensemble.brief(["a", "b", "c"]) == "['a', 'b', 'c']"
    assert ensemble.brief(["a", "b", "c", "d"]) == "['a', 'b', 'c', ...]"


def test_subsets_are_scored_with_their_weights():
    # y = 1, 0; a = 0.9, 0.9 and b = 0.45, 0.2 are each right once. With weights 1 and 3 their mean is
    # (0.9 + 1.35) / 4 = 0.5625 -> 1 and (0.9 + 0.6) / 4 = 0.375 -> 0: both right; unweighted 0.675, 0.55: one.
    y = np.array([1, 0])
    runs = np.array([[0.9, 0.9], [0.45, 0.2]])
    assert exhaustive("para", runs, np.array([1.0, 3.0]), y).tolist() == [1, 1]
    assert exhaustive("para", runs, np.array([1.0, 1.0]), y).tolist() == [1, 0]
    # greedy: a (the first of two 0.5s), then b, weighted, 1.0; and with the runs in the other order
    assert greedy("para", runs, np.array([1.0, 3.0]), y, steps=2).tolist() == [1, 1]
    assert greedy("para", runs[::-1], np.array([3.0, 1.0]), y, steps=2).tolist() == [1, 1]
    assert greedy("para", runs, np.array([1.0, 1.0]), y, steps=2).tolist() == [1, 0]


def test_a_choice_is_made_even_when_every_ensemble_scores_0():
    # both runs are wrong on both rows, and so is every mean of them: accuracy 0 everywhere.
    # The first run is kept, alone (and all sts predictions constant: r is 0 for every ensemble).
    y = np.array([1, 0])
    runs = np.array([[0.1, 0.9], [0.2, 0.8]])
    assert exhaustive("para", runs, np.ones(2), y).tolist() == [1, 0]
    assert greedy("para", runs, np.ones(2), y, steps=3).tolist() == [1, 0]
    flat = np.array([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]])
    assert greedy("sts", flat, np.ones(2), np.array([0.0, 2.5, 5.0]), steps=3).tolist() == [1, 0]


def test_all_leaves_out_the_runs_of_weight_0(tmp_path):
    folders = write_dev_runs(tmp_path, "para", *complementary_para())
    info = run_ensemble(tmp_path, folders, "--all", "--weights", "1", "0", "2", "1")
    members = info["tasks"]["para"]["members"]
    assert [(m["run"], m["count"], m["weight"]) for m in members] == [
        (folders[0], 1, 1.0),
        (folders[2], 1, 2.0),
        (folders[3], 1, 1.0),
    ]


def test_max_exhaustive_counts_the_runs_that_can_be_chosen(tmp_path):
    # four runs, one of weight 0: three candidates, so --max-exhaustive 3 still tries every subset
    folders = write_dev_runs(tmp_path, "para", *complementary_para())
    info = run_ensemble(tmp_path, folders, "--weights", "1", "1", "1", "0", "--max-exhaustive", "3")
    assert info["tasks"]["para"]["method"] == "exhaustive"


def test_held_out_split_of_unequal_parts_and_a_tie_between_single_runs(tmp_path):
    # --select-on 0.7 of 10 rows: 7 to choose on, 3 held out. a and b are both right on the 7
    # choosing rows (a tie: the earlier, a, is the best single run, and {a} the ensemble); on the
    # held-out rows a is wrong once (2/3) and b never (3/3).
    n = 10
    choose, held = split_dev(n, 0.7, seed=0)
    y = np.arange(n) % 2
    a = np.where(np.arange(n) == held[0], 1 - y, y) * 0.8 + 0.1  # 0.9 or 0.1
    b = y * 0.6 + 0.2  # 0.8 or 0.2: always right
    runs = write_dev_runs(tmp_path, "para", y, [a, b])
    info = run_ensemble(tmp_path, runs, "--select-on", "0.7")
    h = info["tasks"]["para"]["held_out"]
    assert (h["choose_rows"], h["held_out_rows"]) == (7, 3)
    assert [m["run"] for m in info["tasks"]["para"]["members"]] == [runs[0]]
    assert h["best_single_run"] == runs[0] and h["best_single"] == pytest.approx(2 / 3)
    assert h["ensemble_on_choose_rows"] == 1.0 and h["ensemble"] == pytest.approx(2 / 3)
    assert info["dev"]["para"] == 0.9  # 9 of 10 rows


def test_the_dev_table_by_hand(tmp_path, capsys):
    # sst gold 0, 4, 2: a and b give every class 0.2 (argmax: class 0, right once, 1/3), synth is
    # certain and right (1.0); para: a and b 0.5 each, together 1.0. overall = plain mean (no sts).
    y, runs = complementary_para()
    ids = [f"p{i}" for i in range(len(y))]
    write_gold(tmp_path, "para", ids, y)
    write_gold(tmp_path, "sst", ["s0", "s1", "s2"], [0, 4, 2])
    uniform = np.full((3, 5), 0.2)
    a, b = (
        write_run(tmp_path / name, {("para", "dev"): (ids, r), ("sst", "dev"): (["s0", "s1", "s2"], uniform)})
        for name, r in zip("ab", runs)
    )
    synth = write_run(tmp_path / "synth", {("sst", "dev"): (["s0", "s1", "s2"], np.eye(5)[[0, 4, 2]])}, metrics={})
    info = run_ensemble(tmp_path, [a, b, synth])
    assert info["note"] == ensemble.OPTIMISM  # chosen on dev: never called honest
    w = len(synth)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1:7] == [
        f"{'':{w}}  sst           para          overall  plain mean",
        f"{a:{w}}  0.3333        0.5000        0.4167   0.4167",
        f"{b:{w}}  0.3333        0.5000        0.4167   0.4167",
        f"{synth:{w}}  1.0000        -             -",
        f"{'best single run per task':{w}}  1.0000        0.5000        0.7500   0.7500",
        f"{'ensemble per task':{w}}  1.0000 (1)    1.0000 (2)    1.0000   1.0000",
    ]
    assert lines[8:10] == [
        f"  sst   {synth}  (exhaustive over 3 runs; no test predictions)",
        f"  para  {a} + {b}  (exhaustive over 2 runs; no test predictions)",
    ]


def test_greedy_members_counted_twice_are_shown_so(tmp_path, capsys):
    folders = write_dev_runs(tmp_path, "sts", *weighted_sts())
    info = run_ensemble(tmp_path, folders, "--max-exhaustive", "3", "--select-on", "0.5")
    assert info["note"] == f"{ensemble.OPTIMISM}; held_out has the honest scores"
    counts = [m["count"] for m in info["tasks"]["sts"]["members"]]
    shown = " + ".join(f"2x {m['run']}" if m["count"] == 2 else m["run"] for m in info["tasks"]["sts"]["members"])
    assert 2 in counts and 1 in counts  # a run counted twice beside one counted once
    flags = ["--select-on", "0.5", "--max-exhaustive", "3", "--greedy-steps", "1"]  # one run alone: r < 1
    one = run_ensemble(tmp_path / "one", folders, *flags, data_dir=tmp_path)
    r = one["held_out"]["dev"]["sts"]  # the held-out overall maps r onto [0, 1]; the plain mean takes it as is
    assert r < 1 and one["held_out"]["overall"] == pytest.approx((r + 1) / 2) and one["held_out"]["plain_mean"] == r
    assert f"  sts   {shown}  (greedy over 4 runs; no test predictions)" in capsys.readouterr().out.splitlines()


def test_ensemble_json_overall_plain_mean_and_weights_by_hand(tmp_path):
    # sts gold 0, 1, 2, 3 and a run 0, 1, 3, 2: deviations -1.5, -0.5, 0.5, 1.5 and -1.5, -0.5, 1.5, 0.5,
    # r = (2.25 + 0.25 + 0.75 + 0.75) / 5 = 0.8; overall = (r + 1) / 2 = 0.9, plain mean = r = 0.8
    (a,) = write_dev_runs(tmp_path, "sts", [0, 1, 2, 3], [[0.0, 1.0, 3.0, 2.0]])
    info = run_ensemble(tmp_path, [a])
    assert info["dev"]["sts"] == pytest.approx(0.8) and info["weights"] == [1.0]
    assert (info["overall"], info["plain_mean"]) == (pytest.approx(0.9), pytest.approx(0.8))
    metrics = json.loads((tmp_path / "ens" / "metrics.json").read_text())
    assert (metrics["overall"], metrics["plain_mean"]) == (pytest.approx(0.9), pytest.approx(0.8))
    assert run_ensemble(tmp_path / "w", [a], "--weights", "2", data_dir=tmp_path)["weights"] == [2.0]


def test_every_run_of_one_task_at_weight_0_is_an_error(tmp_path, two_runs):
    ids, y = two_runs
    write_gold(tmp_path, "para", ["p0", "p1"], [0, 1])
    para = write_run(tmp_path / "para", {("para", "dev"): (["p0", "p1"], [0.2, 0.7])})  # para only
    with pytest.raises(EnsembleError, match=r"^--weights: every run with sts predictions has weight 0$"):
        run_ensemble(tmp_path, [para, tmp_path / "a"], "--weights", "1", "0")
    assert not (tmp_path / "ens").exists()
    # the weights of a task's runs are those of their places on the command line, not the first ones
    info = run_ensemble(tmp_path, [para, tmp_path / "a", tmp_path / "b"], "--all", "--weights", "1", "1", "3")
    assert [(m["run"], m["weight"]) for m in info["tasks"]["sts"]["members"]] == [
        (str(tmp_path / "a"), 1.0),
        (str(tmp_path / "b"), 3.0),
    ]


def test_an_empty_out_folder_is_used(tmp_path, two_runs):
    (tmp_path / "ens").mkdir()
    run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert (tmp_path / "ens" / "ensemble.json").is_file()


def test_the_test_file_is_the_one_recorded_by_runs_with_test_predictions(tmp_path, two_runs):
    # a records tmp_path (dev and test files); the dev-only llm records a folder with the same dev
    # file and no test file: the test ids come from a's, since llm's test file was never read
    ids, y = two_runs
    (tmp_path / "other").mkdir()
    shutil.copy(tmp_path / "sts-dev.csv", tmp_path / "other" / "sts-dev.csv")
    (tmp_path / "a" / "metrics.json").write_text(json.dumps({"config": {"data_dir": str(tmp_path)}}))
    llm = write_run(tmp_path / "llm", {("sts", "dev"): (ids, y)}, {"config": {"data_dir": str(tmp_path / "other")}})
    info = ensemble.ensemble(ensemble.parse_args([str(tmp_path / "a"), llm, "--out", str(tmp_path / "ens")]))
    assert info["config"]["sts_test"] == str(tmp_path / "sts-test-student.csv")


@pytest.mark.parametrize(
    "flags, message, boundary",
    [
        (["--max-exhaustive", "-1"], "--max-exhaustive must be at least 0", ["--max-exhaustive", "0"]),
        (["--greedy-steps", "0"], "--greedy-steps must be at least 1", ["--greedy-steps", "1"]),
        (["--max-per-task", "0"], "--max-per-task must be at least 1", ["--max-per-task", "1"]),
        (["--select-on", "1"], "--select-on must be a fraction between 0 and 1, got 1.0", ["--select-on", "0.99"]),
        (["--select-on", "0"], "--select-on must be a fraction between 0 and 1, got 0.0", ["--select-on", "0.01"]),
        (["--all", "--max-per-task", "2"], "--all chooses nothing on dev", ["--all"]),
    ],
)
def test_flag_values_out_of_range_are_refused(flags, message, boundary, capsys):
    with pytest.raises(SystemExit):
        ensemble.parse_args(["a", *flags])
    assert message in capsys.readouterr().err
    ensemble.parse_args(["a", *boundary])  # the nearest value allowed is


def test_an_out_that_cannot_be_renamed_to_for_another_reason_says_so(tmp_path, two_runs, monkeypatch):
    rename = ensemble.os.rename

    def denied(src, dst):  # e.g. a folder whose parent this user may not write: not "another process"
        if Path(dst) == tmp_path / "ens":
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        rename(src, dst)

    monkeypatch.setattr(ensemble.os, "rename", denied)
    with pytest.raises(PermissionError, match="Permission denied"):
        run_ensemble(tmp_path, [tmp_path / "a", tmp_path / "b"])
    assert not (tmp_path / "ens").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".ens")] == []
