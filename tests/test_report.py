"""Tests for report.py and the pieces behind it (analysis.py, pages.py) on tiny train.py runs and
hand-made run folders: every file is written, the figures hold what the run's files say, bad input
gets a one-line error."""

import dataclasses
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from conftest import make_course_data
from test_train import run

import analysis
import data
import ensemble
import pages
import predictions
import report
from tasks import TASK_NAMES, TASKS, overall, plain_mean

NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny run of two epochs (a), the data it used, and a copy of it (b) whose metrics.json says it
    ran with another learning rate and scored higher on sst: a second run for comparisons."""
    root = tmp_path_factory.mktemp("runs")
    make_course_data(root / "data")
    run(root / "data", root / "a")
    shutil.copytree(root / "a", root / "b", ignore=shutil.ignore_patterns("*.pt"))
    metrics = json.loads((root / "b" / "metrics.json").read_text())
    metrics["config"].update(lr=3e-4, out=str(root / "b"))
    metrics["dev"]["sst"] += 0.125
    for e in metrics["epochs"]:
        e["overall"] += 0.125 / 3
    (root / "b" / "metrics.json").write_text(json.dumps(metrics))
    return root


def svg_file(path):
    return ET.parse(path).getroot()


def md_row(md, first_cell):
    line = next(line for line in md.splitlines() if line.startswith(f"| {first_cell} |"))
    return [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]  # a cell's own pipes are escaped


def test_report_of_a_run_writes_every_file_and_the_page_is_self_contained(runs):
    index = pages.write_report(runs / "a")
    folder = runs / "a" / "report"
    assert index == folder / "index.html"
    names = ["curve-dev.svg", "curve-train-loss.svg", "sst-confusion.svg", "para-confusion.svg", "sts-scatter.svg"]
    page, md = index.read_text(), (folder / "report.md").read_text()
    for name in names:
        root = svg_file(folder / name)  # parses as XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert f"]({name})" in md
        assert (folder / name).read_text().split("\n", 1)[1].split("\n", 1)[0] in page  # inline in the page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_tables_and_curves_hold_the_values_of_metrics_json(runs):
    pages.write_report(runs / "a")
    metrics = json.loads((runs / "a" / "metrics.json").read_text())
    md = (runs / "a" / "report" / "report.md").read_text()
    for task in TASK_NAMES:
        row = md_row(md, TASKS[task].title)
        assert row[2] == f"{metrics['dev'][task]:.4f}"
        assert row[3] == row[2]  # recomputed from the prediction files, it agrees
    assert md_row(md, "course overall: mean(SST, QQP, (r + 1) / 2)")[2] == f"{overall(metrics['dev']):.4f}"
    assert md_row(md, "plain mean of the three")[2] == f"{plain_mean(metrics['dev']):.4f}"
    assert f"{metrics['overall']:.4f}" == f"{overall(metrics['dev']):.4f}"
    # Dev curve: one point per epoch for each task, the overall score and the plain mean; loss: one per epoch and task.
    epochs = metrics["epochs"]
    dev = svg_file(runs / "a" / "report" / "curve-dev.svg")
    assert all("plain_mean" in e for e in epochs)  # train.py records it, so it is drawn too
    assert len(dev.findall(".//s:circle[@class='point']", NS)) == len(epochs) * 5  # sst, para, sts, overall, plain
    loss = svg_file(runs / "a" / "report" / "curve-train-loss.svg")
    assert len(loss.findall(".//s:circle[@class='point']", NS)) == sum(len(e["train_loss"]) for e in epochs)
    titles = [t.text for t in dev.iter("{http://www.w3.org/2000/svg}title")]
    assert f"sst: {epochs[-1]['dev']['sst']:.4g} at {epochs[-1]['epoch']}" in titles


def test_confusion_matrices_count_every_dev_example(runs):
    pages.write_report(runs / "a")
    for task, k in (("sst", 5), ("para", 2)):
        root = svg_file(runs / "a" / "report" / f"{task}-confusion.svg")
        assert len(root.findall(".//s:rect[@class='cell']", NS)) == k * k
        counts = [
            int(t.text.strip("()")) for t in root.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "count"
        ]
        dev = data.read_examples(runs / "data" / TASKS[task].files["dev"], task)
        assert sum(counts) == len(dev) == 24
        # The diagonal holds the correct predictions: its share of all equals the dev accuracy.
        metrics = json.loads((runs / "a" / "metrics.json").read_text())
        assert sum(counts[i * k + i] for i in range(k)) / len(dev) == pytest.approx(metrics["dev"][task])


def test_sts_scatter_line_is_numpys_least_squares_fit(runs):
    pages.write_report(runs / "a")
    td = analysis.load_results(runs / "a").tasks["sts"]
    slope, intercept = analysis.least_squares(td.gold, td.pred)
    assert (slope, intercept) == pytest.approx(tuple(np.polyfit(td.gold, td.pred, 1)), abs=1e-9)
    root = svg_file(runs / "a" / "report" / "sts-scatter.svg")
    assert len(root.findall(".//s:circle[@class='point']", NS)) == len(td.ids) == 24
    md = (runs / "a" / "report" / "report.md").read_text()
    sign = "+" if intercept >= 0 else "−"
    assert f"predicted = {slope:.3f} × gold {sign} {abs(intercept):.3f}" in md
    r = json.loads((runs / "a" / "metrics.json").read_text())["dev"]["sts"]
    assert f"Pearson r = {r:.4f}" in md


def test_comparison_lists_every_run_with_its_flags_and_marks_the_best(runs, tmp_path):
    index = report.main([str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "cmp")])
    assert index == tmp_path / "cmp" / "index.html"
    md, page = (tmp_path / "cmp" / "report.md").read_text(), index.read_text()
    rows = {}
    for name, lr in (("a", "0.001"), ("b", "0.0003")):
        link = f"../../{runs.name}/{name}/report/index.html"  # each run's own report, relative to the page
        assert (runs / name / "report" / "index.html").is_file() and f'href="{link}"' in page
        rows[name] = md_row(md, f"[{name}]({link})")
        assert rows[name][1] == f"lr={lr}"  # the only flag that differs (the output folder aside)
        metrics = json.loads((runs / name / "metrics.json").read_text())
        assert [float(c.strip("*")) for c in rows[name][2:5]] == [round(metrics["dev"][t], 4) for t in TASK_NAMES]
        assert float(rows[name][7].strip("*")) == metrics["wall_time_s"]
        assert rows[name][8] == str(sum(metrics["examples_seen"].values()))
    overall_of = {name: float(row[5].strip("*")) for name, row in rows.items()}
    for name, row in rows.items():  # bold: the best overall (both, if they tie)
        assert row[5].startswith("**") == (overall_of[name] == max(overall_of.values()))
    curve = svg_file(tmp_path / "cmp" / "curve-overall.svg")
    assert len(curve.findall(".//s:polyline", NS)) == 2 and len(curve.findall(".//s:circle", NS)) == 4


def test_the_curves_caption_names_the_dev_rows_they_were_scored_on(runs, tmp_path):
    pages.write_comparison([runs / "a", runs / "b"], tmp_path / "cmp")
    subset = json.loads((runs / "a" / "metrics.json").read_text())["config"]["eval_subset"]
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert ("each run's --eval-subset rows" in md) == bool(subset) and ("on the full dev sets)" in md) != bool(subset)
    full = [copy_run(runs, tmp_path / name) for name in ("c", "d")]
    for folder in full:  # scored on all of dev after every epoch (--eval-subset 0)
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["config"]["eval_subset"] = 0
        (folder / "metrics.json").write_text(json.dumps(metrics))
    pages.write_comparison(full, tmp_path / "cmp0")
    md = (tmp_path / "cmp0" / "report.md").read_text()
    assert "Dev overall after each epoch (on the full dev sets)" in md and "--eval-subset rows" not in md


def test_runs_with_the_same_folder_name_are_told_apart_by_their_paths(runs, tmp_path):
    first, second = copy_run(runs, tmp_path / "x" / "run"), copy_run(runs, tmp_path / "y" / "run")
    pages.write_comparison([first, second], tmp_path / "cmp")
    md = (tmp_path / "cmp" / "report.md").read_text()
    assert f"| [{pages.md_escape(first)}](" in md and f"| [{pages.md_escape(second)}](" in md


def test_default_comparison_folder_is_beside_the_runs(runs):
    assert report.default_out([runs / "a", runs / "b"]) == runs.resolve() / "comparison"


# ----------------------------------------------------------------------------
# what a folder lacks


def copy_run(runs, dest):
    shutil.copytree(runs / "a", dest, ignore=shutil.ignore_patterns("*.pt", "report", "tokenizer"))
    return dest


def error_of(argv, capsys):
    with pytest.raises(SystemExit) as e:
        report.main(argv)
    message = str(e.value)
    assert message.startswith("error: ") and "\n" not in message
    return message


def test_folders_without_metrics_or_predictions_get_a_one_line_error(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert "no metrics.json" in error_of([str(tmp_path / "empty")], capsys)
    assert "no such run folder" in error_of([str(tmp_path / "nowhere")], capsys)
    bare = copy_run(runs, tmp_path / "bare")
    shutil.rmtree(bare / "predictions")
    assert f"{bare}: no predictions/ folder" in error_of([str(bare)], capsys)
    (bare / "predictions").mkdir()
    assert "no dev predictions" in error_of([str(bare)], capsys)
    broken = copy_run(runs, tmp_path / "broken")
    (broken / "metrics.json").write_text("{ not json")
    assert "metrics.json: not valid JSON" in error_of([str(broken)], capsys)
    (broken / "metrics.json").write_text('{"dev": {"sst": "high"}}')
    assert "metrics.json: 'dev' should map names to numbers" in error_of([str(broken)], capsys)
    (broken / "metrics.json").write_text('{"epochs": [{"epoch": 1, "dev": [0.5]}]}')
    assert "metrics.json: epochs[0].dev should map tasks to numbers" in error_of([str(broken)], capsys)
    (broken / "metrics.json").write_text("{}")  # an unfinished run's: the report still comes (range() traceback once)
    report.main([str(broken), "--data-dir", str(runs / "data")])
    assert "metrics.json has no config and no other entries" in (broken / "report" / "report.md").read_text()
    (broken / "predictions" / "sst-dev-output.csv").unlink()
    assert "sst-dev-output.csv: no such file" in error_of([str(broken)], capsys)
    # One bad folder among several stops the comparison with the same error.
    assert "no metrics.json" in error_of([str(runs / "a"), str(tmp_path / "empty")], capsys)


def test_a_comparison_never_goes_into_a_run_it_compares(runs, tmp_path, capsys):
    a, b = copy_run(runs, tmp_path / "a"), copy_run(runs, tmp_path / "b")
    report.main([str(a)])
    own = (a / "report" / "report.md").read_text()
    for argv, message in [
        ([a, b, "--out", a / "report"], f"--out {a / 'report'} is inside the run {a}"),  # it replaced a's page
        ([a, b, "--out", b], f"--out {b} is inside the run {b}"),
        ([a, a], f"{a} is given twice"),  # (its default --out was a/comparison)
        ([a, b, "--out", runs / "b" / "cmp"], f"--out {runs / 'b' / 'cmp'} is inside the run {(runs / 'b').resolve()}"),
    ]:
        assert message in error_of([str(x) for x in argv], capsys)
    assert (a / "report" / "report.md").read_text() == own and not (a / "comparison").exists()
    assert not (runs / "b" / "cmp").exists()  # a run not compared is no place for the page either


def test_predictions_from_another_dev_file_are_an_error(runs, tmp_path, capsys):
    other = tmp_path / "other"
    make_course_data(other, seed=1)
    lines = (other / "ids-sst-dev.csv").read_text().splitlines()
    (other / "ids-sst-dev.csv").write_text("\n".join(lines[:1] + [x.replace("\tsdev", "\tzz") for x in lines[1:]]))
    message = error_of([str(runs / "a"), "--data-dir", str(other)], capsys)
    assert "24 of 24 ids (first 'sdev" in message and f"are not in {other / 'ids-sst-dev.csv'}" in message


def test_missing_dev_files_degrade_and_data_dir_finds_them(runs, tmp_path, capsys):
    moved = copy_run(runs, tmp_path / "moved")
    metrics = json.loads((moved / "metrics.json").read_text())
    metrics["config"]["data_dir"] = str(tmp_path / "gone")
    (moved / "metrics.json").write_text(json.dumps(metrics))
    report.main([str(moved)])
    md = (moved / "report" / "report.md").read_text()
    assert (
        "## Not in this report" in md
        and f"dev file {pages.md_escape(tmp_path / 'gone' / 'sts-dev.csv')} not found" in md
    )
    assert not (moved / "report" / "sst-confusion.svg").exists()
    assert md_row(md, TASKS["sst"].title)[2] == f"{metrics['dev']['sst']:.4f}"  # the metrics are still shown
    assert "not found (pass --data-dir)" in capsys.readouterr().err
    report.main([str(moved), "--data-dir", str(runs / "data")])
    assert (moved / "report" / "sst-confusion.svg").is_file()
    assert "Not in this report" not in (moved / "report" / "report.md").read_text()


def test_history_extras_are_shown_when_present(runs, tmp_path):
    extra = copy_run(runs, tmp_path / "extra")
    metrics = json.loads((extra / "metrics.json").read_text())
    for e in metrics["epochs"]:
        e["train_acc"] = {"sst": 0.25 * e["epoch"], "para": 0.5}
        e["plain_mean"] = plain_mean(e["dev"])
    (extra / "metrics.json").write_text(json.dumps(metrics))
    pages.write_report(extra)
    acc = svg_file(extra / "report" / "curve-train-acc.svg")
    assert len(acc.findall(".//s:circle[@class='point']", NS)) == 2 * len(metrics["epochs"])
    dev = svg_file(extra / "report" / "curve-dev.svg")
    assert len(dev.findall(".//s:circle[@class='point']", NS)) == 5 * len(metrics["epochs"])
    assert "No training accuracy" not in (extra / "report" / "report.md").read_text()


def test_an_ensemble_folder_with_sst_only_shows_what_is_there(runs, tmp_path):
    # What ensemble.py writes: predictions/, metrics.json without config or history, and ensemble.json.
    folder = tmp_path / "ens"
    shutil.copytree(runs / "a" / "predictions", folder / "predictions")
    for name in ("para", "sts"):
        for path in (folder / "predictions").glob(f"{name}-*"):
            path.unlink()
    (folder / "metrics.json").write_text(json.dumps({"dev": {"sst": 0.5}, "overall": 0.5, "plain_mean": 0.5}))
    members = [{"run": "runs/a", "count": 2, "weight": 1.0}, {"run": "runs/b", "count": 1, "weight": 1.0}]
    sst = {"method": "exhaustive", "members": members, "dev": 0.5, "singles": {"runs/a": 0.25, "runs/b": 0.375}}
    ensemble = {"runs": ["runs/a", "runs/b"], "tasks": {"sst": sst}, "dev": {"sst": 0.5}, "note": "optimistic"}
    (folder / "ensemble.json").write_text(json.dumps(ensemble))
    pages.write_report(folder, data_dir=runs / "data")
    md = (folder / "report" / "report.md").read_text()
    assert "No per-epoch history: metrics.json has no epochs." in md
    assert "para: no dev predictions" in md and "sts: no dev predictions" in md
    assert md_row(md, TASKS["sst"].title)[2] == "0.5000"
    assert md_row(md, "sst") == ["sst", "exhaustive", "runs/a ×2, runs/b ×1", "0.5000", "0.3750"]
    assert "\nOptimistic.\n" in md
    assert md_row(md, "overall")[1] == "0.5"  # metrics.json's other entries, as there is no config
    assert (folder / "report" / "sst-confusion.svg").is_file()
    assert not (folder / "report" / "sts-scatter.svg").exists()


# ----------------------------------------------------------------------------
# mistakes, per-class scores: small cases checked by hand


def hand_run(tmp_path, sst_probs, para_probs, sentences=("<b>bold</b> & a | pipe", "plain one", 'say "hi"', "four")):
    """A run folder whose dev predictions are given; dev sentences hold HTML and Markdown specials."""
    folder, dev = tmp_path / "hand", tmp_path / "hand-data"
    dev.mkdir(parents=True)
    ids = [f"x{i}" for i in range(4)]
    gold = [0, 1, 2, 1]
    sst = ["\tid\tsentence\tsentiment"] + [f"{i}\t{ids[i]}\t{sentences[i]}\t{gold[i]}" for i in range(4)]
    (dev / TASKS["sst"].files["dev"]).write_text("\n".join(sst) + "\n")
    para = ["\tid\tsentence1\tsentence2\tis_duplicate"] + [f"{i}\t{ids[i]}\ta{i}\tb{i}\t{i % 2}" for i in range(4)]
    (dev / TASKS["para"].files["dev"]).write_text("\n".join(para) + "\n")
    sst_probs, para_probs = np.array(sst_probs), np.array(para_probs)
    predictions.write(folder / "predictions", "sst", "dev", ids, sst_probs.argmax(1), sst_probs)
    predictions.write(folder / "predictions", "para", "dev", ids, (para_probs >= 0.5).astype(int), para_probs)
    metrics = {"dev": {}, "config": {"data_dir": str(dev)}}
    (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


def test_most_confident_mistakes_come_first_and_their_sentences_are_escaped(tmp_path):
    sst = [[0.1, 0.9, 0, 0, 0], [0.2, 0.7, 0.1, 0, 0], [0.6, 0.1, 0.3, 0, 0], [0.8, 0.1, 0.1, 0, 0]]
    # gold 0 1 2 1: x0 wrong at 0.9, x1 right, x2 wrong at 0.6, x3 wrong at 0.8
    para = [0.3, 0.45, 0.95, 0.05]  # gold 0 1 0 1: x1 wrong at 0.55, x2 wrong at 0.95, x3 wrong at 0.95
    folder = hand_run(tmp_path, sst, para)
    run = analysis.load_results(folder)
    assert analysis.confident_mistakes(run.tasks["sst"], 10) == [0, 3, 2]
    assert analysis.confident_mistakes(run.tasks["sst"], 2) == [0, 3]
    assert analysis.confident_mistakes(run.tasks["para"], 10) == [2, 3, 1]
    # x0, right at 0.7, is more confident than x1: it is passed over, not counted among the 3
    assert analysis.confident_mistakes(run.tasks["para"], 3) == [2, 3, 1]
    report.main([str(folder), "--mistakes", "2"])
    md = (folder / "report" / "report.md").read_text()
    assert md_row(md, "x0") == ["x0", "&lt;b&gt;bold&lt;/b&gt; &amp; a \\| pipe", "0", "1", "0.900", "0.100"]
    assert md_row(md, "x3")[1:] == ["four", "1", "0", "0.800", "0.100"]
    assert "| x2 | say" not in md  # only 2 per task
    page = (folder / "report" / "index.html").read_text()
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; a | pipe" in page and "<b>bold" not in page


def test_per_class_precision_recall_f1_by_hand():
    # gold 0: 3 right, 1 called 1; gold 1: 2 called 0, 4 right
    (p0, r0, f0, s0), (p1, r1, f1, s1) = analysis.per_class([[3, 1], [2, 4]])
    assert (p0, r0, s0) == (pytest.approx(3 / 5), pytest.approx(3 / 4), 4)
    assert (p1, r1, s1) == (pytest.approx(4 / 5), pytest.approx(4 / 6), 6)
    assert f0 == pytest.approx(2 * 0.6 * 0.75 / 1.35)
    assert analysis.per_class([[0, 0], [1, 0]])[0][:3] == (0.0, 0.0, 0.0)  # no 0 / 0
    # class 1: one example, never predicted: precision 0 / 0 is 0, not nan (nor is class 0's recall)
    assert analysis.per_class([[0, 0], [1, 0]]) == [(0.0, 0.0, 0.0, 0), (0.0, 0.0, 0.0, 1)]
    # the macro mean: each class once, whatever its support (a class with none too)
    scores = [(1.0, 0.25, 0.4, 4), (0.0, 0.0, 0.0, 0), (0.5, 0.5, 0.5, 6)]
    assert analysis.macro_mean(scores) == pytest.approx((0.5, 0.25, 0.3))


def test_confusion_matrix_by_hand():
    assert analysis.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], 3).tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_the_macro_mean_is_of_the_per_class_values_not_of_their_rounded_figures(tmp_path):
    # para, 17 pairs: gold 0 six called 0, five called 1; gold 1 four called 0, two called 1
    gold, pred = [0] * 11 + [1] * 6, [0] * 6 + [1] * 5 + [0] * 4 + [1] * 2
    dev, ids = tmp_path / "data", [f"p{i}" for i in range(17)]
    dev.mkdir()
    rows = [f"{i}\t{ids[i]}\ta{i}\tb{i}\t{gold[i]}" for i in range(17)]
    (dev / TASKS["para"].files["dev"]).write_text("\n".join(["\tid\tsentence1\tsentence2\tis_duplicate", *rows]) + "\n")
    folder = tmp_path / "run"
    predictions.write(folder / "predictions", "para", "dev", ids, np.array(pred), np.array(pred) * 0.5 + 0.25)
    (folder / "metrics.json").write_text(json.dumps({"dev": {}, "config": {"data_dir": str(dev)}}))
    report.main([str(folder)])
    md = (folder / "report" / "report.md").read_text()
    # precision 6/10 and 2/7, recall 6/11 and 2/6, F1 2*6/21 and 2*2/13; their means:
    # 0.442857, 0.439394, 0.439560 (the mean of the rounded 0.6000 and 0.2857 read 0.4428)
    assert md_row(md, "macro mean") == ["macro mean", "", "0.4429", "0.4394", "0.4396", "17"]
    assert md_row(md, "1")[2:] == ["0.2857", "0.3333", "0.3077", "6"]


def test_least_squares_by_hand():
    assert analysis.least_squares([0, 1, 2], [1, 3, 5]) == (2.0, 1.0)  # on the line y = 2x + 1 (lists too)
    # means 1.5 and 1.5; sum dx*dy = 2.25 - 0.25 - 0.25 + 2.25 = 4, sum dx^2 = 5: slope 0.8, 1.5 - 0.8 * 1.5 = 0.3
    assert analysis.least_squares([0, 1, 2, 3], [0, 2, 1, 3]) == pytest.approx((0.8, 0.3))
    # every gold score the same (a tiny dev set): a flat line through the mean, not a division by 0
    assert analysis.least_squares([2, 2, 2], [1, 2, 4]) == (0.0, pytest.approx(7 / 3))


def test_confusion_matrices_have_every_class_even_one_never_seen(tmp_path):
    folder = hand_run(tmp_path, SST, PARA)  # sst gold 0 1 2 1, predicted 1 1 0 0: no 3 or 4 anywhere
    run = analysis.load_results(folder)
    assert analysis.confusion_size(run.tasks["sst"]) == 5  # the five columns of the probabilities
    report.main([str(folder)])
    assert len(svg_file(folder / "report" / "sst-confusion.svg").findall(".//s:rect[@class='cell']", NS)) == 25
    # para where every gold label and prediction is 0: still paraphrase or not, 2 x 2
    para = run.tasks["para"]
    no_pairs = dataclasses.replace(
        para,
        pred=np.zeros(4, dtype=int),
        raw=np.full(4, 0.25),
        examples=[dataclasses.replace(ex, label=0) for ex in para.examples],
    )
    assert analysis.confusion_size(no_pairs) == 2


def test_confidence_is_the_probability_of_the_predicted_class_or_the_error(tmp_path):
    run = analysis.load_results(hand_run(tmp_path, SST, PARA))
    # sst: the probability of the argmax; para: P(paraphrase) where 1 was predicted, 1 - P where 0
    assert analysis.confidence(run.tasks["sst"]) == pytest.approx([0.9, 0.7, 0.6, 0.8])
    assert analysis.confidence(run.tasks["para"]) == pytest.approx([0.7, 0.55, 0.95, 0.95])
    # sts: the size of the error; every prediction counts as a mistake, the largest first
    ids, pred, raw = ["s0", "s1", "s2"], np.array([1.0, 5.0, 2.5]), np.array([1.0, 5.6, 2.5])  # 5.6 scored as 5
    examples = [data.Example(i, "a", "b", gold) for i, gold in zip(ids, (1.5, 1.0, 2.5))]
    sts = analysis.TaskDev("sts", ids, pred, raw, Path("sts-dev.csv"), examples)
    assert analysis.confidence(sts) == pytest.approx([0.5, 4.0, 0.0])  # the error of what was scored
    assert analysis.confident_mistakes(sts, 2) == [1, 0] and analysis.confident_mistakes(sts, 5) == [1, 0, 2]


def test_predictions_for_part_of_the_dev_file_in_another_order_are_joined_by_id(tmp_path):
    folder = hand_run(tmp_path, SST, PARA)
    ids, probs = ["x3", "x0", "x1"], np.array([SST[3], SST[0], SST[1]])  # x2 has no prediction
    predictions.write(folder / "predictions", "sst", "dev", ids, probs.argmax(1), probs)
    run = analysis.load_results(folder)
    dev = tmp_path / "hand-data"
    assert run.absent[0] == f"sst: predictions for 3 of the 4 examples of {dev / 'ids-sst-dev.csv'}"
    assert not any(note.startswith("para:") for note in run.absent)  # all 4 of para's
    sst = run.tasks["sst"]
    assert [ex.id for ex in sst.examples] == ids and sst.gold.tolist() == [1, 0, 1]  # dev gold: 0 1 2 1
    assert analysis.confusion_matrix(sst.gold, sst.pred, 5)[1].tolist() == [1, 1, 0, 0, 0]  # x3 as 0, x1 as 1


def test_bad_flags(runs, capsys):
    assert "--mistakes" in error_of([str(runs / "a"), "--mistakes", "-1"], capsys)
    assert "--out is for the comparison" in error_of([str(runs / "a"), "--out", "x"], capsys)


# ----------------------------------------------------------------------------
# hostile input: values out of range, broken files, Markdown in the data (issue 26)

SST = [[0.1, 0.9, 0, 0, 0], [0.2, 0.7, 0.1, 0, 0], [0.6, 0.1, 0.3, 0, 0], [0.8, 0.1, 0.1, 0, 0]]
PARA = [0.3, 0.45, 0.95, 0.05]


def replace_in(path, old, new):
    text = path.read_bytes()
    assert old in text
    path.write_bytes(text.replace(old, new))


@pytest.mark.parametrize(
    "file, old, new, message",
    [
        ("predictions/sst-dev-output.csv", b"x1 , 1 ", b"x1 , -1 ", r"sst-dev-output\.csv:3: expected a class 0\.\.4"),
        ("predictions/sst-dev-output.csv", b"x1 , 1 ", b"x1 , 2.7 ", r"sst-dev-output\.csv:3: expected a class 0\.\.4"),
        ("predictions/sst-dev-output.csv", b"x1 , 1 ", b"x1 , 7 ", r"sst-dev-output\.csv:3: expected a class 0\.\.4"),
        ("predictions/sst-dev-output.csv", b"x1 , 1 ", b"x1 , nan ", r"sst-dev-output\.csv:3: expected a class 0\.\.4"),
        ("predictions/para-dev-output.csv", b"x1 , 0 ", b"x1 , 0.7 ", r"para-dev-output\.csv:3: expected 0 or 1"),
        ("predictions/sst-dev-raw.csv", b"x1\t", b"x\xff1\t", r"sst-dev-raw\.csv:3: not UTF-8 text \(byte 0xff"),
        ("metrics.json", b'"dev": {}', b'"dev": {}, "best_epoch": 1, "epochs": null', r"'epochs' should be a list"),
        ("metrics.json", b'"dev": {}', b'"dev": {}, "epochs": [{"dev": {}}]', r"epochs\[0\] should be an object with"),
        ("metrics.json", b'"dev": {}', b'"dev": {}, "epochs": [3]', r"epochs\[0\] should be an object with an integer"),
        ("metrics.json", b'"dev": {}', b'"dev": {"sst": NaN}', r"metrics\.json: holds NaN, which is not a number"),
        ("metrics.json", b'"dev": {}', b'"dev": {"sst": 1e400}', r"metrics\.json: holds 1e400, a number beyond"),
        ("../hand-data/ids-sst-dev.csv", b"plain one\t1", b"plain one\t7", r"ids-sst-dev\.csv:3: sentiment 7 is not"),
    ],
)
def test_bad_values_in_a_run_are_one_line_errors(tmp_path, capsys, file, old, new, message):
    folder = hand_run(tmp_path, SST, PARA)
    replace_in(folder / file, old, new)
    assert re.search(message, error_of([str(folder), "--mistakes", "100"], capsys))
    assert not (folder / "report").exists()


def test_md_escape_shows_the_text_as_is():
    assert pages.md_escape("![x](http://e.org/x.png)") == "\\!\\[x\\](http://e.org/x.png)"  # no image, no fetch
    assert pages.md_escape("<img src=x> & *a* _b_ `c` ~~d~~ | e") == (
        "&lt;img src=x&gt; &amp; \\*a\\* \\_b\\_ \\`c\\` \\~\\~d\\~\\~ \\| e"
    )
    assert [pages.md_escape(t) for t in ("# h", "- i", "1. i", "-0.25", "0.5000")] == [
        "\\# h",
        "\\- i",
        "1\\. i",
        "-0.25",
        "0.5000",
    ]
    assert pages.md_escape("a\nb") == "a b"  # one line: a table row stays one row


def test_markdown_in_a_dev_sentence_is_shown_not_rendered(tmp_path):
    sentences = ("![x](http://e.org/x.png) *loud*", "plain one", "two", "three")
    folder = hand_run(tmp_path, SST, PARA, sentences)
    report.main([str(folder)])
    md = (folder / "report" / "report.md").read_text()
    assert "![x](http" not in md and "*loud*" not in md
    assert md_row(md, "x0")[1] == "\\!\\[x\\](http://e.org/x.png) \\*loud\\*"


def test_a_run_folder_named_with_markup_is_escaped_in_the_link(runs, tmp_path):
    name = "x)](javascript:alert(1)) <b>"
    odd, plain = copy_run(runs, tmp_path / name), copy_run(runs, tmp_path / "plain")
    pages.write_comparison([odd, plain], tmp_path / "cmp")
    md, page = (tmp_path / "cmp" / "report.md").read_text(), (tmp_path / "cmp" / "index.html").read_text()
    href = "../x%29%5D%28javascript%3Aalert%281%29%29%20%3Cb%3E/report/index.html"
    assert f"| [x)\\](javascript:alert(1)) &lt;b&gt;]({href}) |" in md and f'href="{href}"' in page
    assert "<b>" not in md and "<b>" not in page.replace("<body>", "")


def test_a_run_of_fewer_tasks_is_not_best_overall(runs, tmp_path):
    sst_only = copy_run(runs, tmp_path / "sst-only")
    for path in (sst_only / "predictions").glob("[ps][at]*-*"):  # para-* and sts-*
        path.unlink()
    metrics = json.loads((sst_only / "metrics.json").read_text())
    metrics["dev"] = {"sst": 0.99}  # beats every run's overall and plain mean, on one task
    (sst_only / "metrics.json").write_text(json.dumps(metrics))
    pages.write_comparison([runs / "a", runs / "b", sst_only], tmp_path / "cmp")
    md = (tmp_path / "cmp" / "report.md").read_text()
    mine = next(line for line in md.splitlines() if "[sst-only]" in line)
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", mine[1:-1])]
    assert cells[2] == "**0.9900**"  # the best sst, compared with the runs' sst
    assert cells[5:7] == ["0.9900 (sst only)", "0.9900 (sst only)"]  # a mean, but not of the same tasks
    full = [md_row(md, f"[{n}](../../{runs.name}/{n}/report/index.html)") for n in "ab"]
    assert any(row[5].startswith("**") for row in full) and any(row[6].startswith("**") for row in full)
    assert "compared only among the runs with every task (sst, para, sts)" in md


def test_recorded_course_files_of_train_synth_and_ensemble_runs():
    assert analysis.recorded_file({"data_dir": "d"}, "para", "test") == Path("d/quora-test-student.csv")
    assert analysis.recorded_file({"data_dir": "d", "sst_dev": "my.csv"}, "sst", "dev") == Path("my.csv")
    assert analysis.recorded_file({"data_dir": "d", "sst_test": "none"}, "sst", "test") is None
    # an empty entry names no file: --sst-dev "" is the --data-dir's file, --data-dir "" none (not "./")
    assert analysis.recorded_file({"data_dir": "d", "sst_dev": ""}, "sst", "dev") == Path("d/ids-sst-dev.csv")
    assert analysis.recorded_file({"data_dir": ""}, "sst", "dev") is None
    synth = {"dev": {"input": None, "data_dir": "e"}, "test": {"input": "t.csv", "data_dir": "e"}}
    assert analysis.recorded_file(synth, "sst", "dev") == Path("e/ids-sst-dev.csv")
    assert analysis.recorded_file(synth, "sst", "test") == Path("t.csv")
    assert analysis.recorded_file(synth, "para", "dev") is None and analysis.recorded_file({}, "sst", "dev") is None


def test_an_ensemble_is_reported_on_the_files_its_members_recorded(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/ here: the files come from the runs' metrics.json
    ensemble.ensemble(ensemble.parse_args([str(runs / "a"), str(runs / "b"), "--out", str(tmp_path / "ens")]))
    report.main([str(tmp_path / "ens")])
    md = (tmp_path / "ens" / "report" / "report.md").read_text()
    assert "Not in this report" not in md and (tmp_path / "ens" / "report" / "sst-confusion.svg").is_file()


def test_a_single_task_runs_overall_says_it_covers_one_task(tmp_path):
    folder = hand_run(tmp_path, SST, PARA)
    metrics = json.loads((folder / "metrics.json").read_text())
    (folder / "metrics.json").write_text(json.dumps({**metrics, "dev": {"sst": 0.5}}))
    report.main([str(folder)])
    md = (folder / "report" / "report.md").read_text()
    # (it read "course overall: mean(SST, QQP, (r + 1) / 2)  0.5000", the SST accuracy alone)
    assert md_row(md, "course overall: mean(SST, QQP, (r + 1) / 2) (sst only)")[2] == "0.5000"
    assert md_row(md, "plain mean of the three (sst only)")[2] == "0.5000"
