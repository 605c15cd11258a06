"""Benchmarks of minBERT's speed and memory, next to Hugging Face's BertModel where available.

Prints markdown tables for docs/performance.md; it measures and asserts nothing.

  encoder     (default) a training step (forward, cross-entropy on a linear layer over [CLS],
              backward, AdamW step) and an inference forward at batch 16 / 32 x 64 / 128 tokens,
              for the packaged all-MiniLM-L6-v2 and bert-base's shape (random init): ours
              (minbert + adamw) next to Hugging Face's BertModel (sdpa) + torch.optim.AdamW when
              `transformers` is importable, and each one's peak memory in a fresh process.
              This is the comparison step, the same few lines for both encoders: train.py's step
              needs our heads, so it cannot run Hugging Face's model.
  --overhead  train.py's own step (train.train_step) with SMART (T=1) and with PCGrad, next to
              plain one-task and summed multitask steps, on the course files.
  --sst-epoch one SST-5 epoch of train.py's steps: length-bucketed vs random batches, with and
              without padding removal.

    make bench                      # the encoder section in the project's venv
    python bench.py --overhead      # one section; --all runs every section
    .venv-ref/bin/python bench.py   # with Hugging Face's side: transformers is no project dependency
    python bench.py --device cuda --amp bf16 --json bench.json   # on a GPU, with MFU
"""

import argparse
import contextlib
import copy
import dataclasses
import itertools
import json
import math
import re
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import cli
import files
import hub
import loop
import train
from adamw import AdamW
from minbert import BertConfig, BertModel
from tasks import TASK_NAMES, TASKS

try:
    import transformers

    transformers.utils.logging.disable_progress_bar()
except ImportError:
    transformers = None

# ----------------------------------------------------------------------------
# timing and memory


def sync(device):
    """CUDA kernels run asynchronously: wait for them to finish before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds_per_iter(fn, iters, device):
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    sync(device)
    return (time.perf_counter() - start) / iters


def race(fns, warmup, iters, rounds, device, seconds=2.0):
    """Best seconds per iteration of each fn. The fns take turns (a, b, a, b, ...), so a load
    that drifts while the benchmark runs slows all of them alike; the best round is the one
    least disturbed by other work on the machine. iters 0 (or None): as many iterations per
    round as take about `seconds` (at least 2), judged from the last warmup call of each fn."""
    counts = {}
    for name, fn in fns.items():
        for _ in range(max(warmup, 1)):  # first calls pay for allocation, kernel selection, optimizer state
            once = seconds_per_iter(fn, 1, device)
        counts[name] = iters or max(2, round(seconds / once))
    best = dict.fromkeys(fns, math.inf)
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], seconds_per_iter(fn, counts[name], device))
    return best


class MeasureProgress:
    """One line per finished measurement on stderr, with elapsed time and an ETA."""

    def __init__(self, total):
        self.total, self.done, self.start = total, 0, time.time()

    def __call__(self, what):
        self.done += 1
        elapsed = time.time() - self.start
        eta = elapsed / self.done * (self.total - self.done)
        line = f"[{self.done}/{self.total}] {what}  ({elapsed / 60:.1f} min, ETA {eta / 60:.1f} min)"
        print(line, file=sys.stderr, flush=True)


def reset_peak(device):
    """Count peak memory from now on. On Linux, writing "5" to clear_refs resets the peak
    resident set (VmHWM) to the current one."""
    if device.type == "cuda":
        return torch.cuda.reset_peak_memory_stats()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_mib(device):
    """Peak since reset_peak: CUDA memory allocated by torch on a GPU, else the process's peak
    resident set (VmHWM), which includes Python, torch's libraries and the model."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    with contextlib.suppress(OSError):
        return int(re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M).group(1)) / 1024


def table(rows, columns):
    """Print dict rows as a markdown table; columns maps a row key to its header."""
    cell = lambda c: "-" if c is None else f"{c:.{3 if abs(c) < 10 else 1}f}" if isinstance(c, float) else str(c)
    print("| " + " | ".join(columns.values()) + " |\n|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row.get(key)) for key in columns) + " |")
    print()


# ----------------------------------------------------------------------------
# the encoder: ours vs Hugging Face's


class Classifier(nn.Module):
    """An encoder (ours or Hugging Face's) and a linear layer over [CLS], as the SST head.
    cls_only: ours computes the last layer at [CLS] only, as heads.py does for [CLS] heads
    (same values, tests/test_minbert.py); Hugging Face's BertModel has no such path."""

    def __init__(self, encoder, num_classes=5, cls_only=False):
        super().__init__()
        self.encoder, self.cls_only = encoder, cls_only
        self.out = nn.Linear(encoder.config.hidden_size, num_classes)

    def forward(self, batch):
        if self.cls_only:
            x = self.encoder.embed(batch["input_ids"], batch["token_type_ids"])
            h = self.encoder.encode(x, batch["attention_mask"], cls_only=True)["last_hidden_state"]  # (B, 1, H)
        else:
            h = self.encoder(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                token_type_ids=batch["token_type_ids"],
            )["last_hidden_state"]  # (B, T, H)
        return self.out(h[:, 0])  # (B, K)


def build(impl, model_name, device, full_output=False):
    """(classifier, optimizer). MiniLM: both sides load the packaged folder, so the weights are
    the same. bert-base shape: each side's own random init (BERT's normal(0, 0.02) in both);
    speed does not depend on the values, and no side ever holds the other's copy in memory."""
    torch.manual_seed(0)
    if impl == "ours":
        encoder = BertModel.from_pretrained() if model_name == "minilm" else BertModel(BertConfig())
    elif model_name == "minilm":
        encoder = transformers.BertModel.from_pretrained(str(hub.resolve_model_dir()), attn_implementation="sdpa")
    else:
        encoder = transformers.BertModel(transformers.BertConfig(attn_implementation="sdpa"))
    model = Classifier(encoder, cls_only=impl == "ours" and not full_output).to(device)
    opt_class = AdamW if impl == "ours" else torch.optim.AdamW  # both with their defaults (ours: foreach)
    return model, opt_class(model.parameters(), lr=1e-5)


def make_batch(B, T, padded, device, vocab_size=30522, seed=0):
    """Random token ids (B, T). padded: row lengths uniform in [T/2, T], so about 25% of the
    tokens are padding, with the first row full, as dynamic padding to the longest row gives."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, vocab_size, (B, T), generator=g)  # below 1000: [PAD], [unused*], specials
    mask = torch.ones(B, T, dtype=torch.long)
    if padded:
        lengths = torch.randint(T // 2, T + 1, (B,), generator=g)
        lengths[0] = T
        mask = (torch.arange(T) < lengths[:, None]).long()  # (B, T)
        ids = ids * mask  # pad id 0
    batch = {
        "input_ids": ids,
        "attention_mask": mask,
        "token_type_ids": torch.zeros_like(ids),
        "labels": torch.randint(0, 5, (B,), generator=g),
    }
    return loop.to_device(batch, device)


def step_fns(model, optimizer, batch, device, amp):
    """(train step, inference step) closures for one model on one batch: the comparison step.
    Not train.py's step (train.train_step, which --overhead and --sst-epoch time): that one runs our
    MultitaskBert's heads, GradScaler, the lr schedule and clipping, and Hugging Face's BertModel has
    none of them. Here both encoders get the same few lines, so the ratio compares the encoders and
    optimizers alone."""

    def train_step():
        with loop.autocast(device, amp):
            loss = F.cross_entropy(model(batch).float(), batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def infer_step():
        with loop.autocast(device, amp):
            model(batch)

    return train_step, infer_step


def worker(spec):
    """Run in a fresh process: peak memory of one implementation on one config, from the
    model in memory onwards. Inference runs first, so where the high-water mark cannot be
    reset its peak is still read before training's larger one raises it."""
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    model, optimizer = build(spec["impl"], spec["model"], device, spec["full_output"])
    train_step, infer_step = step_fns(
        model, optimizer, make_batch(spec["B"], spec["T"], spec["padded"], device), device, spec["amp"]
    )
    peaks = {}
    for mode, fn in (("infer", infer_step), ("train", train_step)):
        model.train(mode == "train")
        reset_peak(device)
        seconds_per_iter(fn, 2, device)
        peaks[mode] = peak_mib(device)
    print(json.dumps(peaks))


def measure_memory(impl, model_name, B, T, padded, args):
    spec = {
        "impl": impl,
        "model": model_name,
        "B": B,
        "T": T,
        "padded": padded,
        "device": args.device,
        "amp": args.amp,
        "threads": args.threads,
        "full_output": args.full_output,
    }
    done = subprocess.run([sys.executable, __file__, "--worker", json.dumps(spec)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"memory worker for {spec} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_encoder(args, device):
    impls = ["ours", "hf"] if transformers else ["ours"]
    if not transformers:
        print("transformers is not importable: Hugging Face columns stay empty (run with .venv-ref/bin/python)\n")
    rows = []
    paddings = {"none": [False], "dynamic": [True], "both": [False, True]}[args.padding]
    progress = MeasureProgress(len(args.models) * len(paddings) * len(args.batch_sizes) * len(args.seq_lens) * 2)
    for model_name in args.models:
        built = {impl: build(impl, model_name, device, args.full_output) for impl in impls}
        # Non-embedding parameters: the layers every token goes through (MFU's 6N per token)
        n_layers = sum(p.numel() for p in built["ours"][0].encoder.layers.parameters())
        for padded, B, T in itertools.product(paddings, args.batch_sizes, args.seq_lens):
            batch = make_batch(B, T, padded, device)
            fns = {impl: step_fns(*built[impl], batch, device, args.amp) for impl in impls}
            memory = (
                {impl: measure_memory(impl, model_name, B, T, padded, args) for impl in impls}
                if not args.no_memory
                else {}
            )
            for k, mode in enumerate(("train", "infer")):
                for model, _ in built.values():
                    model.train(mode == "train")  # dropout on while training, as in real training
                secs = race(
                    {impl: fns[impl][k] for impl in impls}, args.warmup, args.iters, args.rounds, device, args.seconds
                )
                row = {"model": model_name, "padding": "dynamic" if padded else "none", "mode": mode, "B": B, "T": T}
                for impl in impls:
                    row[f"{impl}_ex_s"] = B / secs[impl]
                    row[f"{impl}_mib"] = memory.get(impl, {}).get(mode)
                    if device.type == "cuda":  # forward + backward ~6 FLOPs per parameter per token, forward ~2
                        tokens = int(batch["attention_mask"].sum())  # real tokens: the model FLOPs, not padding's
                        flops = (6 if mode == "train" else 2) * n_layers * tokens
                        row[f"{impl}_mfu"] = flops / secs[impl] / (args.peak_tflops * 1e12)
                row["ratio"] = row["ours_ex_s"] / row["hf_ex_s"] if transformers else None
                rows.append(row)
                hf = f", HF {row['hf_ex_s']:.1f} ({row['ratio']:.2f}x)" if transformers else ""
                progress(f"{model_name} {row['padding']} {mode} {B}x{T}: ours {row['ours_ex_s']:.1f} ex/s{hf}")
        del built
    encoder_table(rows, args, device)
    return rows


def encoder_table(rows, args, device):
    """bench_encoder's rows as a Markdown table, under a line saying how they were measured."""
    mem = "GPU MiB" if device.type == "cuda" else "peak RSS MiB"
    columns = {
        "model": "model",
        "padding": "padding",
        "mode": "mode",
        "B": "B",
        "T": "T",
        "ours_ex_s": "ours ex/s",
        "hf_ex_s": "HF ex/s",
        "ratio": "ours/HF",
        "ours_mib": f"ours {mem}",
        "hf_mib": f"HF {mem}",
    }
    if device.type == "cuda":
        columns |= {"ours_mfu": "ours MFU", "hf_mfu": "HF MFU"}
    per_round = f"{args.iters} iterations" if args.iters else f"about {args.seconds:g} s"
    print(
        f"## Encoder: examples/s, best of {args.rounds} rounds of {per_round}; padding 'dynamic': rows of "
        "T/2 to T tokens, about 25% padding, as random-order batches padded to their longest row have\n"
    )
    table(rows, columns)


# ----------------------------------------------------------------------------
# train.py's own step, on the course files


def missing_files(args, tasks):
    """The course training and dev files of `tasks` not in --data-dir (train.setup reads them)."""
    paths = [Path(args.data_dir) / TASKS[t].files[split] for t in tasks for split in ("train", "dev")]
    return [str(p) for p in paths if not p.is_file()]


def train_args(args, out, *flags):
    """train.py's flags for a run in `out` on --data-dir, on bench's device and precision, without
    test files; `flags` come last and win."""
    tests = [arg for t in TASK_NAMES for arg in (f"--{t}-test", "none")]
    common = ["--data-dir", str(args.data_dir), "--out", str(out), "--device", args.device, "--amp", args.amp]
    return train.parse_args([*common, *tests, "--seed", "0", *flags])


# The steps --overhead times: train.py's flags for each, over "--task all --batch-size 16".
OVERHEAD_STEPS = {
    **{f"plain {t}": ["--task", t] for t in TASK_NAMES},
    **{f"SMART {t}": ["--task", t, "--smart", "1"] for t in TASK_NAMES},  # T = 1, train.py's eps etc.
    "plain summed": ["--schedule", "summed"],
    "PCGrad summed": ["--schedule", "summed", "--pcgrad"],
}


def overhead_runs(args, out):
    """One train.TrainRun per step of OVERHEAD_STEPS, as train.py builds its own: train.setup() once
    for every task with --overfit-batch (each task's stream gives its first batch of 16 at every
    step, so every timed step sees the same batches), then each step's flags through train.parse_args
    and its schedule through train.build_schedule. The runs share that model, optimizer and streams:
    a SMART step and a plain one differ in their flags only."""
    base_flags = ["--task", "all", "--batch-size", "16", "--overfit-batch"]
    base = train.setup(train_args(args, out, *base_flags))
    base.model.train()  # as train.py trains: dropout on
    runs = {}
    for name, flags in OVERHEAD_STEPS.items():
        step_args = train_args(args, out, *base_flags, *flags)
        tasks = list(TASK_NAMES) if step_args.task == "all" else [step_args.task]
        _, schedule = train.build_schedule(step_args, tasks, base.splits["train"], None)
        runs[name] = dataclasses.replace(base, args=step_args, tasks=tasks, schedule=schedule)
    return base, runs


def bench_overhead(args, device):
    missing = missing_files(args, TASK_NAMES)
    if missing:
        print(f"## SMART and PCGrad overhead: skipped, {', '.join(missing)} missing (run `make data`)\n")
        return None
    with tempfile.TemporaryDirectory() as out:  # train.setup copies the tokenizer there; nothing else
        base, runs = overhead_runs(args, out)
        # train_step(run, 0, 0) again and again: the first step of the run's first epoch, on the
        # streams' one batch per task
        fns = {name: partial(train.train_step, run, 0, 0) for name, run in runs.items()}
        secs = race(fns, args.warmup, args.iters, args.rounds, device, args.seconds)
    # The baseline is one plain step of one task's batch, averaged over the tasks: what a step of
    # the default (sampling) multitask schedule costs. A summed step runs all K tasks' batches,
    # and PCGrad needs one backward per task anyway, so its budget is K plain steps plus half a
    # step for the surgery: target <= (K + 0.5) x baseline. "vs summed" isolates the surgery.
    baseline = np.mean([secs[f"plain {t}"] for t in TASKS])
    shapes = {}
    for t in TASK_NAMES:
        batch = next(base.streams[t])  # --overfit-batch: the rows every step above trained on
        shapes[t] = (len(batch), int(base.splits["train"][t].lengths[batch].max()))  # (B, T)
    print(
        f"## SMART and PCGrad overhead (MiniLM, train.py's step, batch (B, T) {shapes}, best of {args.rounds} rounds)\n"
    )
    plain_of = {f"SMART {t}": f"plain {t}" for t in TASK_NAMES} | {"PCGrad summed": "plain summed"}
    rows = [
        {
            "step": name,
            "ms": 1000 * s,
            "vs_one_task": s / baseline,
            "vs_plain": s / secs[plain_of[name]] if name in plain_of else None,
        }
        for name, s in secs.items()
    ]
    table(
        rows,
        {"step": "step", "ms": "ms", "vs_one_task": "vs plain one-task step (mean)", "vs_plain": "vs its plain step"},
    )
    print(f"targets: SMART <= 2.2x its plain step; PCGrad summed <= {len(TASK_NAMES) + 0.5}x a plain one-task step\n")
    return {"steps": rows, "baseline_ms": 1000 * baseline, "shapes": shapes}


def sst_epoch(args, device, batching, unpad, B):
    """One SST-5 epoch of train.train_step on a run train.setup builds from these flags, then the
    dev sets scored as train.py scores them after an epoch. Returns the table's row."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:  # train.setup copies the tokenizer there; nothing else
        flags = ["--task", "sst", "--epochs", "1", "--batch-size", str(B), "--eval-subset", "0"]
        run = train.setup(train_args(args, out, *flags, "--batching", batching, "--unpad", unpad))
        task_data, steps = run.splits["train"]["sst"], run.schedule.steps_in_epoch(0)
        # The padding of the batches the epoch is about to draw: a copy of the run's own stream.
        upcoming = copy.deepcopy(run.streams["sst"])
        lengths = [task_data.lengths[next(upcoming)] for _ in range(steps)]
        padding = sum(len(n) * n.max() - n.sum() for n in lengths)
        run.model.train()
        sync(device)
        t_train = time.perf_counter()
        for step in range(steps):
            train.train_step(run, 0, step)
        sync(device)
        train_s = time.perf_counter() - t_train
        dev, _ = train.evaluate(run.model, run.dev, run.args, run.device)
    return {
        "batching": batching,
        "unpad": unpad,
        "examples": len(task_data),
        "train_s": train_s,
        "wall_s": time.perf_counter() - start,
        "ex_s": len(task_data) / train_s,
        "pad_per_example": padding / len(task_data),
        "dev_acc": dev["sst"],
    }


def bench_sst_epoch(args, device):
    missing = missing_files(args, ["sst"])
    if missing:
        print(f"## SST-5 epoch: skipped, {', '.join(missing)} missing (run `make data`)\n")
        return None
    B = 16
    rows = []
    # train.py's default; random order with padding removal; and the plain way, the baseline:
    # random order, each batch padded to its longest row and every position computed.
    for batching, unpad in (("bucket", "on"), ("random", "on"), ("random", "off")):
        rows.append(sst_epoch(args, device, batching, unpad, B))
        print(f"[{len(rows)}/3] SST-5 epoch, {batching} batches, --unpad {unpad}", file=sys.stderr, flush=True)
    for row in rows:
        row["speedup"] = rows[-1]["train_s"] / row["train_s"]
    print(f"\n## One SST-5 epoch ({rows[0]['examples']} rows, batch {B}, train.py's step and defaults otherwise)\n")
    table(
        rows,
        {
            "batching": "batching",
            "unpad": "--unpad",
            "train_s": "train s",
            "wall_s": "wall s (with setup and dev)",
            "ex_s": "examples/s",
            "pad_per_example": "padding tokens / example",
            "dev_acc": "dev acc",
            "speedup": "vs random, padded",
        },
    )
    return rows


# ----------------------------------------------------------------------------
# command line


def machine(device):
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    return {
        "cpu": cpu.group(1) if cpu else "unknown",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__ if transformers else None,
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
    }


def get_parser():
    p = cli.new_parser(__doc__)
    a = p.add_argument
    a("--encoder", action="store_true", help="encoder speed and memory, ours vs Hugging Face (the default section)")
    a("--overhead", action="store_true", help="step-time overhead of SMART and PCGrad")
    a("--sst-epoch", action="store_true", help="one SST-5 epoch through train.py, bucketed vs random batches")
    a("--all", action="store_true", help="every section")
    a("--models", nargs="+", default=["minilm", "bert-base"], choices=["minilm", "bert-base"], help="encoder shapes")
    a("--batch-sizes", nargs="+", type=int, default=[16, 32], help="encoder section batch sizes")
    a("--seq-lens", nargs="+", type=int, default=[64, 128], help="encoder section sequence lengths")
    a(
        "--padding",
        default="both",
        choices=["none", "dynamic", "both"],
        help="encoder batches: every row T tokens, rows of T/2..T tokens (about 25%% padding), or both",
    )
    a("--full-output", action="store_true", help="ours computes every position of the last layer, not only [CLS]")
    a("--iters", type=int, default=0, help="timed iterations per round (0: as many as take --seconds)")
    a("--seconds", type=float, default=2.0, help="length of a timed round when --iters is 0")
    a("--warmup", type=int, default=3, help="untimed iterations before timing")
    a("--rounds", type=int, default=2, help="alternating rounds per measurement (the best is kept)")
    a("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    a("--quick", action="store_true", help="smoke test: MiniLM at batch 8 x 32 tokens, 2 iterations, 1 round")
    a("--threads", type=int, default=0, help="torch.set_num_threads (0 = torch's default)")
    a("--device", default="cpu", choices=["cpu", "cuda"], help="where to run")
    a(
        "--amp",
        default="off",
        choices=["off", "bf16"],
        help="mixed precision, the same autocast on both sides (bf16: a GPU, or a CPU with native bf16)",
    )
    a("--peak-tflops", type=float, default=989.0, help="GPU peak TFLOP/s for MFU (989: H100 SXM bf16 dense)")
    a("--data-dir", default="data", help="course files for --overhead and --sst-epoch (make data)")
    a("--json", default=None, metavar="PATH", help="also write the results as JSON here")
    a("--worker", default=None, help=argparse.SUPPRESS)  # internal: one memory measurement in a fresh process
    return p


def check_args(args):
    """Every flag checked before any work starts: a bad --json must not cost the whole benchmark."""
    for name in ("iters", "warmup", "threads"):
        if getattr(args, name) < 0:
            sys.exit(f"error: --{name} must be >= 0, got {getattr(args, name)}")
    for name in ("rounds", "peak_tflops", "seconds"):
        if not (math.isfinite(getattr(args, name)) and getattr(args, name) > 0):
            sys.exit(f"error: --{name.replace('_', '-')} must be a positive number, got {getattr(args, name)}")
    if min(args.batch_sizes + args.seq_lens) < 1 or max(args.seq_lens) > 512:
        sys.exit("error: --batch-sizes must be >= 1 and --seq-lens in 1..512 (BERT's positions)")
    if args.json and Path(args.json).is_dir():
        sys.exit(f"error: --json {args.json}: a folder; name the file to write")


def main():
    args = get_parser().parse_args()
    if args.device == "cpu":
        loop.keep_freed_memory()  # as train.py runs; it speeds up both implementations alike
    if args.worker:
        return worker(json.loads(args.worker))
    check_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.models, args.batch_sizes, args.seq_lens = ["minilm"], [8], [32]
        args.iters, args.warmup, args.rounds = 2, 1, 1
    device, args.amp = loop.pick_device(args.device, args.amp)
    loop.use_tf32(device)  # as train.py runs
    results = {"machine": machine(device), "args": vars(args)}
    print("## Machine\n\n" + "\n".join(f"- {k}: {v}" for k, v in results["machine"].items() if v) + "\n")
    if args.encoder or args.all or not (args.overhead or args.sst_epoch):
        results["encoder"] = bench_encoder(args, device)
    if args.overhead or args.all:
        results["overhead"] = bench_overhead(args, device)
    if args.sst_epoch or args.all:
        results["sst_epoch"] = bench_sst_epoch(args, device)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        files.write_text(args.json, json.dumps(results, indent=2, default=float) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
