"""ablation_report.py: the page of reproduce.py's ablations from finished runs' metrics.json, no
training needed. The numbers in the tables, the sentence that ranks the rows, the charts; the page
written through pages.py into the results folder as it is."""

import json
import re

import pytest

import ablation_report
import recipes
import reproduce
import svg


def test_the_tables_show_the_mean_and_std_of_the_seeds_metrics_json(tmp_path, data_dir):
    """Four hand-written metrics.json (two rows of the sst-loss table, two seeds each), no ensembles:
    the table's cells are their means ± sample std, the chart is drawn, and a results folder that is a
    link (to a bigger disk, say) is written through, never replaced by a folder."""
    disk = tmp_path / "disk"
    disk.mkdir()
    results = tmp_path / "results"
    results.symlink_to(disk)
    flags = ["--data-dir", str(data_dir), "--results", str(results), "--quick", "--only", "sst-loss", "--seeds", "2"]
    args = reproduce.parse_args(flags)
    runs = reproduce.plan_runs(args)
    assert len(runs) == 4
    for run in runs:
        dev = {"sst": 0.5 + 0.1 * run.seed, "para": 0.75, "sts": 0.25 if "dual" in run.flags else 0.5}
        config = {"epochs": 1, "steps_per_epoch": 3}
        metrics = {"dev": dev, "config": config, "wall_time_s": 60.0 + run.seed}
        run.folder(results).mkdir(parents=True)
        (run.folder(results) / "metrics.json").write_text(json.dumps(metrics))
    (ablation,) = reproduce.selected(args)
    chosen = [(ablation, [(row, reproduce.flags_of(args, row)) for row in reproduce.rows_of(ablation, True)])]
    path = ablation_report.write_ablation_report(args, chosen, runs, [])
    assert path == results / "REPORT.md" and results.is_symlink() and (disk / "REPORT.html").is_file()
    cells = [line.strip("| ").split(" | ") for line in path.read_text().splitlines() if "seeds)" in line]
    rows = {row[0]: row[1:] for row in cells}
    assert rows["ce (2 seeds)"][:3] == ["0.5500 ± 0.0707", "0.7500 ± 0.0000", "0.5000 ± 0.0000"]
    assert rows["dual (2 seeds)"][2] == "0.2500 ± 0.0000" and rows["dual (2 seeds)"][-1] == "1m00s"
    assert (disk / "charts" / "sst-loss.svg").read_text().count('class="bar"') == 4  # overall, plain mean x 2
    assert "No finished runs to combine." in path.read_text()
    html = (disk / "REPORT.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 1  # pages.to_html: the chart inline


def test_mean_and_sample_std_over_seeds_and_the_sentence_from_the_numbers():
    assert ablation_report.stat([0.5, 0.7, None]) == pytest.approx((0.6, 0.1414214))
    assert ablation_report.fmt_stat(ablation_report.stat([0.5, 0.7]), 2) == "0.6000 ± 0.1414"
    assert ablation_report.fmt_stat(ablation_report.stat([0.5]), 1) == "0.5000"  # no std from one seed
    schedules = next(a for a in recipes.read_ablations() if a.name == "schedules")
    annealed, uniform = schedules.rows[:2]
    rows = [(annealed, {"overall": (0.70, 0.01)}, 3), (uniform, {"overall": (0.72, 0.01)}, 3)]
    text = ablation_report.sentence(schedules, rows, 3)
    assert text.startswith(
        "Here uniform (Tuning Up) came out best (overall 0.7200); Tuning Up BERT T4 found annealed (Tuning Up) best"
    )
    assert "so we differ, which may be down to the smaller 6-layer model" in text and "within one std" not in text
    rows[1] = (uniform, {"overall": (0.705, 0.01)}, 3)
    assert "(the gap to the next is within one std)" in ablation_report.sentence(schedules, rows, 3)
    # rows of two setups are ranked within their own setup, each against its report's table
    round_robin, staggered = schedules.rows[2:4]
    rows += [(round_robin, {"overall": (0.60, 0.01)}, 3), (staggered, {"overall": (0.65, 0.01)}, 3)]
    text = ablation_report.sentence(schedules, rows, 3)
    assert text.startswith("tuning-up-bert setup: Here uniform (Tuning Up) came out best (overall 0.7050)")
    best = "staggered, 2 QQP epochs first (BERT and Beyond)"
    assert f"bert-and-beyond setup: Here {best} came out best (overall 0.6500); " in text
    assert f"BERT and Beyond T2 found {best} best, so we agree" in text
    # One finished row, or a tie, names no winner and no verdict (it called the first listed best)
    one = ablation_report.sentence(schedules, [(annealed, {"overall": (0.70, 0.0)}, 1), (uniform, {}, 0)], 1)
    assert one == "Here only annealed (Tuning Up) has finished: nothing to rank yet."
    tie = [(annealed, {"overall": (0.70, 0.0)}, 1), (uniform, {"overall": (0.70, 0.0)}, 1)]
    assert ablation_report.sentence(schedules, tie, 1) == (
        "Here annealed (Tuning Up) and uniform (Tuning Up) tie (overall 0.7000), so they rank nothing."
    )


def test_a_row_marked_not_ranked_is_shown_but_left_out_of_the_ranking():
    weights = next(a for a in recipes.read_ablations() if a.name == "para-weight")
    k1, k02, k03, k01 = weights.rows
    assert not k01.rank and k01.refs[0].source == "SUSTech T4"  # Table 4's setup, not Table 5's
    rows = [(k1, {"overall": (0.70, 0.0)}, 1), (k02, {"overall": (0.69, 0.0)}, 1), (k03, {"overall": (0.68, 0.0)}, 1)]
    rows.append((k01, {"overall": (0.90, 0.0)}, 1))  # best of all, but not comparable
    text = ablation_report.sentence(weights, rows, 1)
    assert text.startswith("Here k=1 came out best (overall 0.7000); SUSTech T5 found k=1 best, so we agree")


def test_bar_chart_draws_one_bar_per_value_and_whiskers_for_spread():
    doc = svg.bar_chart(["a", "b", "c"], {"overall": [(0.7, 0.01), (0.6, 0.0), None]}, "t", "score")
    flat = svg.bar_chart(["a", "b", "c"], {"overall": [(0.7, 0.0), (0.6, 0.0), None]}, "t", "score")
    assert doc.count('class="bar"') == 2 and doc.count("<title>overall") == 2 and ">c</text>" in doc
    assert doc.count("<line") == flat.count("<line") + 1  # the one whisker: +- std of the first bar
    # Only negative values (an sts r below 0): the axis reaches 0, where the bars start; it topped
    # at -0.35 and the bars were drawn from above the picture (y < 0).
    neg = svg.bar_chart(["a", "b"], {"sts": [(-0.5, 0.0), (-0.4, 0.05)]}, "t", "r")
    ys = [float(y) for y in re.findall(r'class="bar" x="[\d.]+" y="(-?[\d.]+)"', neg)]
    assert len(ys) == 2 and min(ys) >= 0


def test_a_row_of_single_task_runs_joins_them_per_seed_and_adds_up_their_training_time(tmp_path):
    """One run per task, each with its own flags: the row's cells take each task from its own run,
    its training time is the three runs' together, and a seed missing one of them is left out."""

    class Run:  # what row_stats reads of reproduce's runs: a seed and a folder
        def __init__(self, task, seed):
            self.task, self.seed = task, seed

        def folder(self, results):
            return results / f"{self.task}-seed{self.seed}"

    times = {"sst": 60.0, "para": 120.0, "sts": 30.0}
    runs = {(task,): [Run(task, 0), Run(task, 1)] for task in times}
    for task, seed in [(t, 0) for t in times] + [("sst", 1), ("para", 1)]:  # seed 1 has no sts run
        folder = Run(task, seed).folder(tmp_path)
        folder.mkdir()
        metrics = {"dev": {task: 0.5 + seed / 10}, "config": {"epochs": 1, "steps_per_epoch": 3}}
        (folder / "metrics.json").write_text(json.dumps({**metrics, "wall_time_s": times[task]}))
    stats, seeds = ablation_report.row_stats(tmp_path, runs, list(runs))
    assert seeds == 1
    assert stats["time"] == (210.0, 0.0)
    assert stats["sst"] == stats["para"] == stats["sts"] == (0.5, 0.0)
    assert stats["overall"] == pytest.approx(((0.5 + 0.5 + 0.75) / 3, 0.0))


def test_a_table_with_single_task_rows_charts_its_ranking_columns_not_empty_overall_slots(tmp_path, data_dir):
    """pair-encoding mixes single-task rows (Tuning Up: a para run and an sts run, no overall) with
    multitask ones: its chart shows para and sts for every row, not overall bars for some rows only."""
    flags = ["--data-dir", str(data_dir), "--results", str(tmp_path), "--only", "pair-encoding", "--seeds", "1"]
    args = reproduce.parse_args(flags)
    runs = reproduce.plan_runs(args)
    for run in runs:
        task = run.flags[run.flags.index("--task") + 1] if "--task" in run.flags else "all"
        dev = {t: 0.6 for t in ("sst", "para", "sts") if task in (t, "all")}
        metrics = {"dev": dev, "config": {"epochs": 1, "steps_per_epoch": 3}, "wall_time_s": 60.0}
        run.folder(tmp_path).mkdir(parents=True)
        (run.folder(tmp_path) / "metrics.json").write_text(json.dumps(metrics))
    (ablation,) = reproduce.selected(args)
    planned = [(row, reproduce.flags_of(args, row)) for row in reproduce.rows_of(ablation, False)]
    ablation_report.write_ablation_report(args, [(ablation, planned)], runs, [])
    chart = (tmp_path / "charts" / "pair-encoding.svg").read_text()
    assert chart.count('class="bar"') == 2 * len(planned)  # para and sts, every row
    assert "<title>para: 0.6000</title>" in chart and "overall" not in chart


def test_a_table_with_only_some_rows_finished_still_charts_them(tmp_path, data_dir):
    """sst-loss with only its ce row's run finished (one seed): the ce row has its cells and bars
    (overall and plain mean), the dual row says not finished and has none, and one seed is no '(1 seeds)'."""
    flags = ["--data-dir", str(data_dir), "--results", str(tmp_path), "--quick", "--only", "sst-loss", "--seeds", "1"]
    args = reproduce.parse_args(flags)
    runs = reproduce.plan_runs(args)
    assert len(runs) == 2
    for run in runs:
        if "dual" not in run.flags:
            metrics = {"dev": {"sst": 0.5, "para": 0.75, "sts": 0.5}, "config": {"epochs": 1, "steps_per_epoch": 3}}
            run.folder(tmp_path).mkdir(parents=True)
            (run.folder(tmp_path) / "metrics.json").write_text(json.dumps({**metrics, "wall_time_s": 60.0}))
    (ablation,) = reproduce.selected(args)
    planned = [(row, reproduce.flags_of(args, row)) for row in reproduce.rows_of(ablation, True)]
    path = ablation_report.write_ablation_report(args, [(ablation, planned)], runs, [])
    cells = {line.strip("| ").split(" | ")[0]: line for line in path.read_text().splitlines() if "| ce" in line}
    assert list(cells) == ["ce"] and "0.5000" in cells["ce"]
    assert "| dual | not finished |" in path.read_text()
    chart = (tmp_path / "charts" / "sst-loss.svg").read_text()
    assert chart.count('class="bar"') == 2  # overall and plain mean of the ce row
