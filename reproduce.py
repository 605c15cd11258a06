"""The reports' ablation tables, rerun at CPU scale in one command (`make reproduce`).

Each ablation is a table (or two) of the four reports in this project's specification ("Tuning Up
BERT", "BERT and Beyond", "BERT++", SUSTech's "BERT for Downstream Multitask"), kept as one small file,
recipes/ablations/NN-name.toml: each row is the cited report's CPU recipe (recipes/cpu/) with the keys
the row varies, the report's figures beside it (recipes.py reads them). Every row is a train.py run
of one fixed length, repeated over --seeds seeds; ensemble.py then combines finished runs ("Tuning Up
BERT" Tables 5-6). results/REPORT.md (and REPORT.html, with a bar chart per table) puts our dev
figures, mean ± std over seeds, beside the report's own, and says in each table's sentence what of
the report's setup could not be had here. This module plans and runs; ablation_report.py writes the page.

    python reproduce.py --data-dir data                  # every ablation, 3 seeds (make reproduce)
    python reproduce.py --data-dir data --quick          # 1 seed, small budget, a subset (make reproduce-quick)
    python reproduce.py --data-dir data --only schedules,pcgrad --seeds 1
    python reproduce.py --data-dir data --plan           # the plan and expected time; runs nothing

Runs live in results/runs/<key>/seed<k>, the key made of the row's recipe, what it varies and a
hash of every training flag (budget included) and of the data it reads (the course files' contents,
and --synth's for a synth row), so a configuration shared by several tables runs once, a quick and a
full reproduction never mix, and a run on data changed since is never reused or resumed. A
finished run (metrics.json) is reused, one with a checkpoint.pt is continued with --resume: Ctrl-C
stops cleanly, and the same command again runs only what is missing (or, with --seeds 4, only the
new seed).
"""

import ctypes
import functools
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import ablation_report
import cli
import data
import files
import recipes
from ablation_report import SYNTH_SKIPPED, ReproduceError, finished, read_train_metrics, run_values
from analysis import RunError, read_json
from loop import format_time
from recipes import Ref
from tasks import TASK_NAMES, TASKS

ROOT = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------
# the ablations: recipes/ablations/*.toml, each row a report's CPU recipe and the keys it varies


@functools.cache
def ablations():
    """Every ablation table (recipes.read_ablations), read once."""
    try:
        return recipes.read_ablations()
    except recipes.RecipeError as e:
        raise ReproduceError(str(e)) from None


def ablation_names():
    return tuple(a.name for a in ablations())


# "Tuning Up BERT" Table 5: one model for all tasks, and per-task ensembles chosen on dev.
ENSEMBLE_REFS = {
    "best single run": Ref("Tuning Up BERT T5", 0.534, 0.895, 0.888, 0.791),
    "ensemble per task, chosen on dev": Ref("Tuning Up BERT T5", 0.549, 0.910, 0.905, 0.803),
}
MLM_RECIPE = ROOT / "recipes" / "cpu" / "sustech-mlm.toml"  # SUSTech's MLM settings, the budget's steps

# ----------------------------------------------------------------------------
# budgets and the plan


@dataclass(frozen=True)
class Budget:
    """The length of every run: epochs x steps batches. A row whose recipe needs more epochs (two
    QQP-only epochs first) splits the same batches over its own epochs; the summed schedules, whose
    steps train all three tasks, get a third of the steps, so every row sees the same number of
    batches (SMART's steps cost more time, not more data). Batch sizes and learning rates are the
    rows' recipes'."""

    epochs: int
    steps: int  # per epoch
    eval_subset: int  # dev rows per task scored after each epoch; the best epoch is scored on all of dev
    mlm_steps: int  # mlm.py --max-steps (recipes/cpu/sustech-mlm.toml: batch 64, lr 5e-5)

    def describe(self):
        return (
            f"{self.epochs * self.steps} batches in {self.epochs} epoch(s) of {self.steps} steps (a row that sets its "
            f"own epochs splits them over those; summed schedules: a third of the steps, 3 tasks each), per-epoch "
            f"dev scoring on {self.eval_subset} rows per task (the best epoch on the full dev sets); batch sizes and "
            f"learning rates: each row's recipe; MLM: {self.mlm_steps} steps of recipes/cpu/sustech-mlm.toml"
        )


FULL = Budget(epochs=2, steps=600, eval_subset=2000, mlm_steps=600)
QUICK = Budget(epochs=1, steps=250, eval_subset=500, mlm_steps=150)

# The expected time until this results folder has finished runs of its own to measure, from the
# figures in docs/performance.md and docs/mlm-export.md for this 2-core machine when quiet: the fp32 main job trains at
# 3.6-3.7 steps/s (one task's batch of 16 a step), and its 16 min 43 s less 3,000 steps leaves
# about 3 min for scoring some 38k dev and test rows: about 110 s for the 22k rows of the full
# dev sets. 300 MLM steps (batch 64) took 4 min 58 s with their evaluations.
STEPS_PER_S = 3.6
STARTUP_S = 15  # per run: starting Python, loading the model, reading and tokenizing the data
FINAL_EVAL_S = 110  # per run: scoring the best epoch on the full dev sets (20k quora-dev pairs)
MLM_STEPS_PER_S = 1.0
SMART_COST = 2.3  # a SMART step costs 2.1-2.5 plain ones here (docs/techniques.md, "SMART and PCGrad")
SUMMED = ("summed", "cycled-summed")


@dataclass
class PlannedRun:
    key: str  # results/runs/<key>
    seed: int
    flags: tuple  # every train.py flag but --out and --data-dir
    labels: list  # "ablation: configuration" for each table it appears in
    units: float  # cost in plain steps

    def folder(self, results):
        return Path(results) / "runs" / self.key / f"seed{self.seed}"


def argv(settings):
    """train.py's command line for {flag: value}: true is the bare flag, false leaves it out, a list
    is its values. Sorted, so one configuration is one command line, whichever table names it."""
    flags = []
    for key, value in sorted(settings.items()):
        if value is True:
            flags.append(f"--{key}")
        elif value is not False:
            flags += [f"--{key}", *map(str, value if isinstance(value, list) else [value])]
    return tuple(flags)


def row_flags(row, budget, model, mlm_dir=None, synth=None):
    """Every train.py flag of one row, one command line per task it runs (without --seed, --out and
    --data-dir): the base recipe's keys, the row's over them, then the budget's length."""
    settings = dict(row.settings)
    epochs = row.epochs or budget.epochs
    steps = max(1, budget.epochs * budget.steps // epochs // (3 if settings.get("schedule") in SUMMED else 1))
    settings.update({"epochs": epochs, "steps-per-epoch": steps, "eval-subset": budget.eval_subset})
    settings.update({"model": str(mlm_dir / "encoder" if mlm_dir else model), "no-report": True})
    settings.update({f"{t}-test": "none" for t in TASK_NAMES})
    if synth and row.synth:
        settings["sst-synth"] = str(synth)
    return [argv({**settings, "task": task}) for task in row.tasks] or [argv(settings)]


def slug(words):
    """A readable folder name: ("sustech", "batch-size=8") -> "sustech_batch-size-8"."""
    return "_".join(w.replace("=", "-").replace(",", "+").replace("/", "_") for w in words)


def data_hashes(data_dir):
    """{file name: sha256} of the course files in `data_dir`: part of every run's key (by name, so a
    moved data folder keeps its runs)."""
    paths = [Path(data_dir) / TASKS[t].files[split] for t in TASKS for split in ("train", "dev", "test")]
    return {Path(p).name: sha for p, sha in data.file_hashes([p for p in paths if p.is_file()]).items()}


def run_key(row, flags, results, data_read):
    """The row's setup and what it varies, to read, and a hash of every flag (budget and encoder too)
    and of `data_read` (the contents of the files it reads). The results folder's own path is left
    out of the hash (an MLM row's --model lies inside it), so a moved results folder keeps its runs."""
    hashed = [[f.replace(str(results), "<results>") for f in flags], data_read]
    digest = hashlib.sha1(json.dumps(hashed).encode()).hexdigest()[:8]
    values = dict(row.settings)
    task = flags[flags.index("--task") + 1] if "--task" in flags else "all"
    words = [row.base, *(f"{k}={values[k]}" for k in row.changed if k != "task")]
    words += [f"task={task}"] * (task != "all") + ["mlm"] * row.mlm + ["synth"] * ("--sst-synth" in flags)
    return f"{slug(words)}-{digest}"


def selected(args):
    names = args.only.split(",") if args.only else ablation_names()
    chosen = [a for a in ablations() if a.name in names]
    if args.quick and not args.only:
        chosen = [a for a in chosen if a.quick]
    return chosen


def rows_of(ablation, quick):
    """The rows to run: with --quick, the table's quick rows (all, if it marks none: a table
    outside --quick's subset is only run when named with --only)."""
    return [r for r in ablation.rows if not quick or not ablation.quick or r.quick]


def flags_of(args, row):
    """The command lines of one row in this reproduction ([] when it needs a --synth it lacks)."""
    if row.synth == "needed" and not args.synth:
        return []
    return row_flags(row, args.budget, args.model, args.mlm_dir if row.mlm else None, args.synth)


def plan_runs(args):
    """The runs the chosen ablations need, each distinct command line once per seed."""
    runs, course = {}, data_hashes(args.data_dir)
    synth = data.file_hashes([args.synth]) if args.synth else {}
    for ablation in selected(args):
        for row in rows_of(ablation, args.quick):
            for flags in flags_of(args, row):
                data_read = {**course, **({"synth": [*synth.values()]} if "--sst-synth" in flags else {})}
                key = run_key(row, flags, args.results, data_read)
                smart = SMART_COST if dict(row.settings).get("smart", 0) > 0 else 1.0
                units = args.budget.epochs * args.budget.steps * smart
                for seed in range(args.seeds):
                    run = runs.setdefault((key, seed), PlannedRun(key, seed, flags + ("--seed", str(seed)), [], units))
                    run.labels.append(f"{ablation.name}: {row.label}")
    return list(runs.values())


def mlm_folder(args, budget):
    """mlm.py's folder and flags: SUSTech's MLM recipe, the budget's steps (its text in the hash, and
    its path inside the checkout, not where the checkout lies)."""
    flags = ["--config", str(MLM_RECIPE), "--model", str(args.model), "--max-steps", str(budget.mlm_steps)]
    flags += ["--seed", "0"]
    hashed = [str(MLM_RECIPE.relative_to(ROOT)), *flags[2:]]
    text = [MLM_RECIPE.read_text(), data_hashes(args.data_dir)]  # the recipe's and the task text's contents
    digest = hashlib.sha1(json.dumps([hashed, *text]).encode()).hexdigest()[:8]
    return Path(args.results) / "runs" / f"mlm-pretraining-{digest}", flags


def run_units(config):
    """A finished run's cost in plain steps, from its metrics.json config."""
    tasks_per_step = 3 if config.get("schedule") in SUMMED and config.get("task") == "all" else 1
    smart = SMART_COST if config.get("smart", 0) > 0 else 1.0
    return config["epochs"] * config["steps_per_epoch"] * tasks_per_step * smart


def final_eval_seconds(log):
    """How long the full-dev scoring took, as train.py printed it in a run's log (None: not there)."""
    found = re.findall(r"on the full dev sets \((\d+)m(\d+)s\)", log.read_text()) if log.is_file() else []
    return int(found[-1][0]) * 60 + int(found[-1][1]) if found else None


def measured(results):
    """(plain steps per second, seconds of full-dev scoring) over every finished train.py run in this
    results folder, from their metrics.json and logs; None if there is none."""
    units = seconds = 0.0
    evals = []
    for path in Path(results).glob("runs/*/seed*/metrics.json"):
        metrics = read_train_metrics(path)
        log = Path(results) / "logs" / f"{path.parent.parent.name}-{path.parent.name}.log"
        scoring = final_eval_seconds(log)
        if scoring is not None and metrics["config"]["task"] == "all":
            evals.append(scoring)
        units += run_units(metrics["config"])
        seconds += max(metrics["wall_time_s"] - (FINAL_EVAL_S if scoring is None else scoring), 1.0)
    return (units / seconds, float(np.mean(evals)) if evals else FINAL_EVAL_S) if units else None


def estimate(runs, results, mlm_steps):
    """Seconds the runs still missing should take, and where the figures come from."""
    found = measured(results)
    rate, scoring = found or (STEPS_PER_S, FINAL_EVAL_S)
    source = "measured on this folder's finished runs" if found else "the figures in docs/ for this machine, quiet"
    todo = [r for r in runs if not finished(r.folder(results))]
    seconds = sum(STARTUP_S + scoring + r.units / rate for r in todo) + mlm_steps / MLM_STEPS_PER_S
    return seconds, todo, f"{rate:.2f} plain steps/s and {scoring:.0f}s of final scoring per run ({source})"


def finished_runs(results, runs):
    return [r for r in runs if finished(r.folder(results))]


# ----------------------------------------------------------------------------
# running train.py, mlm.py and ensemble.py as processes


class Stopped(Exception):
    """Ctrl-C: the running process saved its checkpoint and stopped."""


def dies_with_us():
    """A preexec_fn for our children: Linux sends the child SIGTERM when we die, however we die
    (SIGKILL included), so no train.py goes on writing a run folder with nobody watching.
    Elsewhere nothing is armed (a child then dies at its next line, on the broken pipe)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl, parent = ctypes.CDLL(None, use_errno=True).prctl, os.getpid()  # looked up before the fork

    def arm():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died before it was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


PR_SET_PDEATHSIG = 1  # from <sys/prctl.h>


def run_logged(cmd, log):
    """Run `cmd`, copying its output line by line to our stdout and to `log`. The child runs in
    its own session, so Ctrl-C in the terminal reaches only us; we pass it on once, and train.py
    or mlm.py then saves a checkpoint and exits 130. If we are killed, the child is told to stop
    too (dies_with_us). Returns (exit code, last line, interrupted)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / cmd[0]), *cmd[1:]],  # from our folder; relative paths stay the caller's
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=dies_with_us(),
    )
    print(f"  $ python {' '.join(cmd)}", flush=True)
    files.append_text(log, f"$ python {' '.join(cmd)}\n")
    interrupted, last = False, ""
    while True:
        try:
            line = proc.stdout.readline()
            if not line:
                return proc.wait(), last, interrupted
            print("    " + line, end="", flush=True)
            files.append_text(log, line)
            last = line.strip() or last
        except KeyboardInterrupt:
            interrupted = True
            proc.send_signal(signal.SIGINT)  # a second Ctrl-C is passed on too: stop at once


def run_process(script, folder, new_flags, log):
    """train.py or mlm.py into `folder`: continue it if it has a checkpoint, else start it anew
    (--overwrite clears what an attempt stopped before its first checkpoint left behind)."""
    if (folder / "checkpoint.pt").is_file():
        cmd = [script, "--resume", str(folder)]
    else:
        cmd = [script, *new_flags, "--out", str(folder), "--overwrite"]
    log.parent.mkdir(parents=True, exist_ok=True)
    check_exit(script, folder, log, *run_logged(cmd, log))


def check_exit(script, folder, log, code, last, interrupted):
    """Ctrl-C (ours or the child's exit 130) stops the reproduction; any other failure is one error."""
    if interrupted or code == 130:
        raise Stopped(folder)
    if code != 0:
        raise ReproduceError(f"{script} failed (exit {code}) in {folder}: {last} (whole log: {log})")


def train_runs(args, runs):
    """Every run still missing, with a progress line (run i/n, elapsed, ETA) before each."""
    results, t0 = Path(args.results), time.time()
    todo = [r for r in runs if not finished(r.folder(results))]
    print(f"{len(runs) - len(todo)} of {len(runs)} runs already finished (reused); {len(todo)} to run", flush=True)
    for i, run in enumerate(todo):
        left, _, _ = estimate(runs, results, 0)  # the runs still missing, at the rate measured so far
        done = time.time() - t0
        print(
            f"\n[run {i + 1}/{len(todo)}] {run.folder(results)}  ({'; '.join(run.labels)})  "
            f"elapsed {format_time(done)}  ETA {format_time(left)}",
            flush=True,
        )
        flags = (*run.flags, "--data-dir", str(args.data_dir))
        run_process("train.py", run.folder(results), flags, results / "logs" / f"{run.key}-seed{run.seed}.log")
    return len(todo)


def run_mlm(args, budget):
    """mlm.py on the task text with the budget's steps (once, seed 0); returns its folder."""
    folder, flags = mlm_folder(args, budget)
    if finished(folder):
        print(f"MLM pretraining: reusing {folder}", flush=True)
        return folder
    print(f"\n[mlm] {folder}: {budget.mlm_steps} steps of further pretraining", flush=True)
    log = Path(args.results) / "logs" / f"{folder.name}.log"
    run_process("mlm.py", folder, (*flags, "--data-dir", str(args.data_dir)), log)
    return folder


def run_ensemble(args, name, members, extra=()):
    """ensemble.py over finished run folders; reused when the same members were combined before."""
    flags = [*map(str, members), *extra]
    # a member trained again since (its metrics.json is newer) makes a new ensemble
    stamps = [(Path(m) / "metrics.json").stat().st_mtime_ns for m in members]
    digest = hashlib.sha1(json.dumps([flags, stamps]).encode()).hexdigest()[:8]
    out = Path(args.results) / "ensembles" / f"{name}-{digest}"
    if not (out / "ensemble.json").is_file():  # ensemble.py writes it last: the folder is complete
        if out.exists():  # an interrupted one (ensemble.py refuses a folder that is not empty)
            print(f"removing the incomplete ensemble {out} (interrupted) and combining again", flush=True)
            files.remove(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        log = Path(args.results) / "logs" / f"{out.name}.log"
        result = run_logged(["ensemble.py", *flags, "--out", str(out), "--data-dir", str(args.data_dir)], log)
        check_exit("ensemble.py", out, log, *result)
    return out


def ensembles(args, runs):
    """ "Tuning Up BERT" Tables 5-6: the best single run, then per-task ensembles of each
    configuration's best seed (chosen on all of dev, and chosen on one half and scored on the
    other) and of the seeds of the configuration most tables share. Returns [(label, metrics, ref)]."""
    results, rows = Path(args.results), []
    done = [(r, read_train_metrics(r.folder(results) / "metrics.json")) for r in finished_runs(results, runs)]
    complete = [(r, m) for r, m in done if all(t in m["dev"] for t in TASK_NAMES)]
    if not complete:
        return rows
    best_run, best = max(complete, key=lambda x: x[1]["overall"])
    rows.append((f"best single run ({best_run.key}, seed {best_run.seed})", best, ENSEMBLE_REFS["best single run"]))
    best_seed = {}  # configuration (run key) -> its best seed's run, by overall (sst alone: sst)
    for r, m in done:
        mark = run_values(m)["overall"] or m["dev"].get("sst", 0)
        if r.key not in best_seed or mark > best_seed[r.key][0]:
            best_seed[r.key] = (mark, r.folder(results))
    members = [folder for _, folder in best_seed.values()]
    if len(members) >= 2:
        out = run_ensemble(args, "best-of-each-configuration", members)
        label = f"ensemble per task, chosen on dev (from {len(members)} runs: each configuration's best seed)"
        rows.append((label, read_json(out / "metrics.json"), ENSEMBLE_REFS["ensemble per task, chosen on dev"]))
        out = run_ensemble(args, "best-of-each-configuration-half", members, ("--select-on", "0.5"))
        held = read_json(out / "ensemble.json")["held_out"]
        rows.append(("the same, chosen on half of dev, scored on the other half", held, None))
    shared = max(complete, key=lambda x: len(x[0].labels))[0]  # the configuration most tables share
    base = [r.folder(results) for r, _ in complete if r.key == shared.key]
    if len(base) >= 2:
        out = run_ensemble(args, "most-shared-seeds", base)
        label = f"ensemble per task of the {len(base)} seeds of {shared.key} (in {len(shared.labels)} tables)"
        rows.append((label, read_json(out / "metrics.json"), None))
    return rows


def ensemble_and_report(args, runs):
    """Any ensemble still to combine, then the page of the finished runs (ablation_report.py)."""
    chosen = [(a, [(row, flags_of(args, row)) for row in rows_of(a, args.quick)]) for a in selected(args)]
    return ablation_report.write_ablation_report(args, chosen, runs, ensembles(args, runs))


# ----------------------------------------------------------------------------
# command line


def get_parser():
    p = cli.new_parser(__doc__)
    p.add_argument("--quick", action="store_true", help="one seed, the small budget, a subset of the ablations")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 3, --quick 1)")
    p.add_argument("--only", default=None, help="comma-separated ablations (recipes/ablations/NN-<name>.toml)")
    p.add_argument("--synth", default=None, help="synth.py paraphrases (JSONL): runs the synth ablation")
    p.add_argument("--results", default="results", help="folder for runs/, logs/, REPORT.md and REPORT.html")
    p.add_argument("--data-dir", default="data", help="folder with the course files (make data)")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="encoder for every run (train.py --model)")
    p.add_argument("--plan", action="store_true", help="print the plan and the expected time, run nothing")
    p.add_argument(
        "--report-only",
        action="store_true",
        help="write REPORT.md and REPORT.html from the finished runs (combining any ensemble not yet combined); "
        "train nothing",
    )
    g = p.add_argument_group("budget overrides (tests, or a budget of your own; they change the run keys)")
    g.add_argument("--epochs", type=int, default=None, help="epochs per run")
    g.add_argument("--steps", type=int, default=None, help="steps per epoch")
    g.add_argument("--mlm-steps", type=int, default=None, help="mlm.py steps")
    return p


def parse_args(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    overrides = {"epochs": args.epochs, "steps": args.steps, "mlm_steps": args.mlm_steps}
    for name, value in overrides.items():
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    args.budget = Budget(**{**vars(base), **{k: v for k, v in overrides.items() if v is not None}})
    args.seeds = args.seeds if args.seeds is not None else 1 if args.quick else 3
    if args.seeds < 1:
        parser.error(f"--seeds must be at least 1, got {args.seeds}")
    try:
        names = ablation_names()
    except ReproduceError as e:
        parser.error(str(e))
    unknown = sorted(set(args.only.split(",")) - set(names)) if args.only else []
    if unknown:
        parser.error(f"--only: unknown ablation {', '.join(unknown)} (choose from {', '.join(names)})")
    if args.synth and not Path(args.synth).is_file():
        parser.error(f"--synth {args.synth}: no such file")
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder (make data fetches the course files)")
    if problem := files.in_a_run(args.results, "--results", itself=True):  # a run's folder is no results folder
        parser.error(problem)
    mlm_needed = any(r.mlm for a in selected(args) for r in rows_of(a, args.quick))
    args.mlm_dir = mlm_folder(args, args.budget)[0] if mlm_needed else None
    return args


def print_plan(args, runs):
    mlm_todo = args.mlm_dir is not None and not finished(args.mlm_dir)
    seconds, todo, how = estimate(runs, args.results, args.budget.mlm_steps if mlm_todo else 0)
    print(f"reproduce: {'quick' if args.quick else 'full'}; {args.seeds} seed(s); budget: {args.budget.describe()}")
    for a in selected(args):
        print(f"  {a.name}: {', '.join(r.label for r in rows_of(a, args.quick))}")
    if not args.synth and any(a.name == "synth" for a in selected(args)):
        print(f"  {SYNTH_SKIPPED}")
    print(
        f"{len(runs)} distinct runs ({len(runs) - len(todo)} finished){' + MLM pretraining' * mlm_todo}; "
        f"expected time {format_time(seconds)} at {how}",
        flush=True,
    )


def reproduce(args):
    runs = plan_runs(args)
    print_plan(args, runs)
    if args.plan:
        return
    if not args.report_only:
        if args.mlm_dir and not finished(args.mlm_dir):
            run_mlm(args, args.budget)
        ran = train_runs(args, runs)
        print(f"\nran {ran} run(s), reused {len(runs) - ran}", flush=True)
    print(f"wrote {ensemble_and_report(args, runs)} and REPORT.html", flush=True)


def interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM and SIGHUP stop like Ctrl-C: the running child is told, and saves


def main():
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps it ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)  # the terminal closed: stop as cleanly as after Ctrl-C
    args = parse_args()
    try:
        reproduce(args)
    except (Stopped, KeyboardInterrupt) as e:
        where = f" in {e}" if isinstance(e, Stopped) else ""
        print(f"\nstopped{where}: run the same command again to continue (finished runs are reused)", file=sys.stderr)
        sys.exit(130)
    except (ReproduceError, RunError, files.WriteError) as e:  # RunError: a run's JSON file unreadable
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
