"""Multitask fine-tuning of BERT: sentiment (SST-5), paraphrase (Quora) and similarity (STS).

One plain loop (loop.train_epochs, which mlm.py's pretraining runs too). Each step the schedule
picks a task (schedules.py), that task's next batch runs through the shared encoder and its head
(heads.py), the loss, plus SMART's smoothness regularizer when on (smart.py), is
back-propagated, through PCGrad's gradient surgery when on (pcgrad.py), and AdamW takes a step
(adamw.py). After each epoch every dev set is scored
and the best model so far is kept; at the end the best model writes dev and test predictions.
With --ema the moving average of the weights (ema.py) is what is scored, kept and predicts.

    python train.py --task all                # the CPU default: packaged MiniLM, < 30 min on 2 cores
    python train.py --task all --smart 3      # ... with SMART regularization
    python train.py --task all --model bert-base-uncased --device cuda --epochs 10 --lr 2e-5
    python train.py --resume runs/all         # continue an interrupted run where it stopped

The run folder (--out) holds checkpoint.pt (the latest state, for --resume), best.pt (the
best model; predict.py loads it), best-{task}.pt (each task's best epoch, and its predictions in
best-{task}/ when that is not best.pt's epoch), tokenizer/, metrics.json and predictions/.

Reading order: train_run() at the bottom of the "training" section is the whole run in a
dozen lines (train() wraps it in the run folder's lock); train_step() is one optimizer step
(the plain path first, what --pcgrad, --grad-accum and torchrun add beside it) and end_epoch()
the scoring after each epoch, the two pieces of fine-tuning that loop.train_epochs runs;
setup() builds everything the loop needs.
"""

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import analysis
import cli
import data
import distributed
import files
import hub
import loop
import pages
import pcgrad
import predictions
import recipes
import smart
from adamw import AdamW
from ema import EMA
from heads import BI_HEADS, HeadConfig, MultitaskBert
from loop import autocast, format_time, get_lr, layer_decay_groups, param_groups, to_device
from losses import SST_LOSSES, STS_LOSSES, rdrop_loss
from minbert import UNPAD_MIN, BertModel
from predict import predict
from schedules import SAMPLED, SCHEDULES, Schedule
from tasks import TASK_NAMES, TASKS, overall, plain_mean, score
from tokenizer import build_tokenizer


def eval_subset(task_data, n, seed):
    """A fixed random subset of n examples (the whole set if n is 0 or larger), for cheap per-epoch scores."""
    if not n or len(task_data) <= n:
        return task_data
    return data.subset(task_data, np.sort(np.random.default_rng(seed).permutation(len(task_data))[:n]))


# ----------------------------------------------------------------------------
# model


def build_model(args, bert_dir, tasks, num_classes, log=print):
    dropout = args.encoder_dropout
    overrides = {} if dropout is None else {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    bert = BertModel.from_pretrained(bert_dir, attn_impl=args.attn, **overrides)
    bert.unpad = args.unpad == "on"
    heads = HeadConfig.from_args(vars(args))
    cross = [t for t in tasks if heads.encoding(t) == "cross"]
    if cross and bert.config.type_vocab_size < 2:  # the second sentence of a pair is token type 1
        sys.exit(
            f"error: --model {args.model}: type_vocab_size 1, but cross-encoded {cross[0]} needs 2 (--pair-encoding bi)"
        )
    model = MultitaskBert(bert, num_classes, heads, tasks)
    if args.init_from and not args.resume:  # a resumed run's weights come from its checkpoint.pt
        init_from(model, args.init_from, log)
    if args.freeze_encoder:
        model.bert.requires_grad_(False)
    return model


def init_from(model, path, log=print):
    """Start from a trained run's weights: the whole encoder, and every head whose task and
    shape match (e.g. the paraphrase head of a paraphrase-only run)."""
    state = files.load_torch(path, "checkpoint for --init-from", keys=("model",))["model"]
    own = model.state_dict()
    encoder = {k: v for k, v in state.items() if k.startswith("bert.")}
    missing = sorted(k for k in own if k.startswith("bert.") and k not in encoder)
    if missing:
        sys.exit(f"error: --init-from {path}: encoder weights missing: {', '.join(missing[:5])}")
    resized = [k for k, v in own.items() if k in encoder and encoder[k].shape != v.shape]
    if resized:  # e.g. a bert-base run's best.pt with --model MiniLM
        k = resized[0]
        shapes = f"{k} is {tuple(encoder[k].shape)} there, {tuple(own[k].shape)} here"
        sys.exit(f"error: --init-from {path}: its encoder is not the size of --model's ({shapes})")
    heads = {k: v for k, v in state.items() if k.startswith("heads.") and k in own and own[k].shape == v.shape}
    model.load_state_dict({**encoder, **heads}, strict=False)
    kept = sorted({k.split(".")[1] for k in heads})
    fresh = sorted({k.split(".")[1] for k in own if k.startswith("heads.")} - set(kept))
    log(f"initialised from {path}: encoder + heads {kept or 'none'}; new heads {fresh or 'none'}")


# ----------------------------------------------------------------------------
# evaluation


def predict_all(model, task, task_data, args, device):
    """predict() over a whole dataset; with several processes each predicts a share and all gather."""
    mine = np.arange(len(task_data))[distributed.rank() :: distributed.world()]
    preds, raws = predict(model, task, data.subset(task_data, mine), args.eval_batch_size, device, args.amp)
    shares = [share for share in distributed.gather((mine, preds, raws)) if len(share[0])]  # a tiny set: some empty
    order, preds, raws = (np.concatenate(x) for x in zip(*shares))
    back = np.argsort(order)
    return preds[back], raws[back]


def evaluate(model, dev, args, device):
    """Score every dev set; returns {task: metric} and the predictions {task: (preds, raws)}."""
    metrics, outputs = {}, {}
    for task, task_data in dev.items():
        outputs[task] = predict_all(model, task, task_data, args, device)
        metrics[task] = score(task, outputs[task][0], task_data.labels)
    return metrics, outputs


def print_table(log, title, metrics):
    cells = "  ".join(f"{t} {metrics[t]:.4f}" for t in TASK_NAMES if t in metrics)
    log(f"{title}: {cells}  | overall {overall(metrics):.4f}  plain mean {plain_mean(metrics):.4f}", flush=True)


# ----------------------------------------------------------------------------
# setup: everything the loop needs, in one place


@dataclass(kw_only=True)
class TrainRun(loop.Run):
    """A fine-tuning run: what the loop reads (loop.Run), and the data, the DDP wrapper and --ema."""

    splits: dict  # split -> task -> data.TaskData
    dev: dict  # task -> the dev rows scored after each epoch
    num_classes: int
    net: torch.nn.Module  # the model, wrapped in DDP when distributed
    ema: EMA = None  # --ema: the moving average of the weights, which is scored, kept and predicts

    @property
    def saved_extra(self):
        """What checkpoint.pt keeps beside the loop's own state (loop.checkpoint): the --ema average, when on."""
        return {"ema": self.ema} if self.ema is not None else None


def setup(args):
    t_start = time.time()
    device = loop.start(args, RUN_PRODUCTS)
    rank, world, device = distributed.join_group(device.type)
    log = print if rank == 0 else lambda *a, **k: None  # only rank 0 prints and writes
    tasks = list(TASK_NAMES) if args.task == "all" else [args.task]
    out = Path(args.out)

    bert_dir = prepare_model_dir(args, out, rank == 0, log)
    tokenizer = build_tokenizer(bert_dir, args.max_length)
    encodings = HeadConfig.from_args(vars(args)).encoding  # how each task's model reads its input
    splits, num_classes, synth = data.load_task_data(args, tasks, tokenizer, encodings, log)
    dev = {t: eval_subset(d, args.eval_subset, args.seed) for t, d in splits["dev"].items()}

    model = build_model(args, bert_dir, tasks, num_classes, log).to(device)
    groups = param_groups(model, args.weight_decay)
    if args.layer_lr_decay != 1:  # lower rates for lower layers, in groups of their own
        layers = model.bert.config.num_hidden_layers
        groups = layer_decay_groups(model, args.weight_decay, args.layer_lr_decay, layers)
    optimizer = AdamW(groups, lr=args.lr, betas=tuple(args.adam_betas), eps=args.adam_eps)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")  # fp16 needs loss scaling; bf16 does not
    if args.compile:
        model.bert.compile_layers()
    net = model
    if world > 1:
        # DDP averages gradients over processes during backward. Heads of tasks not in this
        # step's batch get no gradient, hence find_unused_parameters.
        ids = [device] if device.type == "cuda" else None
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=len(tasks) > 1)
    streams, schedule = build_schedule(args, tasks, splits["train"], synth)
    if world > 1:
        torch.manual_seed(args.seed + 1000 * rank)  # different dropout masks on each process
    used = {"sst_synth": {k: synth[k] for k in ("file", "examples", "sources")}} if synth else {}
    state = loop.new_state(data.data_fingerprint(args, tasks), seen={t: 0 for t in tasks}, best_task={}, **used)
    loop_parts = dict(args=args, out=out, device=device, log=log, model=model, optimizer=optimizer, scaler=scaler)
    loop_parts.update(schedule=schedule, tasks=tasks, state=state, streams=streams, world=world, t_start=t_start)
    run = TrainRun(**loop_parts, splits=splits, dev=dev, num_classes=num_classes, net=net)
    run.ema = EMA(model, args.ema) if args.ema else None
    if args.resume:
        loop.resume(run)
    return run


def prepare_model_dir(args, out, main, log):
    """The encoder's folder (downloaded if need be); its tokenizer is copied into the run."""
    bert_dir = hub.resolve_model_dir(args.model)
    positions = json.loads((bert_dir / "config.json").read_text()).get("max_position_embeddings", 512)
    if args.max_length > positions:  # longer inputs would index past the position embeddings
        log(f"--max-length {args.max_length} is more than {args.model}'s {positions} positions: cut at {positions}")
        args.max_length = positions
    if main:  # the tokenizer travels with the run, so predict.py needs nothing but the run folder
        files.make_folder(out / "tokenizer")  # a planted link there is replaced, not written through
        for name in ("vocab.txt", "tokenizer_config.json"):
            if (bert_dir / name).is_file():
                files.copy_file(bert_dir / name, out / "tokenizer" / name)
            elif (out / "tokenizer" / name).exists():  # left by a run --overwrite replaced: it would mislead
                files.remove(out / "tokenizer" / name)
    return bert_dir


def build_schedule(args, tasks, train_data, synth):
    """One endless batch stream per task, and the schedule that says which stream each step reads."""
    streams = {}
    for i, t in enumerate(tasks):
        size = getattr(args, f"{t}_batch_size") or args.batch_size
        bucket = args.batching == "bucket"
        streams[t] = data.BatchStream(train_data[t], size, args.seed * 10 + i, bucket, args.overfit_batch)
    # The schedule sees the real training rows: synthetic ones must not shift the task mix.
    sizes = {t: len(train_data[t]) - (synth["examples"] if synth and t == "sst" else 0) for t in tasks}
    passes = {t: 1 if args.overfit_batch else s.batches_per_pass for t, s in streams.items()}
    try:
        schedule = Schedule(
            args.schedule, sizes, passes, args.epochs, args.steps_per_epoch, args.seed, args.stagger_epochs
        )
    except ValueError as e:
        sys.exit(f"error: --schedule {args.schedule}: {e}")
    return streams, schedule


# ----------------------------------------------------------------------------
# training


def train_step(run, epoch, step):
    """One optimizer step: each task the schedule picks at this step gets its next batch, forward,
    loss and backward (the gradients add up over the tasks); then clip and AdamW's step.

    That is the plain path below. Beside it, each in a helper of its own: --pcgrad (pcgrad_step:
    every task's loss first, then gradient surgery), --grad-accum and torchrun (task_batches cuts
    the batch into parts; no_sync_unless), --smart and --rdrop (inside task_loss).

    Returns {task: (loss, hits)}: loss is the global batch's mean loss as a 0-dim tensor divided by
    the number of processes, hits = [correct, counted] predictions of this process (sst and para).
    Both are summed over processes at log time, not here, so no step waits on them."""
    loop.set_lr(run.optimizer, lr_at(run, epoch, run.schedule.global_step(epoch, step)))
    tasks = run.schedule.tasks_for_step(epoch, step)
    if run.args.pcgrad and len(tasks) > 1:  # PCGrad needs every task's loss before any backward
        return pcgrad_step(run, epoch, step, tasks)
    results = {}
    for task in tasks:
        for part in task_batches(run, task, last_task=task == tasks[-1]):  # plainly one part: the batch
            with autocast(run.device, run.args.amp):
                loss, out = task_loss(run.net, run.model, task, part, run.args)
            loss = log_part(run, results, task, loss, out, part)
            with no_sync_unless(run, part.last):
                run.scaler.scale(loss).backward()
    loop.clip_and_step(run.model, run.optimizer, run.scaler, run.args.clip)
    if run.ema is not None:  # --ema: the moving average follows the new weights
        run.ema.update(run.model)
    return results


def lr_at(run, epoch, global_step):
    """The step's learning rate: loop.get_lr with the run's --lr, --warmup and --lr-* flags."""
    a, total = run.args, run.schedule.total_steps()
    return get_lr(global_step, total, a.lr, a.warmup, a.lr_schedule, epoch, a.lr_step_epochs, a.lr_gamma)


def task_loss(net, model, task, part, args):
    """The loss of one task's batch (a Part), plus SMART's regularizer when on; and the head's output."""
    batch, rdrop = part.batch, task == "sst" and args.rdrop > 0
    if rdrop:  # R-Drop: every example twice in one batch, so under two dropout masks (losses.py)
        batch = {k: torch.cat([v, v]) for k, v in batch.items()}
    out, embeds = net(task, batch, return_embeddings=True)  # through DDP when distributed
    loss = rdrop_task_loss(model, out, batch["labels"], args.rdrop) if rdrop else model.loss(task, out, batch["labels"])
    if smart_on(args, task):
        regularizer = smart_loss(model, task, batch, embeds, out, args, part.size / part.whole)
        loss = loss + smart_weight(args, part) * regularizer
    return loss, out.chunk(2)[0] if rdrop else out


def rdrop_task_loss(model, out, labels, alpha):
    """--rdrop: the two passes' sentiment losses and their symmetric KL (losses.rdrop_loss)."""
    (out_a, out_b), labels = out.chunk(2), labels.chunk(2)[0]
    return rdrop_loss(model.loss("sst", out_a, labels), model.loss("sst", out_b, labels), out_a, out_b, alpha)


def smart_loss(model, task, batch, embeds, out, args, batch_share):
    """--smart: SMART's regularizer; it runs the rest of the model from perturbed embeddings (smart.py).
    batch_share: this part's share of the global batch (1 but with --grad-accum or torchrun)."""
    forward = lambda *x: model.from_embeddings(task, list(x), batch)
    hyper = {k: getattr(args, f"smart_{k}") for k in ("eps", "sigma", "eta", "steps", "norm", "variant")}
    return smart.smart_regularizer(forward, tuple(embeds), out, TASKS[task].kind, batch_share=batch_share, **hyper)


# beside the plain step: the batch's parts (--grad-accum, torchrun), the log, PCGrad


@dataclass
class Part:
    """A task's batch, or one micro-batch of it (--grad-accum), on the run's device."""

    batch: dict
    size: int  # examples in this part
    fraction: float  # of this process's batch: the parts' mean losses, so weighted, add up to the batch's mean
    whole: int  # examples in the global batch (every process's parts together)
    share: float  # torchrun: this process's weight, so that DDP's average is the global batch's mean
    last: bool  # the step's last backward: DDP averages the gradients over processes there


def task_batches(run, task, last_task):
    """The task's next batch as Parts: plainly one, the whole batch (fraction 1, share 1).
    --grad-accum n cuts this process's batch into n micro-batches; under torchrun each process
    takes its slice of the global batch (distributed.shard)."""
    indices = next(run.streams[task])
    while len(indices) < run.world:  # a tail batch too small to give every process an example
        indices = next(run.streams[task])
    run.state["seen"][task] += len(indices)
    mine, share = indices, 1.0
    if run.world > 1:
        mine = distributed.shard(indices)
        share = distributed.local_weight(len(mine), len(indices))
    pieces = micro_batches(mine, run.args.grad_accum) if run.args.grad_accum > 1 else [mine]
    for j, piece in enumerate(pieces):
        swaps = pair_swaps(len(piece)) if run.model.symmetric(task) else None  # --pair-symmetry
        batch = to_device(data.collate(run.splits["train"][task], piece, swaps), run.device)
        yield Part(batch, len(piece), len(piece) / len(mine), len(indices), share, last_task and j == len(pieces) - 1)


def micro_batches(indices, n):
    """--grad-accum n: a batch as n consecutive micro-batches (fewer when the batch is smaller than n)."""
    size = math.ceil(len(indices) / n)
    return [indices[i : i + size] for i in range(0, len(indices), size)]


def pair_swaps(n):
    """--pair-symmetry: which of n cross-encoded pairs to train on in the other order, b before a,
    each with probability 1/2 drawn from the run's seeded generator (checkpoints keep its state,
    so a resumed run draws the same)."""
    return (torch.rand(n) < 0.5).tolist()


def smart_on(args, task):
    return args.smart > 0 and (args.smart_tasks == "all" or task in args.smart_tasks.split(","))


def smart_weight(args, part):
    """--smart's λ for this part of a batch. The normalize variant's regularizer is a sum over the
    batch (smart.py), not a mean as log_part's weights assume: a part (--grad-accum, torchrun)
    counts it whole batch / part times, so the parts add up to the whole batch's sum (the λ of a
    whole batch; it was 1/n of it)."""
    return args.smart * (part.whole / part.size if args.smart_variant == "normalize" else 1.0)


def log_part(run, results, task, loss, out, part):
    """Add a part's loss and training hits to results[task] = (loss, hits); return the loss to
    back-propagate: weighted by the part's fraction, --{task}-weight and the process's share."""
    loss = loss * part.fraction
    logged, hits = results.get(task, (0.0, torch.zeros(2, device=run.device)))
    if TASKS[task].kind != "regression":  # training accuracy, as the model was at this step
        hits[0] += (run.model.predict(task, out.detach())[0] == part.batch["labels"]).sum()
        hits[1] += part.size  # added as a Python number: no copy from the host each micro-batch
    results[task] = (logged + loss.detach().float() * part.share / run.world, hits)
    return loss * getattr(run.args, f"{task}_weight") * part.share


def no_sync_unless(run, sync):
    """torchrun: gradients add up locally over tasks and micro-batches; DDP averages them over the
    processes only in the step's last backward (sync)."""
    return run.net.no_sync() if run.world > 1 and not sync else contextlib.nullcontext()


def pcgrad_step(run, epoch, step, tasks):
    """--pcgrad: every task's loss first, then one backward through gradient surgery (pcgrad.py),
    then clip and step as train_step does."""
    results, losses = {}, []
    for task in tasks:
        kept = 0.0
        for part in task_batches(run, task, last_task=False):
            with autocast(run.device, run.args.amp):  # PCGrad averages gradients over processes itself: bypass DDP
                loss, out = task_loss(run.model, run.model, task, part, run.args)
            kept = kept + log_part(run, results, task, loss, out, part)
        losses.append(run.scaler.scale(kept))
    surgery_backward(run, losses, run.schedule.global_step(epoch, step))
    loop.clip_and_step(run.model, run.optimizer, run.scaler, run.args.clip)
    if run.ema is not None:  # --ema: the moving average follows the new weights
        run.ema.update(run.model)
    return results


def surgery_backward(run, kept_graphs, global_step):
    """PCGrad on the shared encoder's gradients (pcgrad.py); the heads' gradients simply add up."""
    shared = [p for p in run.model.bert.parameters() if p.requires_grad]
    with run.net.no_sync() if run.world > 1 else contextlib.nullcontext():
        # The order PCGrad visits tasks in is random: seed it per step, the same on every process.
        order = torch.Generator().manual_seed(run.args.seed * 1_000_003 + global_step)
        pcgrad.backward(kept_graphs, shared, run.args.pcgrad_reduction, order, reduce=distributed.all_mean_)
    for p in run.model.heads.parameters():  # DDP did not see these backward passes: average the heads too
        if p.grad is not None:
            distributed.all_mean_(p.grad)


def averaged(run):
    """--ema: a `with` block in which the model holds the moving average of its weights."""
    return run.ema.applied(run.model) if run.ema is not None else contextlib.nullcontext()


def end_epoch(run, epoch):
    """Score the dev sets and keep the best model so far (best.pt); True when --early-stop ends the run.
    (loop.train_epochs then checkpoints.)"""
    with averaged(run):  # --ema: the average is scored and kept; training goes on from the weights
        score_and_keep(run, epoch)
    return early_stop(run, epoch)


def score_and_keep(run, epoch):
    """Score the dev sets and log them, add the epoch to the history, keep best.pt and best-{task}.pt."""
    args, state = run.args, run.state
    t_eval = time.time()
    metrics, _ = evaluate(run.model, run.dev, args, run.device)
    subset = f", <= {args.eval_subset} rows per task" if args.eval_subset else ""
    print_table(run.log, f"epoch {epoch + 1} dev ({format_time(time.time() - t_eval)}{subset})", metrics)
    train_loss = {t: float(np.mean(v)) for t, v in state["epoch_loss"].items() if v}
    # Accuracy on the epoch's training batches, each scored by the model as it was at that step,
    # with dropout on ("BERT and Beyond" Table 6): no extra forward passes.
    hits = state["epoch_hits"]
    train_acc = {t: hits[t][0] / hits[t][1] for t in run.tasks if t in hits}
    if train_acc:
        run.log("  training accuracy (during the epoch): " + "  ".join(f"{t} {a:.4f}" for t, a in train_acc.items()))
    entry = {"epoch": epoch + 1, "dev": metrics, "overall": overall(metrics), "plain_mean": plain_mean(metrics)}
    entry.update(train_loss=train_loss, train_acc=train_acc, seen=dict(state["seen"]))
    state["history"].append(entry)
    if state["best"] is None or overall(metrics) > state["best"]["overall"]:
        state["best"] = {"epoch": epoch + 1, "overall": overall(metrics)}
        save_best(run, epoch, run.out / "best.pt")
    # Each task's own best epoch too ("Tuning Up BERT" Table 4), for per-task ensembles.
    best_task = state["best_task"]
    for task, value in metrics.items() if len(run.tasks) > 1 else ():
        if task not in best_task or value > best_task[task]["score"]:
            best_task[task] = {"epoch": epoch + 1, "score": value}
            save_best(run, epoch, run.out / f"best-{task}.pt")


def save_best(run, epoch, path):
    """The model as it is now, with what predict.py needs to rebuild it."""
    if distributed.is_main():
        best = {"model": run.model.state_dict(), "encoder_config": run.model.bert.config.to_dict()}
        best.update(num_classes=run.num_classes, tasks=run.tasks, args=vars(run.args), epoch=epoch + 1)
        files.save_torch(best, path)


def patience_ran_out(best, finished, patience, epochs):
    """--early-stop's rule after `finished` epochs: the dev overall has not improved for `patience`
    of them (best: the best epoch so far, or None), and epochs are left to skip."""
    return bool(patience and best and finished - best["epoch"] >= patience and finished < epochs)


def early_stop(run, epoch):
    """--early-stop N: stop when the dev overall has not improved for N epochs."""
    patience = run.args.early_stop
    if patience_ran_out(run.state["best"], epoch + 1, patience, run.args.epochs):
        run.log(
            f"early stop: dev overall has not improved for {patience} epoch(s) since epoch {run.state['best']['epoch']}"
        )
        return True
    return False


def write_task_bests(run):
    """Dev and test predictions of each best-{task}.pt from another epoch than best.pt, written to
    best-{task}/predictions/: a run folder of one task that ensemble.py can take as a member
    ("Tuning Up BERT" §5.5 ensembles per-task best checkpoints; ensemble.py --task-bests)."""
    for task, best in run.state["best_task"].items():
        if best["epoch"] == run.state["best"]["epoch"]:
            # the same weights as best.pt: the run's own predictions already are these; a folder
            # from before a resume (another epoch's) would be taken by ensemble.py --task-bests
            stale = run.out / f"best-{task}"
            if distributed.is_main() and stale.exists():
                files.remove(stale)
                run.log(f"removed {stale}/: {task}'s best epoch is best.pt's now")
            continue
        path = run.out / f"best-{task}.pt"
        state = files.load_torch(path, "per-task best model", keys=("model",), map_location=run.device)["model"]
        run.model.load_state_dict(state)
        for split in ("dev", "test"):
            if task in run.splits[split]:
                task_data = run.splits[split][task]
                preds, raws = predict_all(run.model, task, task_data, run.args, run.device)
                if distributed.is_main():
                    folder = run.out / f"best-{task}" / "predictions"
                    predictions.write(folder, task, split, task_data.example_ids, preds, raws)
        run.log(f"wrote {run.out / f'best-{task}'}/predictions/ ({task}'s best epoch, {best['epoch']})")


def finish(run):
    """Reload the best model, score the full dev sets, write predictions and metrics.json."""
    args, model, out, splits = run.args, run.model, run.out, run.splits
    write_task_bests(run)  # first: it loads other weights into the model
    best = files.load_torch(out / "best.pt", "best model", keys=("model", "epoch"), map_location=run.device)
    model.load_state_dict(best["model"])
    t_eval = time.time()
    final, outputs = evaluate(model, splits["dev"], args, run.device)
    title = f"best model (epoch {best['epoch']}) on the full dev sets ({format_time(time.time() - t_eval)})"
    print_table(run.log, title, final)
    tests = {task: predict_all(model, task, task_data, args, run.device) for task, task_data in splits["test"].items()}
    wall = run.elapsed
    metrics = {
        "dev": final,
        "overall": overall(final),
        "plain_mean": plain_mean(final),
        "best_epoch": best["epoch"],
        "best_per_task": run.state["best_task"],
        "epochs": run.state["history"],
        "examples_seen": run.state["seen"],
        "wall_time_s": round(wall, 1),
        "config": vars(args),
    }
    if "sst_synth" in run.state:  # how many synthetic rows joined sentiment training
        metrics["sst_synth"] = run.state["sst_synth"]
    if distributed.is_main():
        for split, results in (("dev", outputs), ("test", tests)):
            for task, (preds, raws) in results.items():
                predictions.write(out / "predictions", task, split, splits[split][task].example_ids, preds, raws)
        files.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    run.log(f"done in {format_time(wall)}; wrote {out / 'metrics.json'} and {out / 'predictions'}/")
    return metrics


def train(args):
    """The whole run: set up, train epoch by epoch (scoring dev after each), then predict with the
    best model. Returns the final metrics (an --early-stop too), or None when Ctrl-C or SIGTERM
    stopped it (checkpoint saved).
    The run folder is locked meanwhile: a second train.py on it refuses (cli.run_folder_locked)."""
    with cli.run_folder_locked(args.out):
        return train_run(args)


def train_run(args):
    run = setup(args)
    n_params = sum(p.numel() for p in run.model.parameters())
    rows = ", ".join(f"{t} {len(d)}" for t, d in run.splits["train"].items())
    run.log(
        f"model {args.model}: {n_params / 1e6:.1f}M parameters on {run.device} x {run.world} (amp {args.amp}); "
        f"tasks {', '.join(run.tasks)}; train rows {rows}"
    )
    # A run resumed after its early stop (stopped in its final predictions) goes straight to them.
    stopped = args.resume and early_stop(run, run.state["epoch"] - 1)
    if not stopped and not loop.train_epochs(run, train_step, end_epoch, "train.py"):
        distributed.cleanup()
        return None  # stopped by Ctrl-C, checkpoint saved
    metrics = finish(run)
    if distributed.is_main() and not args.no_report:
        try:
            run.log(f"report: {pages.write_report(run.out)}")
        except (analysis.RunError, data.DataError, predictions.PredictionFileError, OSError) as e:
            run.log(f"warning: no report written: {e}")
    distributed.cleanup()
    return metrics


# ----------------------------------------------------------------------------
# command line


def get_parser():
    p = cli.new_parser(__doc__)
    a = p.add_argument
    recipes.add_config_flag(p)
    a("--task", default="all", choices=[*TASK_NAMES, "all"], help="task to train, or all three on one encoder")
    a("--model", default="all-MiniLM-L6-v2", help="encoder: packaged default, a model folder, or a hub id")
    a("--out", default=None, help="run folder (default runs/<task>)")
    cli.add_run_folder_flags(p)
    a("--init-from", default=None, metavar="CHECKPOINT", help="start from a trained run's best.pt/checkpoint.pt")
    a("--freeze-encoder", action="store_true", help="train only the heads (frozen-encoder baseline)")

    add_data_flags(p)
    add_model_flags(p)
    add_loss_flags(p)
    add_optimisation_flags(p)
    add_smart_pcgrad_flags(p)
    add_running_flags(p)
    return p


def add_data_flags(p):
    g = p.add_argument_group("data")
    g.add_argument("--data-dir", default="data", help="folder with the course files (make data)")
    for t in TASKS:
        for split in ("train", "dev", "test"):
            g.add_argument(
                f"--{t}-{split}",
                default=None,
                help=f"{t} {split} file (default <data-dir>/{TASKS[t].files[split]})"
                + ("; none = no test predictions" if split == "test" else ""),
            )
    g.add_argument(
        "--max-length", type=int, default=128, help="truncate sequences (pairs: longest first) to this many tokens"
    )
    g.add_argument(
        "--batching", default="bucket", choices=["bucket", "random"], help="length-bucketed or random batches"
    )
    g.add_argument(
        "--sst-synth", default=None, metavar="JSONL", help="synth.py paraphrases added to sentiment training only"
    )
    g.add_argument(
        "--num-classes", type=int, default=None, help="sentiment classes (default: inferred from the training labels)"
    )
    g.add_argument("--overfit-batch", action="store_true", help="sanity mode: train on one fixed batch per task")


def add_model_flags(p):
    g = p.add_argument_group("model")
    g.add_argument("--pair-encoding", default="cross", choices=["cross", "bi"], help="how para and sts encode a pair")
    g.add_argument(
        "--bi-head",
        default="cosine",
        choices=BI_HEADS,
        help="bi-encoder head (heads.py): cosine heads, or a linear layer over [u,v,|u-v|,u*v] (concat), "
        "[u;v] (concat-plain) or SUSTech's B1/B2",
    )
    for t in ("para", "sts"):
        g.add_argument(
            f"--{t}-encoding", default=None, choices=["cross", "bi"], help=f"{t} only (default --pair-encoding)"
        )
        g.add_argument(
            f"--{t}-bi-head",
            default=None,
            choices=BI_HEADS,
            help=f"{t} only (default --bi-head)",
        )
    g.add_argument(
        "--bi-projection", action="store_true", help="a shared linear map before the cosine (Tuning Up BERT §4.2)"
    )
    g.add_argument(
        "--share-pair-heads",
        action="store_true",
        help="para and sts share their layers before the output (BERT++ §5-6; needs the same pair head)",
    )
    g.add_argument(
        "--pooling",
        default="cls",
        choices=["cls", "mean", "pooler"],
        help="sentence vector: [CLS], mean of tokens, or BERT's pooler (dense + tanh on [CLS])",
    )
    g.add_argument(
        "--pair-symmetry",
        action="store_true",
        help="cross-encoded para/sts: train on a random order of the two sentences, predict both orders and average",
    )
    g.add_argument("--head-layers", type=int, default=1, help="layers per head (BERT++ Model A: 2 or more)")
    g.add_argument("--head-activation", default="relu", choices=["relu", "gelu", "tanh"], help="between head layers")
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


def add_loss_flags(p):
    g = p.add_argument_group("losses")
    g.add_argument(
        "--sst-loss",
        default="ce",
        choices=SST_LOSSES,
        help="sentiment loss (losses.py); dual sums over classes as BERT and Beyond's equation, dual-mean averages",
    )
    g.add_argument("--oll-alpha", type=float, default=1.0, help="ordinal log-loss exponent of |i - y|")
    g.add_argument(
        "--sts-loss",
        default="mse",
        choices=STS_LOSSES,
        help="similarity loss: squared error, or + 1 - Pearson r over the batch (the metric; losses.py)",
    )
    g.add_argument(
        "--label-smoothing", type=float, default=0.0, metavar="EPS", help="of sentiment's cross-entropy (0 = off)"
    )
    g.add_argument(
        "--rdrop",
        type=float,
        default=0.0,
        metavar="ALPHA",
        help="R-Drop for sentiment: each batch twice, + ALPHA/2 x the two passes' symmetric KL (losses.py; 0 = off)",
    )


def add_optimisation_flags(p):
    g = p.add_argument_group("optimisation")
    g.add_argument("--epochs", type=int, default=3, help="epochs (an evaluation after each)")
    g.add_argument(
        "--steps-per-epoch",
        type=int,
        default=None,
        help="optimizer steps per epoch (default with --task all and a sampling schedule: 1000, or 450 with "
        "--smart, whose steps cost over 2x; otherwise the schedule's data-defined epoch, e.g. one pass)",
    )
    g.add_argument("--schedule", default="annealed", choices=SCHEDULES, help="multitask schedule (schedules.py)")
    g.add_argument("--stagger-epochs", type=int, default=2, help="--schedule staggered: epochs of para alone first")
    g.add_argument("--batch-size", type=int, default=16, help="examples per batch (per optimizer step)")
    g.add_argument(
        "--grad-accum",
        type=int,
        default=1,
        metavar="N",
        help="run each batch as N micro-batches, adding up their gradients (same step, less memory)",
    )
    for t in TASKS:
        g.add_argument(f"--{t}-batch-size", type=int, default=None, help=f"{t} batch size (default --batch-size)")
        g.add_argument(f"--{t}-weight", type=float, default=1.0, help=f"weight of the {t} loss")
    g.add_argument("--lr", type=float, default=1e-4, help="peak learning rate")
    g.add_argument(
        "--layer-lr-decay",
        type=float,
        default=1.0,
        metavar="GAMMA",
        help="layer-wise lr decay (loop.layer_decay_groups): the heads get --lr, encoder layer i of L "
        "lr * GAMMA^(L - i), the embeddings lr * GAMMA^(L + 1); 1 = off",
    )
    g.add_argument(
        "--lr-schedule",
        default="linear",
        choices=["linear", "constant", "step"],
        help="after warmup: linear decay to 0, constant, or x --lr-gamma every --lr-step-epochs epochs",
    )
    g.add_argument("--lr-step-epochs", type=int, default=5, help="--lr-schedule step: epochs between steps")
    g.add_argument("--lr-gamma", type=float, default=0.1, help="--lr-schedule step: factor at each step")
    g.add_argument("--warmup", type=float, default=0.05, help="fraction of all steps spent warming the lr up")
    g.add_argument("--adam-eps", type=float, default=1e-8, help="AdamW epsilon (SUSTech fine-tunes with 1e-6)")
    g.add_argument("--adam-betas", type=float, nargs=2, default=[0.9, 0.999], metavar=("B1", "B2"), help="AdamW betas")
    g.add_argument(
        "--early-stop", type=int, default=0, metavar="N", help="stop after N epochs without a better dev overall"
    )
    g.add_argument("--weight-decay", type=float, default=0.01, help="AdamW decoupled weight decay (matrices only)")
    g.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="score, keep and predict with an exponential moving average of the weights (ema.py; e.g. 0.999; 0 = off)",
    )
    g.add_argument("--clip", type=float, default=1.0, help="clip the gradient norm to this (0 = off)")
    g.add_argument("--seed", type=int, default=0, help="random seed (same seed on CPU = same run)")


def add_smart_pcgrad_flags(p):
    g = p.add_argument_group("SMART and PCGrad")
    g.add_argument("--smart", type=float, default=0.0, metavar="LAMBDA", help="weight of SMART's regularizer (0 = off)")
    g.add_argument("--smart-tasks", default="all", help="comma-separated tasks SMART applies to, or all")
    g.add_argument(
        "--smart-eps",
        type=float,
        default=None,
        help="radius of the perturbation ball (default: 1e-5 with --smart-variant project, 1e-6 with normalize)",
    )
    g.add_argument("--smart-sigma", type=float, default=1e-5, help="std of the initial noise")
    g.add_argument("--smart-eta", type=float, default=1e-3, help="step size of the inner ascent")
    g.add_argument("--smart-steps", type=int, default=1, help="inner ascent steps")
    g.add_argument("--smart-norm", default="inf", choices=["inf", "l2"], help="norm of the perturbation ball")
    g.add_argument(
        "--smart-variant",
        default="project",
        choices=["project", "normalize"],
        help="paper's projection onto the ball, or MT-DNN's normalisation with smart-pytorch's batch-summed KL",
    )
    g.add_argument(
        "--pcgrad", action="store_true", help="PCGrad gradient surgery (with --schedule summed or cycled-summed)"
    )
    g.add_argument(
        "--pcgrad-reduction", default="sum", choices=["sum", "mean"], help="combine surgered gradients by sum or mean"
    )


def add_running_flags(p):
    g = p.add_argument_group("running")
    cli.add_running_flags(g)
    g.add_argument("--compile", action="store_true", help="torch.compile the encoder layers")
    g.add_argument(
        "--no-report", action="store_true", help="do not write RUN_DIR/report/ (report.py's page) at the end"
    )
    g.add_argument("--eval-subset", type=int, default=2000, help="rows per dev set scored after each epoch (0 = all)")


# What a run writes into its folder: an existing one needs --resume or --overwrite (cli.check_out).
# Also ensemble.py's ensemble.json: an ensemble's folder replaced by a run must not leave it behind
# (the run's report would show the old ensemble).
RUN_PRODUCTS = ("checkpoint.pt", "best.pt", *(f"best-{t}{x}" for t in TASKS for x in (".pt", "")), "metrics.json")
RUN_PRODUCTS += ("predictions", "report", "ensemble.json")
# Flags that may change when a run is resumed: they do not alter what has been trained so far.
RESUMABLE = {"resume", "epochs", "log_every", "save_every", "eval_batch_size", "device", "no_report", "early_stop"}


def check_args(parser, args):
    """Every flag checked before any work starts (a bad one must not cost an epoch)."""
    at_least = {"epochs": 1, "steps_per_epoch": 1, "batch_size": 1, "log_every": 1, "eval_batch_size": 1}
    at_least.update({"max_length": 8, "eval_subset": 0, "save_every": 0, "early_stop": 0})
    at_least.update({"grad_accum": 1, "lr_step_epochs": 1})
    at_least.update({f"{t}_batch_size": 1 for t in TASKS})
    at_least.update(smart_steps=0)
    cli.check_numbers(parser, args, at_least, non_negative=["lr", "weight_decay", "smart", "smart_sigma"])
    eps_ok = args.smart_eps is None or args.smart_eps > 0  # None: the variant's own default
    if not (math.isfinite(args.smart_eta) and args.smart_eta > 0 and eps_ok):
        parser.error(f"--smart-eta and --smart-eps must be > 0, got {args.smart_eta} and {args.smart_eps}")
    if not 0 < args.layer_lr_decay <= 1:
        parser.error(f"--layer-lr-decay must lie in (0, 1] (1 = off), got {args.layer_lr_decay}")
    if not (math.isfinite(args.lr_gamma) and args.lr_gamma > 0):
        parser.error(f"--lr-gamma must be a number > 0, got {args.lr_gamma}")
    if not (args.adam_eps > 0 and all(0 <= b < 1 for b in args.adam_betas)):
        parser.error(f"--adam-eps must be > 0 and --adam-betas in [0, 1); got {args.adam_eps}, {args.adam_betas}")
    if not (math.isfinite(args.rdrop) and args.rdrop >= 0):
        parser.error(f"--rdrop must be a number >= 0 (0 = off), got {args.rdrop}")
    if args.rdrop and args.task not in ("sst", "all"):
        parser.error(f"--rdrop regularizes the sentiment task, which --task {args.task} does not train")
    if not 0 <= args.ema < 1:
        parser.error(f"--ema is the moving average's decay per step, in (0, 1), or 0 for off; got {args.ema}")
    for name in ["dropout", "encoder_dropout", *(f"{t}_dropout" for t in TASKS)]:
        value = getattr(args, name)
        if value is not None and not 0 <= value < 1:
            parser.error(f"--{name.replace('_', '-')} must lie in [0, 1), got {value}")
    if args.num_classes is not None and args.num_classes < 2:
        parser.error(f"--num-classes must be at least 2, got {args.num_classes}")
    if args.pcgrad and args.schedule not in ("summed", "cycled-summed") and args.task == "all":
        parser.error("--pcgrad compares the tasks' gradients within a step: use --schedule summed or cycled-summed")
    try:
        heads = HeadConfig.from_args(vars(args))
    except ValueError as e:
        parser.error(str(e))
    if args.pair_symmetry and args.task != "all" and heads.encoding(args.task) != "cross":
        parser.error(f"--pair-symmetry swaps the sentences of a cross-encoded pair; --task {args.task} has none")
    if args.smart_tasks != "all" and not set(args.smart_tasks.split(",")) <= set(TASKS):
        parser.error(f"--smart-tasks: unknown task in {args.smart_tasks!r} (choose from {', '.join(TASKS)} or all)")
    if args.init_from and not args.resume:
        check_init_from(parser, Path(args.init_from), Path(args.out), args.overwrite)
    check_combinations(parser, args, heads)


def check_combinations(parser, args, heads):
    """Flags that would do nothing with the others given (or hang), refused rather than ignored."""
    trained = list(TASK_NAMES) if args.task == "all" else [args.task]
    sizes = [args.batch_size, *(getattr(args, f"{t}_batch_size") for t in TASKS)]
    smallest, world = min(b for b in sizes if b is not None), distributed.launched_world()
    if smallest < world:  # (task_batches would wait for a batch big enough for ever)
        parser.error(f"a batch size of {smallest} is less than the {world} processes: each needs an example")
    if args.pcgrad and (args.task != "all" or args.freeze_encoder):
        parser.error("--pcgrad operates on the tasks' shared encoder gradients: it needs --task all, unfrozen")
    if args.smart > 0 and args.smart_tasks != "all" and not set(args.smart_tasks.split(",")) & set(trained):
        parser.error(f"--smart-tasks {args.smart_tasks}: --task {args.task} trains none of them")
    if args.share_pair_heads and args.task != "all":
        parser.error("--share-pair-heads shares the para and sts heads: it needs --task all")
    bi = [t for t in ("para", "sts") if t in trained and heads.encoding(t) == "bi"]
    flags = [("bi_head", "cosine", ("para", "sts")), ("para_bi_head", None, ("para",)), ("sts_bi_head", None, ("sts",))]
    for name, default, tasks in flags:
        if getattr(args, name) != default and not set(tasks) & set(bi):
            flag = name.replace("_", "-")
            parser.error(f"--{flag} is the head of a bi-encoded pair; no such task is trained (--pair-encoding bi)")


def check_init_from(parser, path, out, overwrite):
    """--init-from names a train.py checkpoint that --overwrite will not delete before it is read."""
    if not path.is_file():
        parser.error(f"--init-from {path}: no such file")
    if path.suffix == ".safetensors":
        parser.error(
            f"--init-from {path} is a model's weights: --init-from takes a run's best.pt, --model a model folder"
        )
    if overwrite and out.resolve() in path.resolve().parents:
        parser.error(
            f"--init-from {path} is inside --out {out}, whose run --overwrite deletes first: copy it elsewhere"
        )


def parse_args(argv=None):
    parser = get_parser()
    args, state = cli.parse_run_args(parser, argv, RESUMABLE, own_flag="task")
    stopped = bool(state) and patience_ran_out(state.get("best"), state["epoch"], args.early_stop, args.epochs)
    cli.refuse_finished(args, state, stopped_early=stopped)
    args.out = args.out or f"runs/{args.task}"
    if args.steps_per_epoch is None and args.schedule in SAMPLED and args.task == "all":
        # Sampling schedules need an epoch length; the others take theirs from the data. A SMART
        # step costs over two plain ones (one more forward and backward for the ascent, one more
        # forward for the regularizer), so fewer steps keep about the same time budget.
        args.steps_per_epoch = 450 if args.smart > 0 else 1000
    if args.smart_eps is None:  # recorded resolved, so metrics.json says which ε ran
        args.smart_eps = smart.DEFAULT_EPS[args.smart_variant]
    check_args(parser, args)
    return args


def main():
    cli.run_command(lambda: train(parse_args()))


if __name__ == "__main__":
    main()
