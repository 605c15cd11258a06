"""Ensembles of finished runs, one per task, chosen on dev ("Tuning Up BERT" §5.5, Tables 5-6).

The report's final system is an ensemble per task: for each task, the few models whose averaged
predictions score best on dev. This tool builds it from run folders that train.py wrote (their
predictions/{task}-{dev,test}-raw.csv) and from folders that `synth.py label` wrote:

    python ensemble.py runs/a runs/b runs/c --out runs/ensemble
    python ensemble.py runs/* --out runs/ens-honest --select-on 0.5   # choose on half of dev, score on the rest
    python ensemble.py runs/seed0 runs/seed1 --all --out runs/ens-plan # average them all, choose nothing

With --task-bests each run folder also brings its best-{task}/ folders: the predictions train.py
writes for each task's own best epoch (best-{task}.pt) when it is not best.pt's. "Tuning Up BERT"
§5.5 builds its ensembles from such per-task best checkpoints, "each task uses 1-4 models":
--max-per-task 4 caps the distinct members of each task's ensemble.

    python ensemble.py runs/a runs/b runs/c --task-bests --max-per-task 4 --out runs/ens-tuning-up

A run may hold some tasks only (a single-task run, a synth.py label folder with sst alone): each
task is ensembled over the runs that have it. The dev table has the rows of the report's Table 5:
each run (one model for all tasks), the best single run per task, and the ensemble per task.

A run with dev predictions but no test predictions for a task (`synth.py label --split dev`) beside
runs that have both is scored on dev, shown in the table, and never chosen, so the written test
predictions are always those of the chosen ensemble.

The gold labels and the test ids come from the course files the runs' metrics.json record (they
must agree), or --data-dir, or --{task}-{dev,test}. Every member's test predictions must hold
exactly the test file's ids, read by predictions.py's one reader (every line checked), before
anything is written: a truncated or forged file is an error naming it, never a short submission.

Combining R runs with weights w_i (the report's rule):

    sst, para   p = sum_i w_i p_i / sum_i w_i     prediction argmax_k p_k  (para: p > 0.5)
    sts         s = sum_i w_i s_i / sum_i w_i     prediction clip(s, 0, 5)

Choosing, per task, on the dev set:

    up to --max-exhaustive runs   every non-empty subset; the best (ties: fewer runs, then earlier)
    more runs                     greedy forward selection with replacement (Caruana et al. 2004,
                                  "Ensemble Selection from Libraries of Models"):
                                  start empty, add the run that most improves dev, --greedy-steps
                                  times, keep the best of these nested ensembles. A run added twice
                                  counts twice, so the greedy search also finds weights.

A subset chosen on dev and scored on that same dev is optimistic: among many subsets some fit
the dev set's noise. --select-on FRACTION chooses on a seeded random part of dev and scores the
chosen ensemble on the rest, which it never saw: an unbiased estimate for new data (of an ensemble
chosen on fewer rows, so a slightly worse one than choosing on all of dev would give).

The output folder is a run folder like train.py's (predictions/, metrics.json) plus ensemble.json
(members, weights, scores), so it can itself be ensembled or reported on.
"""

import errno
import hashlib
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import analysis
import cli
import data
import files
import predictions
from predictions import PredictionFileError
from tasks import TASK_NAMES, TASKS, overall, plain_mean, score

OPTIMISM = "these dev scores are optimistic: each ensemble was chosen on the same dev rows it is scored on"
PROGRESS_EVERY_S = 10  # a long exhaustive search prints how far along it is this often
HONEST = "--select-on FRACTION chooses on part of dev and scores on the rest"
PLANNED = "--all: every run averaged, nothing chosen on dev, so these dev scores are honest"


class EnsembleError(ValueError):
    """Runs that cannot be combined, or a bad flag; the message names the run, the file or the flag."""


# ----------------------------------------------------------------------------
# reading the runs


@dataclass
class Member:
    name: str  # the folder as given on the command line
    raw: dict  # (task, split) -> (ids, values): values (N,) or (N, K) as read from the raw file
    config: dict  # its metrics.json's config: the course files it was scored on (analysis.recorded_file)


def read_member_metrics(folder):
    """A member run's metrics.json as a dict ({} if it has none)."""
    path = folder / "metrics.json"
    if not path.is_file():
        return {}
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:  # not JSON, or not UTF-8
        metrics = None
    if not isinstance(metrics, dict) or not all(isinstance(metrics.get(k, {}), dict) for k in ("config", "dev")):
        raise EnsembleError(f"{path}: not a JSON object (with 'config' and 'dev' objects, where present)")
    return metrics


def load_member(name):
    """Every raw prediction file of a run folder, checked; a file its metrics.json promises must be there."""
    folder = Path(name)
    if not folder.is_dir():
        raise EnsembleError(f"{name}: no such run folder")
    metrics = read_member_metrics(folder)
    raw = {}
    for task in TASK_NAMES:
        for split in ("dev", "test"):
            path = predictions.file_path(folder / "predictions", task, split)
            if path.is_file():
                raw[task, split] = predictions.read_raw(path, task)  # the one reader: every line checked
        if (task, "test") in raw and (task, "dev") not in raw:
            path = predictions.file_path(folder / "predictions", task, "dev")
            raise EnsembleError(f"{path}: no such file, though the run has {task} test predictions")
    for task in TASK_NAMES:
        if task in metrics.get("dev", {}) and (task, "dev") not in raw:
            path = predictions.file_path(folder / "predictions", task, "dev")
            raise EnsembleError(f"{path}: no such file, though {folder / 'metrics.json'} has {task} dev scores")
    if not raw:
        raise EnsembleError(f"{name}: no predictions/*-raw.csv (not a run folder of train.py or synth.py label?)")
    return Member(name, raw, metrics.get("config", {}))


def course_file(args, runs, task, split):
    """(path, where it came from) of the course file for one task and split: --{task}-{split}, else
    --data-dir's, else the file the runs' metrics.json record (all the same one: the same path or the
    same bytes), else data/'s."""
    flag = getattr(args, f"{task}_{split}")
    if flag:
        return Path(flag), f"--{task}-{split}"
    if args.data_dir is not None:
        return Path(args.data_dir) / TASKS[task].files[split], "--data-dir"
    recorded = {}  # the file's content (or its path, if absent) -> (run, path)
    for r in runs:
        path = analysis.recorded_file(r.config, task, split)
        if path is not None:
            key = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else str(path.resolve())
            recorded.setdefault(key, (r.name, path))
    if len(recorded) > 1:
        which = ", ".join(f"{name} used {path}" for name, path in recorded.values())
        if all(path.is_file() for _, path in recorded.values()):  # two contents: other sentences, other labels
            raise EnsembleError(
                f"the runs were scored on different {task} {split} files ({which}): their rows are not the same "
                f"examples, so they do not combine (only if the files differ in form alone, name one: --{task}-{split})"
            )
        raise EnsembleError(
            f"the runs were scored on different {task} {split} files ({which}): pass --data-dir or --{task}-{split}"
        )
    if recorded:
        name, path = next(iter(recorded.values()))
        return path, str(Path(name) / "metrics.json")
    return Path("data") / TASKS[task].files[split], "the default, data/"


# ----------------------------------------------------------------------------
# one task's predictions from every run that has it, rows aligned


@dataclass
class TaskRuns:
    task: str
    names: list  # the runs that have this task
    weights: np.ndarray  # (R,) --weights of those runs; 0 for a run left out of the choice (dev_only)
    dev_ids: list  # (N,) in the order of the course dev file
    labels: np.ndarray  # (N,) gold dev labels
    dev: np.ndarray  # (R, N) or (R, N, K)
    test_ids: list | None  # (M,) in the order of the course test file; None when no run has test predictions
    test: np.ndarray | None  # (R, M) or (R, M, K); zeros for the dev_only runs, which are never chosen
    dev_only: list  # runs without test predictions beside runs with them: scored on dev, never chosen
    files: dict  # split -> the course file read: "dev" (gold labels), and "test" (its ids) when test is not None


def aligned(run, task, split, ids, what):
    """The run's values reordered to `ids`; an error naming the file unless it has exactly those ids."""
    got_ids, values = run.raw[task, split]
    if set(got_ids) != set(ids) or len(got_ids) != len(ids):
        missing, extra = sorted(set(ids) - set(got_ids)), sorted(set(got_ids) - set(ids))
        path = predictions.file_path(Path(run.name) / "predictions", task, split)
        raise EnsembleError(
            f"{path}: its ids differ from {what}: {len(missing)} missing {brief(missing)}, "
            f"{len(extra)} extra {brief(extra)}"
        )
    row = {id_: i for i, id_ in enumerate(got_ids)}
    return values[[row[id_] for id_ in ids]]


def brief(ids):
    return "[" + ", ".join(predictions.shown(i) for i in ids[:3]) + ", ..." * (len(ids) > 3) + "]"


def check_classes(task, runs):
    """Every sst raw file must have the same number of classes as the first one; returns it."""
    first = runs[0].raw[task, "dev"][1].shape[1]
    for r in runs:
        for split in ("dev", "test"):
            if (task, split) in r.raw and r.raw[task, split][1].shape[1] != first:
                path = predictions.file_path(Path(r.name) / "predictions", task, split)
                k = r.raw[task, split][1].shape[1]
                raise EnsembleError(f"{path}: {k} classes, but {runs[0].name}'s {task} dev predictions have {first}")
    return first


def read_course_file(task, split, where):
    """The examples of the dev file (gold labels) or the test file (the ids a submission must have)."""
    path, source = where
    if not path.is_file():
        what = "dev labels" if split == "dev" else "test ids, to check the runs' test predictions"
        raise EnsembleError(
            f"{path}: no such file (the {task} {what}, from {source}; set --data-dir or --{task}-{split})"
        )
    return data.read_examples(path, task, labelled=split == "dev")


def stack_outputs(task, runs, weights, dev_file, test_file):
    """Stack the dev (and test) outputs of `runs` for `task`, checked to hold exactly the ids of the
    course dev (and test) file. dev_file, test_file: (path, where it came from), as course_file gives."""
    gold = read_course_file(task, "dev", dev_file)
    dev_ids, labels = [ex.id for ex in gold], np.array([ex.label for ex in gold])
    if TASKS[task].kind == "multiclass":
        k = check_classes(task, runs)
        predictions.check_gold(
            gold, k, dev_file[0], predictions.file_path(Path(runs[0].name) / "predictions", task, "dev")
        )
    dev = np.stack([aligned(r, task, "dev", dev_ids, f"the dev file {dev_file[0]}") for r in runs])
    test_ids = test = None
    dev_only = [r.name for r in runs if (task, "test") not in r.raw]
    if len(dev_only) == len(runs):
        dev_only = []  # no run has test predictions: a dev-only ensemble, chosen among them all
    else:
        test_ids = [ex.id for ex in read_course_file(task, "test", test_file)]
        what = f"the test file {test_file[0]}"
        blank = np.zeros((len(test_ids), *dev.shape[2:]))  # never used: a dev-only run is never chosen
        test = np.stack([blank if r.name in dev_only else aligned(r, task, "test", test_ids, what) for r in runs])
        weights = np.where([r.name in dev_only for r in runs], 0.0, weights)
        if not (weights > 0).any():
            raise EnsembleError(f"--weights: every run with {task} test predictions has weight 0")
    files = {"dev": dev_file[0], **({"test": test_file[0]} if test is not None else {})}
    return TaskRuns(task, [r.name for r in runs], weights, dev_ids, labels, dev, test_ids, test, dev_only, files)


# ----------------------------------------------------------------------------
# combining and scoring


def combine(values, weights):
    """Weighted mean over runs: (R, N) or (R, N, K) -> (N,) or (N, K)."""
    weights = np.asarray(weights, dtype=np.float64)
    return np.tensordot(weights / weights.sum(), values, axes=1)


def decide(task, raw):
    """Predictions from combined raw outputs: the most probable class, P > 0.5, or the clipped score."""
    kind = TASKS[task].kind
    if kind == "multiclass":
        return raw.argmax(-1)
    if kind == "binary":
        return (raw > 0.5).astype(np.int64)
    return np.clip(raw, 0.0, 5.0)  # clip only now: averaging raw scores keeps their information


def ensemble_score(task, values, weights, labels):
    return score(task, decide(task, combine(values, weights)), labels)


# ----------------------------------------------------------------------------
# choosing the members


def exhaustive(task, values, weights, labels, max_members=None):
    """Counts (R,) of 0/1: the best non-empty subset of the runs with a weight above 0, of at most
    max_members runs. Subsets are tried from small to large, so on a tie the smaller (then earlier) one is kept."""
    candidates = [i for i in range(len(values)) if weights[i] > 0]
    sizes = range(1, min(len(candidates), max_members or len(candidates)) + 1)
    best, best_counts = -np.inf, None
    total, done, t0, shown = sum(math.comb(len(candidates), k) for k in sizes), 0, time.time(), time.time()
    for size in sizes:
        for subset in itertools.combinations(candidates, size):
            counts = np.zeros(len(values), dtype=np.int64)
            counts[list(subset)] = 1
            s = ensemble_score(task, values, counts * weights, labels)
            if s > best:
                best, best_counts = s, counts
            done += 1
            if time.time() - shown > PROGRESS_EVERY_S:  # 2^R subsets grow fast: say how far along a long search is
                rate, shown = done / (time.time() - t0), time.time()
                print(f"  {task}: {done}/{total} subsets, {rate:.0f}/s, ETA {(total - done) / rate:.0f}s", flush=True)
    return best_counts


def greedy(task, values, weights, labels, steps, max_members=None):
    """Counts (R,): Caruana et al.'s forward selection with replacement. Each step adds the run
    whose addition scores best (even if worse than before: a later step may recover); the best
    ensemble along the way wins, the earliest (smallest) on a tie. Once max_members distinct runs
    are in, only they can be added again."""
    counts = np.zeros(len(values), dtype=np.int64)
    total = np.zeros(values.shape[1:])  # sum of count * weight * values over the members so far
    mass = 0.0  # sum of count * weight
    best, best_counts = -np.inf, counts
    for _ in range(steps):
        step_best, pick = -np.inf, None
        full = max_members is not None and np.count_nonzero(counts) >= max_members
        for i in np.flatnonzero((weights > 0) & ((counts > 0) | (not full))):
            trial = (total + weights[i] * values[i]) / (mass + weights[i])
            s = score(task, decide(task, trial), labels)
            if s > step_best:
                step_best, pick = s, i
        counts[pick] += 1
        total, mass = total + weights[pick] * values[pick], mass + weights[pick]
        if step_best > best:
            best, best_counts = step_best, counts.copy()
    return best_counts


def choose(tr, rows, args):
    """(counts, method): the members for one task, chosen on the dev rows `rows` (--all: every run)."""
    if args.all:  # planned before dev was seen: nothing is chosen, so the dev score is honest
        return (tr.weights > 0).astype(np.int64), "all"
    values, labels = tr.dev[:, rows], tr.labels[rows]
    cap = args.max_per_task
    if np.count_nonzero(tr.weights) <= args.max_exhaustive:
        return exhaustive(tr.task, values, tr.weights, labels, cap), "exhaustive"
    return greedy(tr.task, values, tr.weights, labels, args.greedy_steps, cap), "greedy"


def split_dev(n, fraction, seed):
    """(choose_rows, held_out_rows): a seeded random split of range(n), round(fraction * n) rows to choose on."""
    k = round(fraction * n)
    if not 0 < k < n:
        raise EnsembleError(f"--select-on {fraction}: leaves {k} of {n} dev rows to choose on; need 1 to {n - 1}")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[:k]), np.sort(order[k:])


def ensemble_task(tr, args):
    """Choose one task's ensemble and score it: a dict for ensemble.json (plus the raw outputs)."""
    n = len(tr.labels)
    singles = {name: score(tr.task, decide(tr.task, v), tr.labels) for name, v in zip(tr.names, tr.dev)}
    rows, held = split_dev(n, args.select_on, args.seed) if args.select_on else (np.arange(n), None)
    counts, method = choose(tr, rows, args)
    weights = counts * tr.weights
    result = {
        "method": method,
        "candidates": tr.names,
        "members": [
            {"run": name, "count": int(c), "weight": float(w)} for name, c, w in zip(tr.names, counts, tr.weights) if c
        ],
        "dev": ensemble_score(tr.task, tr.dev, weights, tr.labels),
        "dev_rows": n,
        "singles": singles,
        "dev_only": tr.dev_only,
        "dev_raw": combine(tr.dev, weights),
        "test_raw": None if tr.test is None else combine(tr.test, weights),
    }
    if held is not None:
        # the honest comparison: the best single run, also picked on the choosing rows, on the held-out rows
        one = max(
            range(len(tr.names)), key=lambda i: (score(tr.task, decide(tr.task, tr.dev[i, rows]), tr.labels[rows]), -i)
        )
        result["held_out"] = {
            "choose_rows": len(rows),
            "held_out_rows": len(held),
            "ensemble_on_choose_rows": ensemble_score(tr.task, tr.dev[:, rows], weights, tr.labels[rows]),
            "ensemble": ensemble_score(tr.task, tr.dev[:, held], weights, tr.labels[held]),
            "best_single_run": tr.names[one],
            "best_single": score(tr.task, decide(tr.task, tr.dev[one, held]), tr.labels[held]),
        }
    return result


# ----------------------------------------------------------------------------
# the dev table


def table_row(label, width, tasks, metrics, notes=None):
    """One line: a score per task ("-" where missing), then overall and plain mean if all are there."""
    notes = notes or {}
    cells = [f"{metrics[t]:.4f}{notes.get(t, '')}".ljust(14) if t in metrics else "-".ljust(14) for t in tasks]
    both = f"{overall(metrics):.4f}   {plain_mean(metrics):.4f}" if all(t in metrics for t in tasks) else "-"
    return f"{label.ljust(width)}  {''.join(cells)}{both}"


def print_report(task_runs, results, args):
    tasks = list(results)
    names = list(dict.fromkeys(name for tr in task_runs.values() for name in tr.names))
    width = max(len(n) for n in [*names, "best single run per task"])
    header = f"{''.ljust(width)}  {''.join(t.ljust(14) for t in tasks)}overall  plain mean"
    rows = ", ".join(f"{t} {results[t]['dev_rows']}" for t in tasks)
    print(f"dev scores (rows: {rows}; overall = mean(sst, para, (sts r + 1) / 2), plain mean = r as is)")
    print(header)
    for name in names:
        print(
            table_row(name, width, tasks, {t: r["singles"][name] for t, r in results.items() if name in r["singles"]})
        )
    best = {t: max(r["singles"].values()) for t, r in results.items()}
    print(table_row("best single run per task", width, tasks, best))
    sizes = {t: f" ({sum(m['count'] for m in r['members'])})" for t, r in results.items()}
    print(table_row("ensemble per task", width, tasks, {t: r["dev"] for t, r in results.items()}, sizes))
    print("ensemble members:")
    for t, r in results.items():
        members = " + ".join(f"{m['count']}x {m['run']}" if m["count"] > 1 else m["run"] for m in r["members"])
        how = f"{r['method']} over {len(r['candidates'])} runs"
        print(f"  {t.ljust(5)} {members}  ({how}{'' if task_runs[t].test is not None else '; no test predictions'})")
    for t, tr in task_runs.items():
        for name in tr.dev_only:
            path = predictions.file_path(Path(name) / "predictions", t, "test")
            print(f"note: {t}: {name} has no test predictions ({path}), so it is scored on dev but not chosen")
    if args.select_on:
        held = {t: r["held_out"] for t, r in results.items()}
        print(f"note: {OPTIMISM}")
        print(
            f"held out: each ensemble chosen on {args.select_on:.0%} of dev (seed {args.seed}), scored on the other "
            f"rows (never seen when choosing); the single run also picked on the choosing rows:"
        )
        print(header)
        print(table_row("best single run per task", width, tasks, {t: h["best_single"] for t, h in held.items()}))
        print(table_row("ensemble per task", width, tasks, {t: h["ensemble"] for t, h in held.items()}, sizes))
    elif args.all:
        print(f"note: {PLANNED}")
    else:
        print(f"note: {OPTIMISM} ({HONEST})")


# ----------------------------------------------------------------------------
# writing the ensemble as a run folder


def honesty(args):
    """What ensemble.json says of its dev scores: honest (--all), or chosen on the rows they score."""
    if args.all:
        return PLANNED
    return OPTIMISM if args.select_on is None else f"{OPTIMISM}; held_out has the honest scores"


def summary(results, args, used):
    """ensemble.json: how each task's ensemble was chosen, its members and its scores, and (config)
    the flags with the course files used, so that report.py and a next ensemble.py find them."""
    dev = {t: r["dev"] for t, r in results.items()}
    out = {
        "runs": args.runs,
        "weights": args.weights or [1.0] * len(args.runs),
        "select_on": args.select_on,
        "seed": args.seed,
        "task_bests": args.task_bests,
        "max_per_task": args.max_per_task,
        "tasks": {t: {k: v for k, v in r.items() if not k.endswith("_raw")} for t, r in results.items()},
        "dev": dev,
        "overall": overall(dev),
        "plain_mean": plain_mean(dev),
        "note": honesty(args),
        "config": {**vars(args), **used},
    }
    if args.select_on:
        held = {t: r["held_out"]["ensemble"] for t, r in results.items()}
        out["held_out"] = {"dev": held, "overall": overall(held), "plain_mean": plain_mean(held)}
    return out


def write_outputs(out, task_runs, results, info):
    """The ensemble's files, written into a new folder beside `out` and renamed to it once complete:
    Ctrl-C or a full disk midway never leaves an --out with some tasks' predictions, which a later
    ensemble.py would take for a run of those tasks alone; and a second ensemble.py that wrote the
    same --out meanwhile makes the rename fail (the folder is no longer empty) instead of mixing in."""
    with files.folder_beside(out) as fresh:
        write_files(fresh, task_runs, results, info)
        try:
            os.rename(fresh, out)  # replaces a missing or empty folder only
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            raise EnsembleError(f"--out {out}: another process wrote into it meanwhile; choose a new one") from None


def write_files(out, task_runs, results, info):
    """predictions/ (course format and raw, as train.py writes them), metrics.json, ensemble.json."""
    for t, tr in task_runs.items():
        r = results[t]
        predictions.write(out / "predictions", t, "dev", tr.dev_ids, decide(t, r["dev_raw"]), r["dev_raw"])
        if tr.test is not None:
            predictions.write(out / "predictions", t, "test", tr.test_ids, decide(t, r["test_raw"]), r["test_raw"])
    metrics = {k: info[k] for k in ("dev", "overall", "plain_mean")}
    metrics["config"] = info["config"]  # the course files it was scored on, as train.py records them
    files.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    files.write_text(out / "ensemble.json", json.dumps(info, indent=2) + "\n")


# ----------------------------------------------------------------------------
# command line


def run_weights(args):
    """--weights as an array, one per run, checked."""
    if args.weights is None:
        return np.ones(len(args.runs))
    w = np.array(args.weights, dtype=np.float64)
    if len(w) != len(args.runs):
        raise EnsembleError(f"--weights: {len(w)} weights for {len(args.runs)} runs")
    if (w < 0).any() or not np.isfinite(w).all():
        raise EnsembleError(f"--weights: must be finite and >= 0, got {args.weights}")
    if not (w > 0).any():
        raise EnsembleError("--weights: all are 0")
    return w


def check_ensemble_out(args):
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EnsembleError(f"--out {out}: already exists and is not an empty folder; choose a new one")
    dest = out.resolve()
    for name in args.runs:  # a run folder holds only what train.py (or synth.py label) wrote into it
        if Path(name).resolve() in dest.parents:
            raise EnsembleError(f"--out {out} is inside the run {name}: choose a folder outside the runs combined")
    if problem := files.in_a_run(out, "--out"):  # a run not combined
        raise EnsembleError(problem)
    check_distinct(args.runs)
    return out


def check_distinct(names, why=""):
    """No member twice: it would count double, unseen (--weights says so openly)."""
    folders = [Path(r).resolve() for r in names]
    for i, f in enumerate(folders):
        if f in folders[:i]:
            raise EnsembleError(f"{names[i]}: given twice{why} (to count a run more, use --weights)")


def with_task_bests(names, weights):
    """The run folders, each followed by its best-{task}/ folders (train.py's per-task best
    checkpoints' predictions) with the run's weight."""
    members, member_weights = [], []
    for name, w in zip(names, weights):
        bests = [
            str(Path(name) / f"best-{t}") for t in TASK_NAMES if (Path(name) / f"best-{t}" / "predictions").is_dir()
        ]
        members += [name, *bests]
        member_weights += [w] * (1 + len(bests))
    return members, np.array(member_weights)


def ensemble(args):
    """Read, check, choose, print; write only once everything has passed."""
    out = check_ensemble_out(args)
    names, weights = args.runs, run_weights(args)
    if args.task_bests:
        names, weights = with_task_bests(names, weights)
        check_distinct(names, ", as --task-bests adds each run's best-{task}/ folders itself")
    runs = [load_member(name) for name in names]
    task_runs = {}
    for t in TASK_NAMES:
        have = [i for i, r in enumerate(runs) if (t, "dev") in r.raw]
        if not have:
            continue
        if not (weights[have] > 0).any():
            raise EnsembleError(f"--weights: every run with {t} predictions has weight 0")
        members = [runs[i] for i in have]
        dev_file = course_file(args, members, t, "dev")
        test_file = course_file(args, [r for r in members if (t, "test") in r.raw], t, "test")
        task_runs[t] = stack_outputs(t, members, weights[have], dev_file, test_file)
    results = {t: ensemble_task(tr, args) for t, tr in task_runs.items()}
    # the course files read, named as train.py's flags name them
    used = {f"{t}_{split}": str(path) for t, tr in task_runs.items() for split, path in tr.files.items()}
    print_report(task_runs, results, args)
    info = summary(results, args, used)
    write_outputs(out, task_runs, results, info)
    print(f"wrote {out / 'predictions'}/, {out / 'metrics.json'} and {out / 'ensemble.json'}")
    return info


def get_parser():
    p = cli.new_parser(__doc__)
    a = p.add_argument
    a("runs", nargs="+", help="run folders with predictions/{task}-{dev,test}-raw.csv (train.py, synth.py label)")
    a("--out", default="runs/ensemble", help="new folder for the ensemble's predictions, metrics.json, ensemble.json")
    a("--weights", type=float, nargs="+", default=None, help="one weight per run, >= 0 (default: all 1)")
    a("--max-exhaustive", type=int, default=10, help="try every subset up to this many runs; greedy beyond")
    a("--greedy-steps", type=int, default=20, help="additions made by the greedy search (with replacement)")
    a(
        "--task-bests",
        action="store_true",
        help="also use each run's best-{task}/ predictions (its per-task best checkpoints, train.py)",
    )
    a(
        "--max-per-task",
        type=int,
        default=None,
        metavar="N",
        help="at most N distinct runs per task (Tuning Up: 4; default: no cap)",
    )
    a(
        "--select-on",
        type=float,
        default=None,
        metavar="FRACTION",
        help="choose on this fraction of dev (seeded split), score on the rest (default: choose on all of dev)",
    )
    a("--seed", type=int, default=0, help="seed of the --select-on split")
    a(
        "--all",
        action="store_true",
        help="average every run (weighted by --weights) for every task, choosing nothing on dev: an "
        "ensemble planned in advance, e.g. the main job trained with two seeds; its dev score is honest",
    )
    a(
        "--data-dir",
        default=None,
        help="folder with the course dev files (gold labels) and test files (the ids a submission must have); "
        "default: the files the runs' metrics.json record (an error if they differ), else data",
    )
    for t in TASK_NAMES:
        for split in ("dev", "test"):
            a(f"--{t}-{split}", default=None, help=f"{t} {split} file (default <data-dir>/{TASKS[t].files[split]})")
    return p


def parse_args(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.max_exhaustive < 0:
        parser.error("--max-exhaustive must be at least 0")
    if args.greedy_steps < 1:
        parser.error("--greedy-steps must be at least 1")
    if args.max_per_task is not None and args.max_per_task < 1:
        parser.error("--max-per-task must be at least 1")
    if args.select_on is not None and not 0 < args.select_on < 1:
        parser.error(f"--select-on must be a fraction between 0 and 1, got {args.select_on}")
    if args.seed < 0:
        parser.error(f"--seed must be 0 or more, got {args.seed}")
    if args.all and (args.select_on is not None or args.max_per_task is not None):
        parser.error("--all chooses nothing on dev: --select-on and --max-per-task have nothing to do with it")
    return args


if __name__ == "__main__":
    try:
        ensemble(parse_args())
    except (EnsembleError, PredictionFileError, data.DataError, OSError) as e:
        sys.exit(f"error: {e}")
