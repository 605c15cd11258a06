"""Multitask fine-tuning of BERT: sentiment (SST-5), paraphrase (Quora) and similarity (STS).

One plain loop. Each step the schedule picks a task (schedules.py), that task's next batch
runs through the shared encoder and its head (heads.py), the loss, plus SMART's smoothness
regularizer when on (smart.py), is back-propagated, through PCGrad's gradient surgery when
on (pcgrad.py), and AdamW takes a step (adamw.py). After each epoch every dev set is scored
and the best model so far is kept; at the end the best model writes dev and test predictions.

    python train.py --task all                # the CPU default: packaged MiniLM, < 30 min on 2 cores
    python train.py --task all --smart 3      # ... with SMART regularization
    python train.py --task all --model bert-base-uncased --device cuda --epochs 10 --lr 2e-5
    python train.py --resume runs/all         # continue an interrupted run where it stopped

The run folder (--out) holds checkpoint.pt (the latest state, for --resume), best.pt (the
best model; predict.py loads it), tokenizer/, metrics.json and predictions/.
"""

import argparse
import contextlib
import ctypes
import json
import math
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

import data
import distributed
import files
import hub
import pcgrad
import predictions
import smart
from adamw import AdamW
from heads import MultitaskBert
from minbert import UNPAD_MIN, BertModel
from predict import autocast, predict, to_device
from schedules import SCHEDULES, Schedule
from tasks import TASK_NAMES, TASKS, overall, score
from tokenizer import build_tokenizer

# ----------------------------------------------------------------------------
# small helpers


def get_lr(step, total_steps, args):
    """Linear warmup over the first --warmup fraction of steps, then linear decay to 0 (or constant)."""
    warmup = int(args.warmup * total_steps)
    if step < warmup:
        return args.lr * (step + 1) / warmup
    if args.lr_schedule == "constant":
        return args.lr
    return args.lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def param_groups(model, weight_decay):
    """Weight decay on matrices only: decaying biases and LayerNorm gains towards 0 has no
    regularizing purpose and only hurts (BERT's own recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def format_time(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


def print_table(log, title, metrics):
    cells = "  ".join(f"{t} {metrics[t]:.4f}" for t in TASK_NAMES if t in metrics)
    log(f"{title}: {cells}  | overall {overall(metrics):.4f}", flush=True)


def pick_device(args):
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but torch sees no CUDA GPU (use --device cpu)")
    if args.amp == "auto":
        cuda_bf16 = args.device == "cuda" and torch.cuda.is_bf16_supported()
        args.amp = "bf16" if cuda_bf16 else "fp16" if args.device == "cuda" else "off"
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 tensor cores for fp32 matmuls
        torch.backends.cudnn.allow_tf32 = True
    return torch.device(args.device)


def keep_freed_memory():
    """glibc gives large freed blocks back to the OS at once, so each step's big temporaries
    (the word-embedding gradient and optimizer buffers, tens of MB each) come back as fresh
    pages, and the first touch of every page is a page fault. Raising glibc's mmap and trim
    thresholds keeps freed memory in the process for reuse, as jemalloc or tcmalloc would.
    Measured here: a CPU step of 16 x 26 tokens went from 0.34-0.41 s to 0.30-0.32 s."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks up to 1 GiB from the heap
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap


class StopFlag:
    """Ctrl-C (or SIGTERM) during training asks to stop after the current step, so the
    checkpoint holds a consistent state; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.old = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step (Ctrl-C again to stop at once)...", flush=True)

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------
# data and model


def task_path(args, task, split):
    return getattr(args, f"{task}_{split}") or str(Path(args.data_dir) / TASKS[task].files[split])


def load_task_data(args, tasks, tokenizer, log=print):
    """Tokenized train / dev / test data per task (test only where the file exists)."""
    splits = {"train": {}, "dev": {}, "test": {}}
    for task in tasks:
        encoding = args.pair_encoding if TASKS[task].is_pair else "single"
        for split in splits:
            path = task_path(args, task, split)
            if split == "test" and not Path(path).is_file():
                log(f"{task}: no test file at {path}, so no test predictions (set --{task}-test)")
                continue
            examples = data.read_examples(path, task, labelled=split != "test")
            if not examples:
                raise data.DataError(f"{path}: no examples")
            splits[split][task] = data.encode(tokenizer, examples, encoding)
    return splits


def eval_subset(task_data, n, seed):
    """A fixed random subset of n examples (the whole set if n is 0 or larger), for cheap per-epoch scores."""
    if not n or len(task_data) <= n:
        return task_data
    return data.subset(task_data, np.sort(np.random.default_rng(seed).permutation(len(task_data))[:n]))


def predict_all(model, task, task_data, args, device):
    """predict() over a whole dataset; with several processes each predicts a share and all gather."""
    mine = np.arange(len(task_data))[distributed.rank() :: distributed.world()]
    preds, raws = predict(model, task, data.subset(task_data, mine), args.eval_batch_size, device, args.amp)
    order, preds, raws = (np.concatenate(x) for x in zip(*distributed.gather((mine, preds, raws))))
    back = np.argsort(order)
    return preds[back], raws[back]


def evaluate(model, dev, args, device):
    """Score every dev set; returns {task: metric} and the predictions {task: (preds, raws)}."""
    metrics, outputs = {}, {}
    for task, task_data in dev.items():
        outputs[task] = predict_all(model, task, task_data, args, device)
        metrics[task] = score(task, outputs[task][0], task_data.labels)
    return metrics, outputs


def build_model(args, bert_dir, tasks, num_classes, log=print):
    overrides = (
        {}
        if args.encoder_dropout is None
        else {"hidden_dropout_prob": args.encoder_dropout, "attention_probs_dropout_prob": args.encoder_dropout}
    )
    bert = BertModel.from_pretrained(bert_dir, attn_impl=args.attn, **overrides)
    bert.unpad = args.unpad == "on"
    dropout = {t: getattr(args, f"{t}_dropout") or args.dropout for t in tasks}
    model = MultitaskBert(bert, num_classes, args.pair_encoding, args.bi_head, dropout, args.pooling, tasks)
    if args.init_from:
        init_from(model, args.init_from, log)
    if args.freeze_encoder:
        model.bert.requires_grad_(False)
    return model


def init_from(model, path, log=print):
    """Start from a trained run's weights: the whole encoder, and every head whose task and
    shape match (e.g. the paraphrase head of a paraphrase-only run)."""
    state = torch.load(path, map_location="cpu", weights_only=True)["model"]
    own = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("bert.")}
    missing = sorted(k for k in own if k.startswith("bert.") and k not in encoder)
    if missing:
        sys.exit(f"error: --init-from {path}: encoder weights missing: {', '.join(missing[:5])}")
    heads = {k: v for k, v in state.items() if k.startswith("heads.") and k in own and own[k].shape == v.shape}
    model.load_state_dict({**encoder, **heads}, strict=False)
    fresh = sorted({k.split(".")[1] for k in own if k.startswith("heads.")} - {k.split(".")[1] for k in heads})
    log(
        f"initialised from {path}: encoder + heads {sorted({k.split('.')[1] for k in heads}) or 'none'}"
        f"; new heads {fresh or 'none'}"
    )


# ----------------------------------------------------------------------------
# training


def task_loss(net, model, task, batch, args, smart_on):
    """The loss of one task's batch, plus SMART's regularizer when on."""
    out, embeds = net(task, batch, return_embeddings=True)  # through DDP when distributed
    loss = model.loss(task, out, batch["labels"])
    if smart_on:
        # SMART runs the rest of the model from perturbed embeddings (smart.py).
        forward = lambda *x: model.from_embeddings(task, list(x), batch)
        loss = loss + args.smart * smart.smart_regularizer(
            forward,
            tuple(embeds),
            out,
            TASKS[task].kind,
            eps=args.smart_eps,
            sigma=args.smart_sigma,
            eta=args.smart_eta,
            steps=args.smart_steps,
            norm=args.smart_norm,
            variant=args.smart_variant,
        )
    return loss


def train(args):
    t_start = time.time()
    out = Path(args.out)
    rank, world, device = distributed.setup(pick_device(args).type)
    if device.type == "cpu":
        keep_freed_memory()
    log = print if rank == 0 else lambda *a, **k: None  # only rank 0 prints and writes
    torch.manual_seed(args.seed)
    tasks = list(TASK_NAMES) if args.task == "all" else [args.task]

    # The tokenizer travels with the run, so predict.py needs nothing but the run folder.
    bert_dir = hub.resolve_model_dir(args.model)
    if rank == 0:
        (out / "tokenizer").mkdir(parents=True, exist_ok=True)
        for name in ("vocab.txt", "tokenizer_config.json"):
            if (bert_dir / name).is_file():
                files.copy_file(bert_dir / name, out / "tokenizer" / name)
    tokenizer = build_tokenizer(bert_dir, args.max_length)
    splits = load_task_data(args, tasks, tokenizer, log)
    train_data = splits["train"]
    num_classes = data.num_classes(data.read_examples(task_path(args, "sst", "train"), "sst")) if "sst" in tasks else 5
    dev = {t: eval_subset(d, args.eval_subset, args.seed) for t, d in splits["dev"].items()}

    model = build_model(args, bert_dir, tasks, num_classes, log).to(device)
    optimizer = AdamW(param_groups(model, args.weight_decay), lr=args.lr)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")  # fp16 needs loss scaling; bf16 does not
    if args.compile:
        model.bert.compile_layers()
    net = model
    if world > 1:
        # DDP averages gradients over processes during backward. Heads of tasks not in this
        # step's batch get no gradient, hence find_unused_parameters.
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=len(tasks) > 1
        )
    schedule = Schedule(
        args.schedule, {t: len(train_data[t]) for t in tasks}, args.epochs, args.steps_per_epoch, args.seed
    )
    batch_size = {t: getattr(args, f"{t}_batch_size") or args.batch_size for t in tasks}
    streams = {
        t: data.BatchStream(
            train_data[t],
            batch_size[t],
            seed=args.seed * 10 + i,
            bucket=args.batching == "bucket",
            overfit=args.overfit_batch,
        )
        for i, t in enumerate(tasks)
    }
    weights = {t: getattr(args, f"{t}_weight") for t in tasks}
    smart_tasks = set(tasks if args.smart_tasks == "all" else args.smart_tasks.split(","))
    shared = [p for p in model.bert.parameters() if p.requires_grad]
    heads = [p for p in model.heads.parameters() if p.requires_grad]

    if world > 1:
        torch.manual_seed(args.seed + 1000 * rank)  # different dropout masks on each process
    state = {"epoch": 0, "step": 0, "history": [], "best": None, "seen": {t: 0 for t in tasks}, "elapsed": 0.0}
    if args.resume:
        ckpt = torch.load(out / "checkpoint.pt", map_location=device, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scaler.load_state_dict(ckpt["scaler"])
        for t in tasks:
            streams[t].load_state_dict(ckpt["streams"][t])
        torch.set_rng_state(ckpt["rng"])  # dropout masks continue exactly as in an uninterrupted run
        if device.type == "cuda" and "cuda_rng" in ckpt:
            torch.cuda.set_rng_state(ckpt["cuda_rng"])
        state = ckpt["state"]
        log(f"resumed {out} at epoch {state['epoch'] + 1} step {state['step']}")

    def checkpoint():
        if rank == 0:
            files.save_torch(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                    "streams": {t: s.state_dict() for t, s in streams.items()},
                    "rng": torch.get_rng_state(),
                    **({"cuda_rng": torch.cuda.get_rng_state()} if device.type == "cuda" else {}),
                    "state": {**state, "elapsed": state["elapsed"] + time.time() - t_start},
                    "args": vars(args),
                },
                out / "checkpoint.pt",
            )
        distributed.barrier()

    n_params = sum(p.numel() for p in model.parameters())
    log(
        f"model {args.model}: {n_params / 1e6:.1f}M parameters on {device} x {world} (amp {args.amp}); "
        f"tasks {', '.join(tasks)}; train rows {', '.join(f'{t} {len(d)}' for t, d in train_data.items())}"
    )
    total_steps = args.epochs * args.steps_per_epoch
    with StopFlag() as stop:
        for epoch in range(state["epoch"], args.epochs):
            log(f"epoch {epoch + 1}/{args.epochs}: schedule {schedule.describe(epoch)}", flush=True)
            model.train()
            running = {t: [] for t in tasks}
            if state["step"] == 0:  # (a resumed epoch keeps the losses of its steps before the stop)
                state["epoch_loss"] = {t: [] for t in tasks}
            t_epoch, first_step = time.time(), state["step"]
            for step in range(state["step"], args.steps_per_epoch):
                global_step = epoch * args.steps_per_epoch + step
                for group in optimizer.param_groups:
                    group["lr"] = get_lr(global_step, total_steps, args)
                step_tasks = schedule.tasks_for_step(epoch, step)
                surgery = args.pcgrad and len(step_tasks) > 1
                pending = []  # PCGrad backpropagates all tasks' losses together, after the loop
                for i, task in enumerate(step_tasks):
                    indices = next(streams[task])
                    while len(indices) < world:  # a tail batch too small to give every process an example
                        indices = next(streams[task])
                    mine = distributed.shard(indices)
                    batch = to_device(data.collate(train_data[task], mine), device)
                    with autocast(device, args.amp):
                        # PCGrad averages gradients over processes itself, so it bypasses DDP.
                        loss = task_loss(
                            model if surgery else net, model, task, batch, args, args.smart > 0 and task in smart_tasks
                        )
                    # This process's share of the global batch, so that DDP's average is the global-batch mean.
                    share = distributed.local_weight(len(mine), len(indices))
                    value = distributed.all_sum(loss.item() * share / world)  # the global-batch loss
                    if not math.isfinite(value):
                        sys.exit(
                            f"error: {task} loss is {value} at epoch {epoch + 1} step {step + 1} "
                            f"(global step {global_step + 1}); try a lower --lr or --amp bf16/off"
                        )
                    running[task].append(value)
                    state["epoch_loss"][task].append(value)
                    state["seen"][task] += len(indices)
                    loss = loss * weights[task] * share
                    if surgery:
                        pending.append(scaler.scale(loss))
                        continue
                    # Backpropagate each task's loss at once (its graph is freed); gradients add up.
                    # With DDP, only the step's last backward averages them over processes.
                    last = i == len(step_tasks) - 1
                    with net.no_sync() if world > 1 and not last else contextlib.nullcontext():
                        scaler.scale(loss).backward()
                if pending:
                    with net.no_sync() if world > 1 else contextlib.nullcontext():
                        # The order PCGrad visits tasks in is random: seed it per step, the same on every process.
                        order = torch.Generator().manual_seed(args.seed * 1_000_003 + global_step)
                        pcgrad.backward(pending, shared, args.pcgrad_reduction, order, reduce=distributed.all_mean_)
                    for p in heads:  # DDP did not see these backward passes: average the heads' gradients too
                        if p.grad is not None:
                            distributed.all_mean_(p.grad)
                scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
                if args.clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)

                if (step + 1) % args.log_every == 0 or step + 1 == args.steps_per_epoch:
                    rate = (step + 1 - first_step) / (time.time() - t_epoch)
                    eta = (total_steps - global_step - 1) / rate
                    losses_now = "  ".join(f"{t} {np.mean(v):.3f}" for t, v in running.items() if v)
                    log(
                        f"  step {step + 1}/{args.steps_per_epoch}  {rate:.2f} steps/s  ETA {format_time(eta)}  "
                        f"lr {get_lr(global_step, total_steps, args):.2e}  loss {losses_now}",
                        flush=True,
                    )
                    running = {t: [] for t in tasks}
                state["step"] = step + 1
                stopping = distributed.all_sum(float(stop.requested)) > 0  # every process stops at the same step
                if stopping or (args.save_every and (global_step + 1) % args.save_every == 0):
                    checkpoint()
                    if stopping:
                        log(f"saved {out / 'checkpoint.pt'}; continue with: python train.py --resume {out}")
                        distributed.cleanup()
                        return None

            t_eval = time.time()
            metrics, _ = evaluate(model, dev, args, device)
            subset = f", <= {args.eval_subset} rows per task" if args.eval_subset else ""
            print_table(log, f"epoch {epoch + 1} dev ({format_time(time.time() - t_eval)}{subset})", metrics)
            train_loss = {t: float(np.mean(v)) for t, v in state["epoch_loss"].items() if v}
            state["history"].append(
                {
                    "epoch": epoch + 1,
                    "dev": metrics,
                    "overall": overall(metrics),
                    "train_loss": train_loss,
                    "seen": dict(state["seen"]),
                }
            )
            if state["best"] is None or overall(metrics) > state["best"]["overall"]:
                state["best"] = {"epoch": epoch + 1, "overall": overall(metrics)}
                if rank == 0:
                    files.save_torch(
                        {
                            "model": model.state_dict(),
                            "encoder_config": model.bert.config.to_dict(),
                            "num_classes": num_classes,
                            "tasks": tasks,
                            "args": vars(args),
                            "epoch": epoch + 1,
                        },
                        out / "best.pt",
                    )
            state["epoch"], state["step"] = epoch + 1, 0
            checkpoint()
    metrics = finish(args, model, out, splits, state, t_start, device, log)
    distributed.cleanup()
    return metrics


def finish(args, model, out, splits, state, t_start, device, log):
    """Reload the best model, score the full dev sets, write predictions and metrics.json."""
    best = torch.load(out / "best.pt", map_location=device, weights_only=True)
    model.load_state_dict(best["model"])
    t_eval = time.time()
    final, outputs = evaluate(model, splits["dev"], args, device)
    print_table(
        log, f"best model (epoch {best['epoch']}) on the full dev sets ({format_time(time.time() - t_eval)})", final
    )
    tests = {task: predict_all(model, task, task_data, args, device) for task, task_data in splits["test"].items()}
    wall = state["elapsed"] + time.time() - t_start
    metrics = {
        "dev": final,
        "overall": overall(final),
        "best_epoch": best["epoch"],
        "epochs": state["history"],
        "examples_seen": state["seen"],
        "wall_time_s": round(wall, 1),
        "config": vars(args),
    }
    if distributed.is_main():
        for split, results in (("dev", outputs), ("test", tests)):
            for task, (preds, raws) in results.items():
                predictions.write(out / "predictions", task, split, splits[split][task].example_ids, preds, raws)
        files.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    log(f"done in {format_time(wall)}; wrote {out / 'metrics.json'} and {out / 'predictions'}/")
    return metrics


# ----------------------------------------------------------------------------
# command line


def get_parser():
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    a = p.add_argument
    a("--task", default="all", choices=["sst", "para", "sts", "all"], help="task to train, or all three on one encoder")
    a("--model", default="all-MiniLM-L6-v2", help="encoder: packaged default, a model folder, or a hub id")
    a("--out", default=None, help="run folder (default runs/<task>)")
    a(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue the interrupted run in RUN_DIR with its saved settings",
    )
    a("--init-from", default=None, metavar="CHECKPOINT", help="start from a trained run's best.pt/checkpoint.pt")
    a("--freeze-encoder", action="store_true", help="train only the heads (frozen-encoder baseline)")
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default="data", help="folder with the course files (make data)")
    for t in TASKS:
        for split in ("train", "dev", "test"):
            g.add_argument(
                f"--{t}-{split}", default=None, help=f"{t} {split} file (default <data-dir>/{TASKS[t].files[split]})"
            )
    g.add_argument(
        "--max-length", type=int, default=128, help="truncate sequences (pairs: longest first) to this many tokens"
    )
    g.add_argument(
        "--batching", default="bucket", choices=["bucket", "random"], help="length-bucketed or random batches"
    )
    g.add_argument("--overfit-batch", action="store_true", help="sanity mode: train on one fixed batch per task")
    g = p.add_argument_group("model")
    g.add_argument("--pair-encoding", default="cross", choices=["cross", "bi"], help="how para and sts encode a pair")
    g.add_argument(
        "--bi-head", default="cosine", choices=["cosine", "concat"], help="bi-encoder head: cosine or [u,v,|u-v|,u*v]"
    )
    g.add_argument("--pooling", default="cls", choices=["cls", "mean"], help="sentence vector: [CLS] or mean of tokens")
    g.add_argument("--dropout", type=float, default=0.1, help="dropout before every head")
    for t in TASKS:
        g.add_argument(
            f"--{t}-dropout", type=float, default=None, help=f"dropout before the {t} head (default --dropout)"
        )
    g.add_argument(
        "--encoder-dropout", type=float, default=None, help="override the encoder's dropout (default: config's)"
    )
    g.add_argument(
        "--attn", default="sdpa", choices=["sdpa", "explicit"], help="attention: fused kernel or written-out math"
    )
    g.add_argument(
        "--unpad",
        default="on",
        choices=["on", "off"],
        help=f"skip padded positions outside attention when a batch is >= {UNPAD_MIN * 100:g}%% padding (same values)",
    )
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=3, help="epochs (an evaluation after each)")
    g.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="optimizer steps per epoch (default 1000; 450 with --smart, whose steps cost 2.1-2.5x)",
    )
    g.add_argument("--schedule", default="annealed", choices=SCHEDULES, help="multitask schedule (schedules.py)")
    g.add_argument("--batch-size", type=int, default=16, help="examples per batch")
    for t in TASKS:
        g.add_argument(f"--{t}-batch-size", type=int, default=None, help=f"{t} batch size (default --batch-size)")
        g.add_argument(f"--{t}-weight", type=float, default=1.0, help=f"weight of the {t} loss")
    g.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    g.add_argument(
        "--lr-schedule", default="linear", choices=["linear", "constant"], help="after warmup: linear decay or constant"
    )
    g.add_argument("--warmup", type=float, default=0.05, help="fraction of all steps spent warming the lr up")
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decoupled weight decay (matrices only)")
    g.add_argument("--clip", type=float, default=1.0, help="clip the gradient norm to this (0 = off)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed on CPU = same run)")
    g = p.add_argument_group("SMART and PCGrad")
    g.add_argument("--smart", type=float, default=0.0, metavar="LAMBDA", help="weight of SMART's regularizer (0 = off)")
    g.add_argument("--smart-tasks", default="all", help="comma-separated tasks SMART applies to, or all")
    g.add_argument("--smart-eps", type=float, default=1e-5, help="radius of the perturbation ball")
    g.add_argument("--smart-sigma", type=float, default=1e-5, help="std of the initial noise")
    g.add_argument("--smart-eta", type=float, default=1e-3, help="step size of the inner ascent")
    g.add_argument("--smart-steps", type=int, default=1, help="inner ascent steps")
    g.add_argument("--smart-norm", default="inf", choices=["inf", "l2"], help="norm of the perturbation ball")
    g.add_argument(
        "--smart-variant",
        default="project",
        choices=["project", "normalize"],
        help="paper's projection onto the ball, or MT-DNN's normalisation",
    )
    g.add_argument(
        "--pcgrad", action="store_true", help="PCGrad gradient surgery across tasks (needs --schedule summed)"
    )
    g.add_argument(
        "--pcgrad-reduction", default="sum", choices=["sum", "mean"], help="combine surgered gradients by sum or mean"
    )
    g = p.add_argument_group("running")
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")
    g.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision (auto: bf16 on a GPU, off on CPU; bf16 on a CPU with native bf16 "
        "runs the main job about 1.3x faster, see README)",
    )
    g.add_argument("--compile", action="store_true", help="torch.compile the encoder layers")
    g.add_argument("--eval-subset", type=int, default=2000, help="rows per dev set scored after each epoch (0 = all)")
    g.add_argument("--eval-batch-size", type=int, default=128, help="batch size for evaluation")
    g.add_argument("--log-every", type=int, default=50, help="print progress every N steps")
    g.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0 = each epoch end)")
    return p


def parse_args(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.resume:
        path = Path(args.resume) / "checkpoint.pt"
        if not path.is_file():
            parser.error(f"--resume {args.resume}: no checkpoint.pt there")
        saved = torch.load(path, map_location="cpu", weights_only=True)["args"]
        # The run's own settings; defaults only for flags added since it was saved.
        args = argparse.Namespace(**{**vars(parser.parse_args([])), **saved, "resume": args.resume, "out": args.resume})
    args.out = args.out or f"runs/{args.task}"
    if args.steps_per_epoch is None:
        # A SMART step costs 2.1-2.5 plain ones on CPU (one more forward and backward for the
        # ascent, one more forward for the regularizer), so fewer steps keep the same time budget.
        args.steps_per_epoch = 450 if args.smart > 0 else 1000
    for name in ("epochs", "steps_per_epoch", "batch_size", "log_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.pcgrad and args.schedule != "summed" and args.task == "all":
        parser.error("--pcgrad compares the tasks' gradients within a step: use it with --schedule summed")
    if args.smart_tasks != "all" and not set(args.smart_tasks.split(",")) <= set(TASKS):
        parser.error(f"--smart-tasks: unknown task in {args.smart_tasks!r} (choose from {', '.join(TASKS)} or all)")
    return args


if __name__ == "__main__":
    try:
        train(parse_args())
    except data.DataError as e:
        sys.exit(f"error: {e}")
