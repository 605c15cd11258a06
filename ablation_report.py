"""The page of reproduce.py's ablations: results/REPORT.md and REPORT.html from the finished runs.

reproduce.py plans the ablations (recipes/ablations/*.toml), runs them and their ensembles; this module
only reads what they left in the results folder (each run's metrics.json) and writes the page. Per
ablation: a table of our dev figures, mean ± std over seeds, beside the cited report's own; a sentence
that ranks the rows from the numbers and says what of the report's setup could not be had here; a bar
chart. Then the ensembles ("Tuning Up BERT" Tables 5-6). Like a run's report, the page is a list of
sections that pages.py writes twice: REPORT.md with charts/*.svg beside it, and a self-contained
REPORT.html.

    python reproduce.py --data-dir data --report-only    # the page from the runs finished so far
"""

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

import pages
import svg
from analysis import read_json
from loop import format_time
from tasks import TASK_NAMES, overall, plain_mean

ROOT = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------
# reading the finished runs of a results folder


class ReproduceError(Exception):
    """A run failed or an input is wrong; the message names the run folder and its log."""


def finished(folder):
    """A train.py, mlm.py or ensemble.py run is finished once its metrics.json is in place (train.py
    and mlm.py write it last; ensemble.py renames its whole folder in once complete)."""
    return (Path(folder) / "metrics.json").is_file()


def read_train_metrics(path):
    """A finished train.py run's metrics.json, checked for what the plan and the tables read from it:
    anything else is one error naming the file, never a KeyError."""
    metrics = read_json(path)
    number = (int, float)
    config = metrics.get("config") if isinstance(metrics, dict) else None
    fine = (
        isinstance(config, dict)
        and isinstance(metrics.get("dev"), dict)
        and all(isinstance(v, number) for v in metrics["dev"].values())
        and isinstance(metrics.get("wall_time_s"), number)
        and all(isinstance(config.get(k), int) for k in ("epochs", "steps_per_epoch"))
    )
    if not fine:
        raise ReproduceError(
            f"{path}: not the metrics.json of a finished train.py run (dev, config, wall_time_s); "
            "delete it to run that run again"
        )
    return metrics


# ----------------------------------------------------------------------------
# one table per ablation, our figures beside the report's

COLUMNS = (*TASK_NAMES, "overall", "plain_mean")
HEADER = ["configuration", "sst", "para", "sts", "overall", "plain mean", "report's figure", "training time"]
HEDGE = (
    "the smaller 6-layer model (MiniLM, not bert-base), the 13.5k QQP training rows (not 141k) or the short CPU budget"
)
HEDGE_SST = "the smaller 6-layer model (MiniLM, not bert-base) or the short CPU budget"  # a table of SST alone


def run_values(metrics):
    """The five columns of one finished run; overall and plain mean only when all three tasks ran."""
    dev = metrics["dev"]
    values = {t: dev.get(t) for t in TASK_NAMES}
    complete = all(t in dev for t in TASK_NAMES)
    values["overall"] = overall(dev) if complete else None
    values["plain_mean"] = plain_mean(dev) if complete else None
    return values


def stat(values):
    """(mean, std) over seeds (sample std, 0 with one seed), or None when no seed has the value."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def fmt_stat(s, n):
    if s is None:
        return "—"
    return f"{s[0]:.4f} ± {s[1]:.4f}" if n > 1 else f"{s[0]:.4f}"


def fmt_ref(ref):
    tasks = " / ".join("—" if getattr(ref, t) is None else f"{getattr(ref, t):.3f}" for t in TASK_NAMES)
    tail = "" if ref.overall is None else f" → {'plain ' if ref.kind == 'plain' else ''}{ref.overall:.3f}"
    return f"{tasks}{tail} ({ref.source})"


def rank_score(stats, metric):
    """The mean of the `metric` columns, the figure that ranks configurations."""
    parts = [stats.get(m) for m in metric]
    return None if any(p is None for p in parts) else sum(p[0] for p in parts) / len(parts)


def ref_score(ref, metric):
    parts = [getattr(ref, m, None) for m in metric]
    return None if any(p is None for p in parts) else sum(parts) / len(parts)


def row_stats(results, runs_by_flags, flag_sets):
    """Stats per column and the mean time of a row's finished seeds (and how many). A row of
    single-task runs shows each task's own run; a seed counts once every one of them has finished."""
    per_seed = {}
    for flags in flag_sets:
        for run in runs_by_flags.get(flags, []):
            if finished(run.folder(results)):
                per_seed.setdefault(run.seed, []).append(read_train_metrics(run.folder(results) / "metrics.json"))
    found = [
        {"dev": {t: v for m in ms for t, v in m["dev"].items()}, "wall_time_s": sum(m["wall_time_s"] for m in ms)}
        for ms in per_seed.values()
        if len(ms) == len(flag_sets)
    ]
    stats = {c: stat([run_values(m)[c] for m in found]) for c in COLUMNS}
    stats["time"] = stat([m["wall_time_s"] for m in found])
    return stats, len(found)


def sentence(ablation, rows, seeds):
    """From the numbers: within each setup (the rows of one base recipe), our best row, the report's,
    and a hedged why. Rows marked rank = false are shown, not ranked."""
    setups = {}
    for row in rows:
        if row[0].rank:
            setups.setdefault(row[0].base, []).append(row)
    parts = [(b, setup_sentence(ablation, r, seeds)) for b, r in setups.items() if len(r) > 1 or len(setups) == 1]
    parts = [(b, text) for b, text in parts if text]
    if not parts:
        return "No configuration of this table has finished yet."
    return " ".join(f"{b} setup: {text}" if len(parts) > 1 else text for b, text in parts)


def setup_sentence(ablation, rows, seeds):
    what = " and ".join(m.replace("_", " ") for m in ablation.metric)
    ours = [
        (rank_score(s, ablation.metric), c.label, s)
        for c, s, n in rows
        if n and rank_score(s, ablation.metric) is not None
    ]
    if len(ours) < 2:  # one finished row ranks nothing
        return f"Here only {ours[0][1]} has finished: nothing to rank yet." if ours else ""
    ours.sort(key=lambda x: -x[0])
    best, label = ours[0][0], ours[0][1]
    tied = [lab for sc, lab, _ in ours if sc == best]
    if len(tied) > 1:  # no winner to compare with the reports'
        return f"Here {' and '.join(tied)} tie ({what} {best:.4f}), so they rank nothing."
    text = f"Here {label} came out best ({what} {best:.4f})"
    by_table = {}  # a report's figures are ranked within the table that gives them
    for c, _, _ in rows:
        for ref in c.refs:
            if ref_score(ref, ablation.metric) is not None:
                table = re.match(r".*? T\d+", ref.source)[0]
                by_table.setdefault(table, []).append((ref_score(ref, ablation.metric), c.label))
    found = {src: [lab for sc, lab in v if sc == max(v)[0]] for src, v in by_table.items() if len(v) >= 2}
    if not found:
        return text + "; the report gives no two figures of this setup to rank."
    text += "; " + ", ".join(f"{src} found {' and '.join(labs)} best" for src, labs in found.items())
    gap = best - ours[1][0] if len(ours) > 1 else None
    std = (ours[0][2].get(ablation.metric[0]) or (0.0, 0.0))[1]
    close = gap is not None and gap <= std
    agree = [src for src, labs in found.items() if label in labs]
    hedge = HEDGE_SST if ablation.metric == ("sst",) else HEDGE
    if len(agree) == len(found):
        text += ", so we agree"
    elif agree:
        text += f", so we agree with {' and '.join(agree)} and differ from the rest, which may be down to {hedge}"
    else:
        text += f", so we differ, which may be down to {hedge}"
    if seeds == 1:
        text += " (one seed: the ranking may be noise)"
    elif close:
        text += " (the gap to the next is within one std)"
    return text + "."


def ablation_section(args, ablation, planned, runs):
    """The heading, the table, the sentence (with the table's setup) and the bar chart of one ablation.
    planned: [(row, its command lines)] as reproduce.py runs them, [] for a row it could not run."""
    results, blocks, rows = Path(args.results), [], []
    by_flags = {}
    for run in runs:
        by_flags.setdefault(run.flags[:-2], []).append(run)  # without --seed k
    table = pages.Table(HEADER, [])
    for row, flag_sets in planned:
        if not flag_sets:
            rows.append((row, {}, 0))
            table.rows.append([row.label] + ["not run (no --synth)"] * 5 + [refs_cell(row), "—"])
            continue
        stats, n = row_stats(results, by_flags, flag_sets)
        rows.append((row, stats, n))
        cells = [fmt_stat(stats[c], n) if n else "not finished" for c in COLUMNS]
        time_cell = format_time(stats["time"][0]) if stats["time"] else "—"
        table.rows.append([row.label + (f" ({n} seeds)" if n > 1 else ""), *cells, refs_cell(row), time_cell])
    blocks += [table, f"{sentence(ablation, rows, args.seeds)} Setup: {ablation.setup}{synth_note(args, planned)}"]
    if ablation.name == "synth" and not args.synth:
        blocks.append(SYNTH_SKIPPED)
    mlm_rows = any(r.mlm for r, _ in planned)
    if mlm_rows and args.mlm_dir and finished(args.mlm_dir):
        took = format_time(read_json(args.mlm_dir / "metrics.json")["wall_time_s"])
        blocks.append(f"MLM pretraining ({args.budget.mlm_steps} steps, once, for every seed) took {took} more.")
    chart = {"overall": [s.get("overall") for _, s, _ in rows], "plain mean": [s.get("plain_mean") for _, s, _ in rows]}
    if ablation.metric != ("overall",) and any(n and s.get("overall") is None for _, s, n in rows):
        # a row of runs without all three tasks (single-task rows) has no overall: chart the ranking columns
        chart = {t: [s.get(t) for _, s, _ in rows] for t in ablation.metric}
    if any(v for vs in chart.values() for v in vs):
        doc = svg.bar_chart([c.label for c, _, _ in rows], chart, ablation.title, "dev score (mean ± std over seeds)")
        blocks.append(pages.Figure(f"charts/{ablation.name}.svg", doc, f"{ablation.title}: our dev figures."))
    return ablation.title, blocks


def synth_note(args, planned):
    """Whether rows that would use the report's synthetic SST data had it in this reproduction."""
    if not any(r.synth == "if-given" for r, _ in planned):
        return ""
    if args.synth:
        return f" The synthetic SST rows came from {args.synth}."
    return " No --synth file was given: these rows trained on the real SST rows only."


def refs_cell(row):
    return "; ".join(fmt_ref(r) for r in row.refs) or "—"


SYNTH_SKIPPED = (
    "synth ablation skipped: no --synth FILE given. To run it, make the paraphrases with "
    "`python synth.py paraphrase --input data/ids-sst-train.csv --out data/sst-synth.jsonl` (an OpenAI-compatible "
    "API) and then `python reproduce.py --only synth --synth data/sst-synth.jsonl`."
)


# ----------------------------------------------------------------------------
# the ensembles, the page's header, and the page


def ensemble_section(rows):
    """reproduce.ensembles' rows [(label, metrics, report's figure or None)] as one table."""
    table = pages.Table(HEADER, [])
    for label, metrics, ref in rows:
        values = run_values(metrics)
        table.rows.append(
            [label, *(fmt_stat(stat([values[c]]), 1) for c in COLUMNS), fmt_ref(ref) if ref else "—", "—"]
        )
    note = (
        "ensemble.py combines the runs' dev predictions per task (mean probability or score) and picks, per task, "
        "the subset of runs that scores best on dev: that dev figure is optimistic; the half-and-half row is the "
        "honest one."
    )
    return "Ensembles (Tuning Up BERT Tables 5-6)", [table, note] if rows else ["No finished runs to combine."]


def header(args, chosen, runs):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "unknown"
    mode = "quick (one seed, the small budget, a subset of the ablations)" if args.quick else "full"
    names = [f"{a.name} ({', '.join(r.label for r, _ in planned)})" for a, planned in chosen]
    return [
        f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch_version}; commit {commit.stdout.strip() or 'unknown'}; model {args.model}.",
        f"Mode: {mode}. Each row: its report's CPU recipe (recipes/cpu/) with the keys of "
        f"recipes/ablations/; its length: {args.budget.describe()}. Seeds: {args.seeds} "
        f"(0..{args.seeds - 1}); ± is the sample std over seeds. {len(runs)} distinct runs.",
        "Ablations run: " + "; ".join(names) + ".",
        "Columns: dev SST-5 accuracy, QQP accuracy, STS Pearson r; overall is the course formula "
        "mean(sst, para, (r + 1) / 2), plain mean the mean of the three as BERT++ and SUSTech report it. The "
        "report's figure: its sst / para / sts → overall (plain: a plain mean), from the table named; the reports "
        "fine-tune bert-base on 141k QQP rows for far longer. Training time: train.py's own wall time per seed "
        "(mean over seeds); a row of single-task runs adds up its three runs.",
    ]


def write_ablation_report(args, chosen, runs, ensemble_rows):
    """results/REPORT.md and REPORT.html (with charts/*.svg), through pages.py; returns REPORT.md's path.
    chosen: [(ablation, [(row, its command lines)])], runs: the planned runs (reproduce.PlannedRun),
    ensemble_rows: reproduce.ensembles'. From args: results, quick, seeds, model, budget, synth, mlm_dir."""
    sections = [("About this reproduction", header(args, chosen, runs))]
    sections += [ablation_section(args, ablation, planned, runs) for ablation, planned in chosen]
    sections.append(ensemble_section(ensemble_rows))
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    pages.write_page_files(results, "Reproducing the reports at CPU scale", sections, "REPORT.html", "REPORT.md")
    return results / "REPORT.md"
