"""The reports' ablation tables, rerun at CPU scale in one command (`make reproduce`).

Each ablation below is a table (or two) of the four reports in this project's specification
("Tuning Up BERT", "BERT and Beyond", "BERT++", SUSTech's "BERT for Downstream Multitask"). Every
configuration is a train.py run under one fixed budget, repeated over --seeds seeds; ensemble.py
then combines finished runs ("Tuning Up BERT" Tables 5-6). results/REPORT.md (and REPORT.html,
with a bar chart per table) puts our dev figures, mean ± std over seeds, beside the report's own.

    python reproduce.py --data-dir data                  # every ablation, 3 seeds (make reproduce)
    python reproduce.py --data-dir data --quick          # 1 seed, small budget, a subset (make reproduce-quick)
    python reproduce.py --data-dir data --only schedules,pcgrad --seeds 1
    python reproduce.py --data-dir data --plan           # the plan and expected time; runs nothing

Runs live in results/runs/<key>/seed<k>, the key made of the configuration's flags and a hash of
every training flag (budget included), so a configuration shared by several tables (the baseline)
runs once, and a quick and a full reproduction never mix. A finished run (metrics.json) is reused,
one with a checkpoint.pt is continued with --resume: Ctrl-C stops cleanly, and the same command
again runs only what is missing (or, with --seeds 4, only the new seed).
"""

import argparse
import ctypes
import hashlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

import files
import pages
import svg
from loop import format_time
from tasks import TASK_NAMES, overall, plain_mean

ROOT = Path(__file__).resolve().parent

# ----------------------------------------------------------------------------
# the ablations: what each report table compared, and the figures it gave


@dataclass(frozen=True)
class Ref:
    """A report's dev figures for one configuration; None where the report gives none. `kind` says
    which overall the report printed: the course formula or the plain mean (BERT++, SUSTech)."""

    source: str
    sst: float | None = None
    para: float | None = None
    sts: float | None = None
    overall: float | None = None
    kind: str = "course"


@dataclass(frozen=True)
class Config:
    label: str
    flags: tuple = ()  # train.py flags on top of the budget's
    refs: tuple = ()  # the report figures for this configuration, one Ref per report that has them
    needs: str = ""  # "mlm": train from the mlm.py encoder; "synth": needs --synth FILE


@dataclass(frozen=True)
class Ablation:
    name: str  # for --only
    title: str
    configs: tuple
    metric: tuple = ("overall",)  # columns (averaged) that decide the best configuration, ours and the report's
    quick: tuple = ()  # the configurations (their positions) --quick runs; none: not part of --quick


TU, BB, BPP, SU = "Tuning Up BERT", "BERT and Beyond", "BERT++", "SUSTech"
BASE = Config("baseline: cross, annealed, ce", (), (Ref(f"{TU} T4", 0.534, 0.895, 0.888, 0.791),))
EVEN = ("--schedule", "even")
SMART_ST = ("--task", "sst")

ABLATIONS = (
    # Tuning Up BERT Table 1 (bi vs cross); BERT and Beyond Table 1 (bi, mixed, cross): QQP and STS only.
    Ablation(
        "pair-encoding",
        "Pair encoding: bi vs mixed vs cross",
        (
            Config(
                "bi (concat head)",
                ("--pair-encoding", "bi", "--bi-head", "concat"),
                (Ref(f"{TU} T1", para=0.605, sts=0.544), Ref(f"{BB} T1", para=0.712, sts=0.324)),
            ),
            Config(
                "mixed (cross QQP, bi cosine STS)",
                ("--para-encoding", "cross", "--sts-encoding", "bi"),
                (Ref(f"{BB} T1", para=0.840, sts=0.612),),
            ),
            Config(
                "cross (baseline)", (), (Ref(f"{TU} T1", para=0.905, sts=0.896), Ref(f"{BB} T1", para=0.832, sts=0.873))
            ),
        ),
        metric=("para", "sts"),
        quick=(0, 2),
    ),
    # Tuning Up BERT Table 3: SMART on single-task models; we train SST-5 alone (the table's SST column).
    Ablation(
        "smart-single",
        "SMART λ, single-task SST-5",
        tuple(
            Config(f"sst alone, λ={lam}", SMART_ST + (("--smart", str(lam)) if lam else ()), (Ref(f"{TU} T3", sst),))
            for lam, sst in ((0, 0.540), (1, 0.543), (3, 0.549))
        ),
        metric=("sst",),
    ),
    # Tuning Up BERT Table 4: annealed sampling with and without SMART (λ=3) in the multitask setting.
    Ablation(
        "smart-multi",
        "SMART λ, multitask",
        (
            Config("λ=0 (baseline)", (), BASE.refs),
            Config("λ=1", ("--smart", "1")),
            Config("λ=3", ("--smart", "3"), (Ref(f"{TU} T4", 0.530, 0.885, 0.894, 0.787),)),
        ),
    ),
    # BERT and Beyond Table 6: SMART on SST and QQP only, multitask (their schedule: staggered).
    Ablation(
        "smart-sst-para",
        "SMART λ on sst+para only",
        (
            Config("λ=0 (baseline)", (), (Ref(f"{BB} T6", 0.519, 0.887, 0.876, 0.781),)),
            Config(
                "λ=1", ("--smart", "1", "--smart-tasks", "sst,para"), (Ref(f"{BB} T6", 0.540, 0.885, 0.882, 0.789),)
            ),
            Config(
                "λ=3", ("--smart", "3", "--smart-tasks", "sst,para"), (Ref(f"{BB} T6", 0.539, 0.883, 0.889, 0.789),)
            ),
        ),
    ),
    # Tuning Up BERT Table 4 (uniform, annealed); BERT and Beyond Table 2 (round-robin, max-size cycle,
    # staggered); SUSTech Table 2 (even batching); BERT++ Table 2 Model C (summed). Sequential is left
    # out: cut to a fixed budget of steps, its sst-then-para-then-sts order never reaches sts.
    Ablation(
        "schedules",
        "Multitask schedules",
        (
            Config("annealed (baseline)", (), BASE.refs),
            Config("uniform", ("--schedule", "uniform"), (Ref(f"{TU} T4", 0.518, 0.881, 0.900, 0.783),)),
            Config("round-robin", ("--schedule", "round-robin"), (Ref(f"{BB} T2", 0.510, 0.847, 0.876, 0.765),)),
            Config("max-size cycle", ("--schedule", "max-size-cycle"), (Ref(f"{BB} T2", 0.500, 0.873, 0.879, 0.772),)),
            Config(
                "staggered (1 epoch QQP first)",
                ("--schedule", "staggered", "--stagger-epochs", "1"),
                (Ref(f"{BB} T2", 0.519, 0.887, 0.876, 0.781),),
            ),
            Config("even", EVEN, (Ref(f"{SU} T2", 0.4850, 0.8097, 0.6955, 0.6634, "plain"),)),
            Config("summed", ("--schedule", "summed"), (Ref(f"{BPP} T2 C", 0.426, 0.801, 0.121, 0.449, "plain"),)),
        ),
        quick=(0, 1),
    ),
    # BERT and Beyond §4.5 compares the three losses in a figure only; Table 3 gives ce and dual
    # (both with staggered fine-tuning + SMART).
    Ablation(
        "sst-loss",
        "Sentiment loss: ce / ordinal log-loss / dual",
        (
            Config("ce (baseline)", (), (Ref(f"{BB} T3", 0.525, 0.888, 0.878, 0.783),)),
            Config("oll", ("--sst-loss", "oll")),
            Config("dual", ("--sst-loss", "dual"), (Ref(f"{BB} T3", 0.540, 0.888, 0.885, 0.790),)),
        ),
        quick=(0, 2),
    ),
    # BERT++ Table 2: Model C (summed loss) vs Model D (the same with PCGrad).
    Ablation(
        "pcgrad",
        "PCGrad vs summed loss",
        (
            Config("summed", ("--schedule", "summed"), (Ref(f"{BPP} T2 C", 0.426, 0.801, 0.121, 0.449, "plain"),)),
            Config(
                "summed + PCGrad",
                ("--schedule", "summed", "--pcgrad"),
                (Ref(f"{BPP} T2 D", 0.446, 0.800, 0.332, 0.526, "plain"),),
            ),
        ),
    ),
    # SUSTech Table 5 (cross encoding, task-head dropout, batch 16: our setting) for k = 1, 0.2, 0.3;
    # Table 4 (cross, no head dropout) for k = 0.1. Their schedule: even batching.
    Ablation(
        "para-weight",
        "Paraphrase loss weight k (even batching)",
        (
            Config("k=1", EVEN, (Ref(f"{SU} T5", 0.5077, 0.8901, 0.8841, 0.7606, "plain"),)),
            Config(
                "k=0.1", EVEN + ("--para-weight", "0.1"), (Ref(f"{SU} T4", 0.4850, 0.8872, 0.8802, 0.7508, "plain"),)
            ),
            Config(
                "k=0.2", EVEN + ("--para-weight", "0.2"), (Ref(f"{SU} T5", 0.4886, 0.8866, 0.8802, 0.7545, "plain"),)
            ),
            Config(
                "k=0.3", EVEN + ("--para-weight", "0.3"), (Ref(f"{SU} T5", 0.5013, 0.8884, 0.8915, 0.7604, "plain"),)
            ),
        ),
    ),
    # SUSTech Table 5: task-head dropout on or off (k = 1, even batching).
    Ablation(
        "head-dropout",
        "Task-head dropout (even batching)",
        (
            Config("dropout 0.1", EVEN, (Ref(f"{SU} T5", 0.5077, 0.8901, 0.8841, 0.7606, "plain"),)),
            Config(
                "no dropout", EVEN + ("--dropout", "0"), (Ref(f"{SU} T5", 0.5122, 0.8879, 0.8797, 0.7600, "plain"),)
            ),
        ),
    ),
    # SUSTech Table 2 (even, no MLM) vs Table 3 (even, after MLM on the task sentences); we compare
    # on the baseline, trained from the packaged encoder or from mlm.py's.
    Ablation(
        "mlm",
        "Further MLM pretraining vs none",
        (
            Config("none (baseline)", (), (Ref(f"{SU} T2", 0.4850, 0.8097, 0.6955, 0.6634, "plain"),)),
            Config(
                "MLM on the task text", (), (Ref(f"{SU} T3", 0.5122, 0.7984, 0.7608, 0.6905, "plain"),), needs="mlm"
            ),
        ),
        quick=(0, 1),
    ),
    # Tuning Up BERT Table 2: SST-5 with synthetic paraphrases (GPT-3.5) added to its training data.
    Ablation(
        "synth",
        "Synthetic SST paraphrases vs none",
        (
            Config("real data (baseline)", (), (Ref(f"{TU} T2", sst=0.530),)),
            Config("real + synthetic", (), (Ref(f"{TU} T2", sst=0.540),), needs="synth"),
        ),
        metric=("sst",),
    ),
)
ABLATION_NAMES = tuple(a.name for a in ABLATIONS)

# "Tuning Up BERT" Table 5: one model for all tasks, and per-task ensembles chosen on dev.
ENSEMBLE_REFS = {
    "best single run": Ref(f"{TU} T5", 0.534, 0.895, 0.888, 0.791),
    "ensemble per task, chosen on dev": Ref(f"{TU} T5", 0.549, 0.910, 0.905, 0.803),
}

# ----------------------------------------------------------------------------
# budgets and the plan


@dataclass(frozen=True)
class Budget:
    """The same for every configuration. Steps train one task's batch each, except the summed
    schedules, whose steps train all three: they get a third of the steps, so every
    configuration sees the same number of batches (SMART's steps cost more time, not more data)."""

    epochs: int
    steps: int  # per epoch
    batch: int
    lr: float
    eval_subset: int  # dev rows per task scored after each epoch; the best epoch is scored on all of dev
    mlm_steps: int  # mlm.py --max-steps (batch 64, lr 5e-5: SUSTech's settings)

    def describe(self):
        return (
            f"{self.epochs} epoch(s) x {self.steps} steps (summed schedules: a third of the steps, 3 tasks each), "
            f"batch {self.batch}, lr {self.lr:g}, per-epoch dev scoring on {self.eval_subset} rows per task "
            f"(the best epoch on the full dev sets); MLM: {self.mlm_steps} steps of batch 64, lr 5e-5"
        )


FULL = Budget(epochs=2, steps=600, batch=16, lr=1e-4, eval_subset=2000, mlm_steps=600)
QUICK = Budget(epochs=1, steps=250, batch=16, lr=1e-4, eval_subset=500, mlm_steps=150)

# The expected time until this results folder has finished runs of its own to measure, from the
# README's figures for this project's 2-core machine when quiet: the fp32 main job trains at
# 3.6-3.7 steps/s (one task's batch of 16 a step), and its 16 min 43 s less 3,000 steps leaves
# about 3 min for scoring some 38k dev and test rows: about 110 s for the 22k rows of the full
# dev sets. 300 MLM steps (batch 64) took 4 min 58 s with their evaluations.
STEPS_PER_S = 3.6
STARTUP_S = 15  # per run: starting Python, loading the model, reading and tokenizing the data
FINAL_EVAL_S = 110  # per run: scoring the best epoch on the full dev sets (20k quora-dev pairs)
MLM_STEPS_PER_S = 1.0
SMART_COST = 2.3  # a SMART step costs 2.1-2.5 plain ones here (README, "SMART and PCGrad")


@dataclass
class Run:
    key: str  # results/runs/<key>
    seed: int
    flags: tuple  # every train.py flag but --out and --data-dir
    labels: list  # "ablation: configuration" for each table it appears in
    units: float  # cost in plain steps

    def folder(self, results):
        return Path(results) / "runs" / self.key / f"seed{self.seed}"


def slug(flags):
    """A readable folder name from flags: ("--schedule", "even") -> "schedule-even"."""
    words = [f.lstrip("-").replace(",", "+").replace("/", "_") for f in flags]
    return "_".join(words).replace("_-", "-") or "base"


def config_flags(config, budget, model, mlm_dir=None, synth=None):
    """Every train.py flag of one configuration (without --seed, --out and --data-dir)."""
    summed = any(s in config.flags for s in ("summed", "cycled-summed"))
    flags = ["--task", "all", "--epochs", str(budget.epochs), "--batch-size", str(budget.batch)]
    flags += ["--steps-per-epoch", str(budget.steps // 3 if summed else budget.steps), "--lr", f"{budget.lr:g}"]
    flags += ["--eval-subset", str(budget.eval_subset), "--model", str(mlm_dir / "encoder" if mlm_dir else model)]
    flags += ["--no-report", "--sst-test", "none", "--para-test", "none", "--sts-test", "none"]
    if synth:
        flags += ["--sst-synth", str(synth)]
    if "--task" in config.flags:  # a single-task configuration overrides --task all
        i = flags.index("--task")
        del flags[i : i + 2]
    return tuple(flags) + config.flags


def run_key(config, flags):
    """The configuration's flags to read, and a hash of every flag, budget and encoder included."""
    digest = hashlib.sha1(json.dumps(flags).encode()).hexdigest()[:8]
    return f"{slug(config.flags + ((config.needs,) if config.needs else ()))}-{digest}"


def selected(args):
    names = args.only.split(",") if args.only else ABLATION_NAMES
    chosen = [a for a in ABLATIONS if a.name in names]
    if args.quick and not args.only:
        chosen = [a for a in chosen if a.quick]
    return chosen


def configs_of(ablation, quick):
    """The configurations to run: with --quick, the ablation's quick subset (all, if it has none:
    an ablation outside --quick's subset is only run when named with --only)."""
    return [c for i, c in enumerate(ablation.configs) if not quick or not ablation.quick or i in ablation.quick]


def plan_runs(args, budget, mlm_dir):
    """The runs the chosen ablations need, each distinct flag set once per seed."""
    runs = {}
    for ablation in selected(args):
        for config in configs_of(ablation, args.quick):
            if config.needs == "synth" and not args.synth:
                continue
            flags = config_flags(config, budget, args.model, mlm_dir if config.needs == "mlm" else None, args.synth)
            key = run_key(config, flags)
            smart = SMART_COST if "--smart" in config.flags else 1.0
            units = budget.epochs * budget.steps * smart
            for seed in range(args.seeds):
                run = runs.setdefault((key, seed), Run(key, seed, flags + ("--seed", str(seed)), [], units))
                run.labels.append(f"{ablation.name}: {config.label}")
    return list(runs.values())


def mlm_folder(args, budget):
    flags = ["--model", str(args.model), "--max-steps", str(budget.mlm_steps), "--seed", "0"]
    digest = hashlib.sha1(json.dumps(flags).encode()).hexdigest()[:8]
    return Path(args.results) / "runs" / f"mlm-pretraining-{digest}", flags


def run_units(config):
    """A finished run's cost in plain steps, from its metrics.json config."""
    tasks_per_step = 3 if config.get("schedule") in ("summed", "cycled-summed") and config.get("task") == "all" else 1
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
        metrics = read_metrics(path)
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
    source = "measured on this folder's finished runs" if found else "the README's figures for this machine, quiet"
    todo = [r for r in runs if not finished(r.folder(results))]
    seconds = sum(STARTUP_S + scoring + r.units / rate for r in todo) + mlm_steps / MLM_STEPS_PER_S
    return seconds, todo, f"{rate:.2f} plain steps/s and {scoring:.0f}s of final scoring per run ({source})"


def finished(folder):
    """A run (train.py, mlm.py or ensemble.py) is finished once it has written its metrics.json."""
    return (Path(folder) / "metrics.json").is_file()


def finished_runs(results, runs):
    return [r for r in runs if finished(r.folder(results))]


def read_json(path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ReproduceError(f"{path}: cannot read it ({e})") from None


def read_metrics(path):
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
# running train.py, mlm.py and ensemble.py as processes


class ReproduceError(Exception):
    """A run failed or an input is wrong; the message names the run folder and its log."""


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


def stream(cmd, log):
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
    check_exit(script, folder, log, *stream(cmd, log))


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


def pretrain(args, budget):
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
    if not finished(out):
        out.parent.mkdir(parents=True, exist_ok=True)
        log = Path(args.results) / "logs" / f"{out.name}.log"
        result = stream(["ensemble.py", *flags, "--out", str(out), "--data-dir", str(args.data_dir)], log)
        check_exit("ensemble.py", out, log, *result)
    return out


# ----------------------------------------------------------------------------
# the report: one table per ablation, our figures beside the report's

COLUMNS = ("sst", "para", "sts", "overall", "plain_mean")
HEADER = ["configuration", "sst", "para", "sts", "overall", "plain mean", "report's figure", "time per run"]
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


def score(stats, metric):
    """The mean of the `metric` columns, the figure that ranks configurations."""
    parts = [stats.get(m) for m in metric]
    return None if any(p is None for p in parts) else sum(p[0] for p in parts) / len(parts)


def ref_score(ref, metric):
    parts = [getattr(ref, m, None) for m in metric]
    return None if any(p is None for p in parts) else sum(parts) / len(parts)


def config_stats(results, runs_by_flags, flags):
    """Stats per column and the mean time of a configuration's finished runs (and how many)."""
    paths = [r.folder(results) / "metrics.json" for r in runs_by_flags.get(flags, [])]
    found = [read_metrics(p) for p in paths if p.is_file()]
    stats = {c: stat([run_values(m)[c] for m in found]) for c in COLUMNS}
    stats["time"] = stat([m["wall_time_s"] for m in found])
    return stats, len(found)


def sentence(ablation, rows, seeds):
    """One sentence from the numbers: our best configuration, the report's, and a hedged why."""
    what = " and ".join(m.replace("_", " ") for m in ablation.metric)
    ours = [(score(s, ablation.metric), c.label, s) for c, s, n in rows if n and score(s, ablation.metric) is not None]
    if not ours:
        return "No configuration of this table has finished yet."
    ours.sort(key=lambda x: -x[0])
    best, label = ours[0][0], ours[0][1]
    text = f"Here {label} came out best ({what} {best:.4f})"
    by_report = {}  # a report's tables of one ablation share its setting: rank within each report
    for c, _, _ in rows:
        for ref in c.refs:
            if ref_score(ref, ablation.metric) is not None:
                by_report.setdefault(ref.source.split(" T")[0], []).append((ref_score(ref, ablation.metric), c.label))
    found = {src: [lab for sc, lab in v if sc == max(v)[0]] for src, v in by_report.items() if len(v) >= 2}
    if not found:
        return text + "; the reports give no two figures of this table to rank."
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


def ablation_section(args, ablation, runs):
    """The heading, the table, the sentence and the bar chart of one ablation."""
    results, blocks, rows = Path(args.results), [], []
    by_flags = {}
    for run in runs:
        by_flags.setdefault(run.flags[:-2], []).append(run)  # without --seed k
    table = pages.Table(HEADER, [])
    for config in configs_of(ablation, args.quick):
        if config.needs == "synth" and not args.synth:
            rows.append((config, {}, 0))
            table.rows.append([config.label] + ["not run (no --synth)"] * 5 + [refs_cell(config), "—"])
            continue
        flags = config_flags(
            config, args.budget, args.model, args.mlm_dir if config.needs == "mlm" else None, args.synth
        )
        stats, n = config_stats(results, by_flags, flags)
        rows.append((config, stats, n))
        cells = [fmt_stat(stats[c], n) if n else "not finished" for c in COLUMNS]
        time_cell = format_time(stats["time"][0]) if stats["time"] else "—"
        table.rows.append([config.label + (f" ({n} seeds)" if n > 1 else ""), *cells, refs_cell(config), time_cell])
    blocks += [table, sentence(ablation, rows, args.seeds)]
    if ablation.name == "synth" and not args.synth:
        blocks.append(SYNTH_SKIPPED)
    if ablation.name == "mlm" and args.mlm_dir and finished(args.mlm_dir):
        took = format_time(read_json(args.mlm_dir / "metrics.json")["wall_time_s"])
        blocks.append(f"MLM pretraining ({args.budget.mlm_steps} steps, once, for every seed) took {took} more.")
    chart = {"overall": [s.get("overall") for _, s, _ in rows], "plain mean": [s.get("plain_mean") for _, s, _ in rows]}
    if not any(chart["overall"]):  # a single-task table: chart its task
        chart = {t: [s.get(t) for _, s, _ in rows] for t in ablation.metric}
    if any(v for vs in chart.values() for v in vs):
        doc = svg.bar_chart([c.label for c, _, _ in rows], chart, ablation.title, "dev score (mean ± std over seeds)")
        blocks.append(pages.Figure(f"charts/{ablation.name}.svg", doc, f"{ablation.title}: our dev figures."))
    return ablation.title, blocks


def refs_cell(config):
    return "; ".join(fmt_ref(r) for r in config.refs) or "—"


SYNTH_SKIPPED = (
    "synth ablation skipped: no --synth FILE given. To run it, make the paraphrases with "
    "`python synth.py paraphrase --input data/ids-sst-train.csv --out data/sst-synth.jsonl` (an OpenAI-compatible "
    "API) and then `python reproduce.py --only synth --synth data/sst-synth.jsonl`."
)


def ensembles(args, runs):
    """ "Tuning Up BERT" Tables 5-6: the best single run, then per-task ensembles of the best run of
    each ablation (chosen on all of dev, and chosen on one half and scored on the other) and of the
    baseline's seeds. Returns [(label, metrics, ref)]."""
    results, rows = Path(args.results), []
    done = [(r, read_metrics(r.folder(results) / "metrics.json")) for r in finished_runs(results, runs)]
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
    base_key = run_key(BASE, config_flags(BASE, args.budget, args.model))
    base = [r.folder(results) for r, _ in complete if r.key == base_key]
    if len(base) >= 2:
        out = run_ensemble(args, "baseline-seeds", base)
        rows.append((f"ensemble per task of the baseline's {len(base)} seeds", read_json(out / "metrics.json"), None))
    return rows


def ensemble_section(args, runs):
    rows = ensembles(args, runs)
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


def header(args, runs):
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = "unknown"
    mode = "quick (one seed, the small budget, a subset of the ablations)" if args.quick else "full"
    chosen = [f"{a.name} ({', '.join(c.label for c in configs_of(a, args.quick))})" for a in selected(args)]
    return [
        f"Date {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch {torch_version}; commit {commit.stdout.strip() or 'unknown'}; model {args.model}.",
        f"Mode: {mode}. Budget per configuration: {args.budget.describe()}. Seeds: {args.seeds} "
        f"(0..{args.seeds - 1}); ± is the sample std over seeds. {len(runs)} distinct runs.",
        "Ablations run: " + "; ".join(chosen) + ".",
        "Columns: dev SST-5 accuracy, QQP accuracy, STS Pearson r; overall is the course formula "
        "mean(sst, para, (r + 1) / 2), plain mean the mean of the three as BERT++ and SUSTech report it. The "
        "report's figure: its sst / para / sts → overall (plain: a plain mean), from the table named; the reports "
        "fine-tune bert-base on 141k QQP rows for far longer. Time per run: train.py's own wall time.",
    ]


def write_report(args, runs):
    """results/REPORT.md and REPORT.html (with charts/*.svg), all through files.py."""
    results = Path(args.results)
    sections = [("About this reproduction", header(args, runs))]
    sections += [ablation_section(args, a, runs) for a in selected(args)]
    sections.append(ensemble_section(args, runs))
    (results / "charts").mkdir(parents=True, exist_ok=True)
    for _, blocks in sections:
        for block in blocks:
            if isinstance(block, pages.Figure):
                files.write_text(results / block.name, block.svg)
    title = "Reproducing the reports at CPU scale"
    files.write_text(results / "REPORT.md", pages.to_markdown(title, sections))
    files.write_text(results / "REPORT.html", pages.to_html(title, sections))
    return results / "REPORT.md"


# ----------------------------------------------------------------------------
# command line


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad flag is one line, not the usage text."""
        print(f"error: {message} (python reproduce.py --help lists the flags)", file=sys.stderr)
        sys.exit(2)


def get_parser():
    p = Parser(description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one seed, the small budget, a subset of the ablations")
    p.add_argument("--seeds", type=int, default=None, help="seeds per configuration (default 3, --quick 1)")
    p.add_argument("--only", default=None, help=f"comma-separated ablations, from: {', '.join(ABLATION_NAMES)}")
    p.add_argument("--synth", default=None, help="synth.py paraphrases (JSONL): runs the synth ablation")
    p.add_argument("--results", default="results", help="folder for runs/, logs/, REPORT.md and REPORT.html")
    p.add_argument("--data-dir", default="data", help="folder with the course files (make data)")
    p.add_argument("--model", default="all-MiniLM-L6-v2", help="encoder for every run (train.py --model)")
    p.add_argument("--plan", action="store_true", help="print the plan and the expected time, run nothing")
    p.add_argument("--report-only", action="store_true", help="write REPORT.md from the finished runs, run nothing")
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
    unknown = sorted(set(args.only.split(",")) - set(ABLATION_NAMES)) if args.only else []
    if unknown:
        parser.error(f"--only: unknown ablation {', '.join(unknown)} (choose from {', '.join(ABLATION_NAMES)})")
    if args.synth and not Path(args.synth).is_file():
        parser.error(f"--synth {args.synth}: no such file")
    if not Path(args.data_dir).is_dir():
        parser.error(f"--data-dir {args.data_dir}: no such folder (make data fetches the course files)")
    if args.budget.epochs < 2 and any(a.name == "schedules" for a in selected(args)) and not args.quick:
        parser.error("the schedules ablation's staggered run needs --epochs 2 or more (1 epoch of QQP first)")
    return args


def print_plan(args, runs):
    mlm_todo = args.mlm_needed and not finished(args.mlm_dir)
    seconds, todo, how = estimate(runs, args.results, args.budget.mlm_steps if mlm_todo else 0)
    print(f"reproduce: {'quick' if args.quick else 'full'}; {args.seeds} seed(s); budget: {args.budget.describe()}")
    for a in selected(args):
        print(f"  {a.name}: {', '.join(c.label for c in configs_of(a, args.quick))}")
    if not args.synth and any(a.name == "synth" for a in selected(args)):
        print(f"  {SYNTH_SKIPPED}")
    print(
        f"{len(runs)} distinct runs ({len(runs) - len(todo)} finished){' + MLM pretraining' * mlm_todo}; "
        f"expected time {format_time(seconds)} at {how}",
        flush=True,
    )


def reproduce(args):
    args.mlm_needed = any(c.needs == "mlm" for a in selected(args) for c in configs_of(a, args.quick))
    args.mlm_dir = mlm_folder(args, args.budget)[0] if args.mlm_needed else None
    runs = plan_runs(args, args.budget, args.mlm_dir)
    print_plan(args, runs)
    if args.plan:
        return
    if not args.report_only:
        if args.mlm_needed and not finished(args.mlm_dir):
            pretrain(args, args.budget)
        ran = train_runs(args, runs)
        print(f"\nran {ran} run(s), reused {len(runs) - ran}", flush=True)
    print(f"wrote {write_report(args, runs)} and REPORT.html", flush=True)


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
    except (ReproduceError, files.WriteError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
