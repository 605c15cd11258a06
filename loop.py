"""The training loop, and the pieces around it, that train.py (fine-tuning) and mlm.py (further
pretraining) share: what differs between them is the step's batch and loss, not the loop.

- train_epochs / run_epoch: the epochs and their steps, from where a resumed run stopped: progress
  lines, Ctrl-C stopping at an agreed step, a checkpoint every --save-every steps and at each
  epoch's end, after the job's own scoring; clip_and_step: how every optimizer step ends;
- get_lr / set_lr: linear warmup, then linear decay (BERT's schedule), constant, or x gamma every K
  epochs, into every param group;
- param_groups: weight decay on matrices only; layer_decay_groups: the same, with lower rates for lower layers;
- pick_device, use_tf32, autocast, to_device, keep_freed_memory: where and in what precision to run;
- StopFlag: Ctrl-C asks to stop after the current step, so the checkpoint is consistent;
- Progress: the "step i/n, steps/s, ETA" line;
- save_checkpoint / load_checkpoint / checkpoint: everything --resume needs, RNG states included,
  so a resumed run continues exactly as an uninterrupted one would.
Their command line (run folders, --resume, the shared flags, one-line errors) is cli.py's.
"""

import argparse
import contextlib
import ctypes
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import cli
import distributed
import files

# ----------------------------------------------------------------------------
# learning rate and weight decay


def get_lr(step, total_steps, lr, warmup=0.0, decay="linear", epoch=0, step_epochs=1, gamma=0.1):
    """Linear warmup over the first `warmup` fraction of steps, then one of
    - "linear": linear decay to 0 at the last step (BERT's schedule);
    - "constant";
    - "step": times `gamma` every `step_epochs` epochs (PyTorch's StepLR stepped once per epoch, as
      BERT++ Model F: 5 epochs, 0.1). It counts epochs, not steps: data-defined epochs differ in length."""
    warmup_steps = int(warmup * total_steps)
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if decay == "constant":
        return lr
    if decay == "step":
        return lr * gamma ** (epoch // step_epochs)
    return lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def set_lr(optimizer, lr):
    """The step's learning rate into every param group, times the group's "lr_scale" where it has
    one (layer_decay_groups below, --layer-lr-decay)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr


def param_groups(model, weight_decay):
    """Weight decay on matrices only: decaying biases and LayerNorm gains towards 0 has no
    regularizing purpose and only hurts (BERT's own recipe)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def layer_decay_groups(model, weight_decay, gamma, num_layers):
    """param_groups' two groups split by depth, for layer-wise learning-rate decay (Howard & Ruder
    2018's discriminative fine-tuning; Sun et al. 2019, "How to Fine-Tune BERT" §5.2; ELECTRA):
    lower layers hold more general features that fine-tuning should disturb less. Each group's
    "lr_scale" multiplies the scheduled lr (set_lr), so the schedule scales every group alike:

        the heads and BERT's pooler (above the last layer)   gamma^0 = 1
        layer i of L (0-based, "bert.layers.i.")             gamma^(L - i): the top layer gamma
        the embeddings                                       gamma^(L + 1)
    """

    def depth(name):
        if name.startswith("bert.embeddings."):
            return num_layers + 1
        if name.startswith("bert.layers."):
            return num_layers - int(name.split(".")[2])
        return 0

    groups = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            d, decayed = depth(name), p.dim() >= 2
            group = groups.setdefault((d, decayed), {"params": [], "lr_scale": gamma**d})
            group["params"].append(p)
            group["weight_decay"] = weight_decay if decayed else 0.0
    return [groups[key] for key in sorted(groups)]


# ----------------------------------------------------------------------------
# device and precision


def pick_device(device="auto", amp="auto"):
    """Resolve "auto" choices: returns (torch.device, amp) with amp one of bf16, fp16, off.
    It changes no global setting (TF32 is use_tf32's, a training run's choice)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda, but torch sees no CUDA GPU (use --device cpu)")
    if device == "cuda" and "LOCAL_RANK" in os.environ:  # under torchrun
        take_local_gpu(int(os.environ["LOCAL_RANK"]))
    if amp == "auto":
        amp = "off" if device == "cpu" else "bf16" if native_bf16() else "fp16"
    return torch.device(device), amp


def take_local_gpu(local_rank):
    """Make this process's GPU the current one before anything asks CUDA a question: the first
    query opens a context (hundreds of MB) on the current GPU, which would otherwise be cuda:0 in
    every process."""
    count = torch.cuda.device_count()
    if local_rank >= count:
        sys.exit(f"error: LOCAL_RANK {local_rank}, but torch sees {count} GPU(s): start at most {count} per node")
    torch.cuda.set_device(local_rank)


def native_bf16():
    """Whether the current GPU computes in bf16 natively (Ampere and later). torch's own
    is_bf16_supported() also says yes where bf16 is only emulated, slowly (T4, V100): those
    get fp16 with loss scaling instead."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the argument
        return torch.cuda.get_device_capability() >= (8, 0)


def use_tf32(device):
    """TF32 tensor cores for fp32 matmuls on CUDA (products with 10-bit mantissas, ~1e-3
    relative): a training run's choice. Set by train.py and mlm.py (and bench.py, to time what
    they run), never by picking a device, so a test process that compares fp32 values keeps true fp32."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def autocast(device, amp):
    """The one autocast context: amp is "bf16", "fp16" or "off"."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def to_device(batch, device):
    """A batch dict (nested dicts for bi-encoder pairs) moved to `device`."""
    return {
        k: to_device(v, device) if isinstance(v, dict) else v.to(device, non_blocking=True) for k, v in batch.items()
    }


def keep_freed_memory():
    """glibc gives large freed blocks back to the OS at once, so each step's big temporaries
    (the word-embedding gradient and optimizer buffers, tens of MB each) come back as fresh
    pages, and the first touch of every page is a page fault. Raising glibc's mmap and trim
    thresholds keeps freed memory in the process for reuse, as jemalloc or tcmalloc would."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 1 << 30)  # M_MMAP_THRESHOLD: serve blocks up to 1 GiB from the heap
            libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of freed heap


# ----------------------------------------------------------------------------
# progress and stopping


def format_time(seconds):
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}h{m % 60:02d}m" if m >= 60 else f"{m}m{s:02d}s"


class Progress:
    """Rate and ETA for a loop of `total` steps that (re)starts at step `start`."""

    def __init__(self, total, start=0):
        self.total, self.start, self.t0 = total, start, time.time()

    def line(self, done):
        """ "steps/s and ETA" after `done` of `total` steps."""
        rate = (done - self.start) / max(time.time() - self.t0, 1e-9)
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        return f"{rate:.2f} steps/s  ETA {format_time(eta) if eta != float('inf') else '?'}"


class StopFlag:
    """Ctrl-C (or SIGTERM) during training asks to stop after the current step (or the epoch's
    scoring), so the checkpoint holds a consistent state; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.old = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping once this step (or the epoch's scoring) is done and saved (Ctrl-C again to stop at once)...",
            flush=True,
        )

    def __exit__(self, *exc):
        for s, handler in self.old.items():
            signal.signal(s, handler)


# ----------------------------------------------------------------------------
# checkpoints


def rng_states():
    """This process's random generators: the CPU's, and its GPU's once CUDA is in use."""
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state()
    return states


def set_rng_states(states, device):
    """Restore rng_states(). torch takes only CPU ByteTensors here, wherever the rest of a
    checkpoint goes, so the states are moved to the CPU first."""
    torch.set_rng_state(states["cpu"].cpu())
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"].cpu())


def save_checkpoint(path, model, optimizer, scaler, streams, state, args, rngs=None, extra=None):
    """The whole training state, written atomically (a kill mid-write leaves the old one).
    rngs: every process's rng_states(), in rank order (default: this process's alone).
    extra: {key: object with state_dict()} saved beside it (train.py's --ema average)."""
    files.save_torch(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "streams": {name: s.state_dict() for name, s in streams.items()},
            "rng": rngs or [rng_states()],
            "state": state,
            "args": vars(args),
            **{key: thing.state_dict() for key, thing in (extra or {}).items()},
        },
        path,
    )


def load_checkpoint(path, model, optimizer, scaler, streams, device, rank=0, extra=None):
    """Restore what save_checkpoint wrote (extra too); returns the loop's saved state dict.

    It loads to the CPU: load_state_dict copies the weights and optimizer moments onto the
    model's device, and the RNG states must stay CPU tensors. Process `rank` takes its own RNG
    states, so after a resume each process still draws its own dropout masks; one the checkpoint
    has none for (more processes than when it was saved) keeps its fresh seed."""
    keys = ("model", "optimizer", "scaler", "streams", "rng", "state", *(extra or {}))
    ckpt = files.load_torch(path, "checkpoint", keys=keys)
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scaler.load_state_dict(ckpt["scaler"])
    for name, stream in streams.items():
        stream.load_state_dict(ckpt["streams"][name])
    for key, thing in (extra or {}).items():
        thing.load_state_dict(ckpt[key])
    rngs = ckpt["rng"]
    if torch.is_tensor(rngs):  # a checkpoint from before each process kept its own
        rngs = [{"cpu": rngs, "cuda": ckpt.get("cuda_rng")}]
    if rank < len(rngs):
        set_rng_states(rngs[rank], device)  # dropout masks continue exactly as in an uninterrupted run
    return ckpt["state"]


# ----------------------------------------------------------------------------
# the loop: fine-tuning (train.py) and further pretraining (mlm.py) alike


@dataclass(kw_only=True)
class Run:
    """What the loop reads of a run; train.TrainRun and mlm.Pretraining add their job's own pieces."""

    args: argparse.Namespace  # epochs, log_every, save_every, ... and the job's own flags
    out: Path  # the run folder
    device: torch.device
    log: object  # print on the main process, a no-op elsewhere
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    schedule: object  # which data each step reads: schedules.Schedule, mlm.Batches
    tasks: list  # the loop keeps the losses per task
    state: dict  # new_state(): what checkpoints keep and --resume restores
    streams: dict = field(default_factory=dict)  # task -> data.BatchStream: their places go in checkpoints
    world: int = 1  # processes (torchrun)
    t_start: float = field(default_factory=time.time)

    @property
    def elapsed(self):
        """Seconds the run has taken: before its last resume (state["elapsed"]) and since."""
        return self.state["elapsed"] + time.time() - self.t_start

    @property
    def saved_extra(self):
        """More objects with a state_dict that checkpoint.pt keeps (train.py's --ema average), or None."""
        return None


def new_state(data, **job):
    """A run's state at its start: everything checkpoint.pt keeps beside the weights, optimizer,
    batch streams and RNG, so that --resume continues where the run stopped. The one place that
    says what `run.state` holds:

    the loop's (every job):
      epoch, step      where the run stands: the next step is `step` of epoch `epoch` (0-based)
      global_step      optimizer steps taken since the start
      epoch_loss       {task: [the loss of every step of this epoch so far]}
      epoch_hits       {task: [correct, counted]} training predictions this epoch (sst, para)
      history          [one entry per finished epoch: its dev scores, losses, ...]
      best             the best epoch so far ({"epoch": ..., and the job's score}), or None
      elapsed          seconds spent before the last resume (the wall time adds them up)
      data             {path: sha256} of the data files: a resume refuses changed data
    train.py's (job=):
      seen             {task: examples trained on}
      best_task        {task: {"epoch", "score"}}: each task's own best epoch (best-{task}.pt)
      sst_synth        --sst-synth only: the synthetic rows used (file, examples, sources)
    mlm.py's (job=):
      start            the held-out loss and accuracy before training"""
    state = {"epoch": 0, "step": 0, "global_step": 0, "epoch_loss": {}, "epoch_hits": {}, "history": []}
    return {**state, "best": None, "elapsed": 0.0, "data": data, **job}


def start(args, products):
    """The first moves of every run: never replace a run by accident (check_out), choose the device
    and precision, and seed. Returns the device, where the loop's sums over processes go too."""
    cli.check_out(args.out, args.resume, args.overwrite, products, remove=distributed.launched_rank() == 0)
    device, args.amp = pick_device(args.device, args.amp)
    distributed.set_device(device)
    use_tf32(device)
    if device.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(args.seed)
    return device


def resume(run):
    """Continue from checkpoint.pt: weights, optimizer, batch order and RNG exactly where they
    stopped; unless a data file changed since (run.state["data"]: path -> sha256)."""
    parts = (run.model, run.optimizer, run.scaler, run.streams, run.device, distributed.rank(), run.saved_extra)
    state = load_checkpoint(run.out / "checkpoint.pt", *parts)
    changed = [p for p, h in state.get("data", {}).items() if run.state["data"].get(p) != h]
    if changed:
        sys.exit(
            f"error: --resume {run.out}: {', '.join(changed)} changed since the run started; "
            "start a new run (--out) instead"
        )
    # Keys a checkpoint from an older version lacks start as in a new run.
    run.state = {**run.state, **state, "data": run.state["data"]}
    run.log(f"resumed {run.out} at epoch {state['epoch'] + 1} step {state['step']}")


def train_epochs(run, train_step, end_epoch, command):
    """Train from where the run stands to its last epoch; False when Ctrl-C stopped it (checkpoint saved).

    What differs between the jobs comes in as two functions, so a reader learns one loop:
    - train_step(run, epoch, step): one optimizer step (ending in clip_and_step); returns
      {task: (loss, hits)}, loss a 0-dim tensor, hits [correct, counted], read at log time only;
    - end_epoch(run, epoch): score the epoch and keep the best model so far; True to stop early.
    `command` is the script, for the "continue with: python COMMAND --resume" line."""
    with StopFlag() as stop:
        for epoch in range(run.state["epoch"], run.args.epochs):
            if run.schedule.global_step(epoch, 0) >= run.schedule.total_steps():
                break  # mlm.py's --max-steps ended the run before its last epoch
            if not run_epoch(run, epoch, stop, train_step, command):
                return False
            stop_early = end_epoch(run, epoch)
            run.state["epoch"], run.state["step"] = epoch + 1, 0
            checkpoint(run)
            # Ctrl-C while the epoch was scored: stop here, not after the next step (or, after the
            # last epoch, not after the final predictions); a resume goes on from this epoch's end.
            if stop_agreed(run, stop, at_log=True):
                say_saved(run, command)
                return False
            if stop_early:
                break
    return True


def run_epoch(run, epoch, stop, train_step, command):
    """The steps of one epoch, from where a resumed run stopped. Returns False when Ctrl-C or
    SIGTERM stopped it (checkpoint saved)."""
    args, state, schedule = run.args, run.state, run.schedule
    run.log(f"epoch {epoch + 1}/{args.epochs}: {schedule.describe(epoch)}", flush=True)
    run.model.train()
    if state["step"] == 0:  # (a resumed epoch keeps the losses of its steps before the stop)
        state["epoch_loss"], state["epoch_hits"] = {t: [] for t in run.tasks}, {}
    running, pending = {t: [] for t in run.tasks}, []
    steps = schedule.steps_in_epoch(epoch)
    progress = Progress(schedule.total_steps(), schedule.global_step(epoch, state["step"]))
    for step in range(state["step"], steps):
        results = train_step(run, epoch, step)
        pending += [(epoch, step, task, result) for task, result in results.items()]
        state["step"], state["global_step"] = step + 1, schedule.global_step(epoch, step) + 1

        # log
        at_log = state["step"] % args.log_every == 0 or state["step"] == steps
        if at_log:
            record_losses(run, pending, running)
            lr = run.optimizer.param_groups[0]["lr"]  # the last step's (group 0 is never scaled by --layer-lr-decay)
            losses_now = "  ".join(f"{t} {np.mean(v):.3f}" for t, v in running.items() if v)
            line = f"{progress.line(state['global_step'])}  lr {lr:.2e}  loss {losses_now}"
            run.log(f"  step {state['step']}/{steps}  {line}", flush=True)
            running = {t: [] for t in run.tasks}

        # checkpoint, and stop if asked (every process stops at the same step)
        stopping = stop_agreed(run, stop, at_log)
        if stopping or (args.save_every and state["global_step"] % args.save_every == 0):
            record_losses(run, pending, running)
            checkpoint(run)
            if stopping:
                say_saved(run, command)
                return False
    return True


def say_saved(run, command):
    run.log(f"saved {run.out / 'checkpoint.pt'}; continue with: python {command} --resume {run.out}")


def clip_and_step(model, optimizer, scaler, clip):
    """How every optimizer step ends, once its gradients are in: clip their norm (0 = off), step, clear."""
    scaler.unscale_(optimizer)  # clip the true gradients, not the fp16-scaled ones
    if clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)


def record_losses(run, pending, running):
    """Sum the pending steps' losses and hits over processes (one all-reduce for all of them), stop
    on a non-finite loss, and add them to the running and per-epoch tallies.
    pending: (epoch, step, task, (loss, hits)) as train_step returns them."""
    if not pending:
        return
    rows = [torch.cat([loss.view(1), hits]).double() for *_, (loss, hits) in pending]  # (loss, correct, counted)
    values = distributed.all_sum(torch.stack(rows)).tolist()
    for (epoch, step, task, _), (value, correct, counted) in zip(pending, values):
        if counted:
            tally = run.state["epoch_hits"].setdefault(task, [0, 0])
            tally[0], tally[1] = tally[0] + int(correct), tally[1] + int(counted)
        if not math.isfinite(value):
            sys.exit(
                f"error: {task} loss is {value} at epoch {epoch + 1} step {step + 1} "
                f"(global step {run.schedule.global_step(epoch, step) + 1}); try a lower --lr or --amp bf16/off"
            )
        running[task].append(value)
        run.state["epoch_loss"][task].append(value)
    pending.clear()


def stop_agreed(run, stop, at_log):
    """Whether every process stops after this step. One process stops at once on Ctrl-C. Several
    see the signal at different steps and must agree, which costs a collective and a wait for the
    GPU: they compare their flags only at log steps, where the losses are summed anyway."""
    if run.world == 1:
        return stop.requested
    return at_log and distributed.all_sum(float(stop.requested)).item() > 0


def checkpoint(run):
    """checkpoint.pt: the run's whole state (save_checkpoint), written by the main process; every
    process's RNG state goes in, so a resume keeps their dropout masks apart. run.saved_extra:
    more objects with a state_dict to keep (train.py's --ema average), or None."""
    rngs = distributed.gather(rng_states())
    if distributed.is_main():
        state = {**run.state, "elapsed": run.elapsed}
        parts = (run.model, run.optimizer, run.scaler, run.streams)
        save_checkpoint(run.out / "checkpoint.pt", *parts, state, run.args, rngs, run.saved_extra)
    distributed.barrier()
