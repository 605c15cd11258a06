"""The command line that train.py and mlm.py share, and the rules around run folders.

- new_parser: the parser of train.py, mlm.py, bench.py, ensemble.py and reproduce.py (a bad flag is
  one line; DefaultsHelpFormatter's --help prints a default only where it says something);
- add_run_folder_flags / add_running_flags: the flags train.py and mlm.py share;
- parse_run_args / resumed_args: --config's recipe under the command line; --resume keeps a run's
  settings, taken from its checkpoint: only flags that do not alter what has been trained so far may change;
- check_numbers: the checks of numeric flags both scripts make, before any work starts;
- check_out / run_folder_locked: an existing run is never replaced without --overwrite; one process per folder;
- run_command: an entry point's main (one-line errors, exit 130 after Ctrl-C).
"""

import argparse
import contextlib
import math
import os
import sys
from pathlib import Path

import torch

import data
import files
import hub
import recipes


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with "(default: X)" after each flag, except where it says nothing: a default of None
    (the flag is off, or its help says what stands in), a switch that is off unless given
    (store_true's "(default: False)"), or a help that already names its default."""

    def _get_help_string(self, action):
        switch = action.nargs == 0 and action.const is True and action.default is False  # store_true
        if action.default is None or switch or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """A bad flag is one line: argparse's own error prints its usage first, which for train.py
        lists all 80-odd flags above the message."""
        self.exit(2, f"{self.prog}: error: {message} (python {self.prog} --help lists the flags)\n")


def new_parser(doc):
    """An entry point's parser: the first line of its docstring `doc` as description, one-line
    errors, and a --help with the defaults that say something."""
    return Parser(description=doc.split("\n")[0], formatter_class=DefaultsHelpFormatter)


def add_run_folder_flags(p):
    """--resume and --overwrite: what check_out and resumed_args below act on."""
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue the interrupted run in RUN_DIR with its saved settings",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (default: refuse)")


def add_running_flags(g):
    """Where and how a training loop runs: device and precision (pick_device), progress, checkpoints."""
    g.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to train")
    g.add_argument(
        "--amp",
        default="auto",
        choices=["auto", "bf16", "fp16", "off"],
        help="mixed precision (auto: bf16 on a GPU with native bf16, else fp16; off on CPU; bf16 "
        "on a CPU with native bf16 runs the main job about 1.3x faster, see docs/performance.md)",
    )
    g.add_argument("--eval-batch-size", type=int, default=128, help="batch size for evaluation")
    g.add_argument("--log-every", type=int, default=50, help="print progress every N steps")
    g.add_argument("--save-every", type=int, default=0, help="also checkpoint every N steps (0 = each epoch end)")


def given_flags(parser, argv):
    """The destinations of the flags actually written on the command line."""
    probe = argparse.ArgumentParser(add_help=False)
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            kwargs = {"action": "store_const", "const": action.const} if action.nargs == 0 else {}
            probe.add_argument(*action.option_strings, dest=action.dest, default=argparse.SUPPRESS, **kwargs)
    return set(vars(probe.parse_known_args(argv)[0]))


def resumed_args(parser, argv, args, resumable, own_flag):
    """--resume RUN_DIR: the saved run's own settings, plus the flags in `resumable` (those that do
    not alter what has been trained so far); `own_flag`, a flag only this script has, tells its
    runs from the other script's. Returns (args, the checkpoint's saved loop state)."""
    path = Path(args.resume) / "checkpoint.pt"
    if not path.is_file():
        parser.error(f"--resume {args.resume}: no checkpoint.pt there")
    try:
        ckpt = files.load_torch(path, "checkpoint", keys=("args", "state"))
    except files.ReadError as e:
        parser.error(str(e))
    saved, given = ckpt["args"], given_flags(parser, argv)
    given -= {k for k in given if getattr(args, k) == "auto"}  # the run resolved it (--amp auto): keep that
    if own_flag not in saved:  # train.py's checkpoint given to mlm.py, or the other way round
        parser.error(
            f"--resume {args.resume}: its checkpoint.pt is another script's run (no --{own_flag.replace('_', '-')} "
            "in its settings): resume it with the script that started it (train.py or mlm.py)"
        )
    refused = sorted(f"--{k.replace('_', '-')}" for k in given - set(resumable) if getattr(args, k) != saved.get(k))
    if refused:
        parser.error(f"--resume keeps the run's settings; cannot change {', '.join(refused)} (start a new run)")
    if "epochs" in given and args.epochs < saved["epochs"]:
        parser.error(f"--resume: --epochs can only grow (the run has {saved['epochs']})")
    # defaults only for flags added since the run was saved
    merged = {**vars(parser.parse_args([])), **saved, **{k: getattr(args, k) for k in given}}
    resumed = argparse.Namespace(**{**merged, "resume": args.resume, "out": args.resume, "overwrite": False})
    return resumed, ckpt["state"]


def parse_run_args(parser, argv, resumable, own_flag):
    """A training script's flags: --config FILE's recipe as the defaults, so the command line
    overrides them (args.recipe, its file, sha256 and text, goes into metrics.json's "config"
    beside the resolved flags); with --resume, the run's own settings (resumed_args).
    Returns (args, the checkpoint's saved loop state, or None without --resume)."""
    argv = sys.argv[1:] if argv is None else argv
    args = recipes.parse_args(parser, argv)
    if not args.resume:
        return args, None
    return resumed_args(parser, argv, args, resumable, own_flag)


def refuse_finished(args, state, max_steps=0, stopped_early=False):
    """--resume of a run that has finished (metrics.json written) stops here, saying what would let
    it go on: more --epochs; a higher --early-stop when train.py's early stop ended it; when mlm.py's
    --max-steps ended it, nothing on this run (--resume keeps --max-steps, and more epochs would
    not pass it): a new run from the encoder it wrote."""
    if not state or not (Path(args.resume) / "metrics.json").is_file():
        return
    if max_steps and state.get("global_step", 0) >= max_steps:
        sys.exit(
            f"{args.resume} is finished (--max-steps {max_steps}), and --resume keeps --max-steps; "
            f"to train on, start a new run from its encoder: --model {Path(args.resume) / 'encoder'} --out NEW_DIR"
        )
    if state["epoch"] >= args.epochs:
        sys.exit(f"{args.resume} is finished ({args.epochs} epochs); to train on, add --epochs N (N > {args.epochs})")
    if stopped_early:  # train.py's --early-stop ended it (train.patience_ran_out)
        sys.exit(
            f"{args.resume} is finished (--early-stop {args.early_stop}: no better dev score since epoch "
            f"{state['best']['epoch']}); to train on, raise --early-stop (0 = off)"
        )


def check_numbers(parser, args, at_least, non_negative):
    """The numeric checks every training script makes: each flag of `at_least` (name -> its lowest
    value; None, "not given", passes) and of `non_negative` (finite and >= 0); --warmup a fraction
    of the steps. --max-length is checked against the model's own positions once it is read."""
    for name, low in at_least.items():
        value = getattr(args, name)
        if value is not None and value < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    for name in non_negative:
        value = getattr(args, name)
        if not (math.isfinite(value) and value >= 0):
            parser.error(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
    if not 0 <= args.warmup <= 1:
        parser.error(f"--warmup is a fraction of all steps, in [0, 1]; got {args.warmup}")


def check_out(out, resume, overwrite, products, remove=True):
    """Never destroy a run by accident: an `out` folder holding any of `products` (the files and
    folders a run writes) needs --resume or --overwrite; --overwrite removes them first (when
    `remove`: under torchrun only rank 0 does, or the processes would delete each other's)."""
    out = Path(out)
    if resume:
        return
    found = [name for name in products if os.path.lexists(out / name)]  # a link, even a broken one, counts
    if found and not overwrite:
        go_on = f"continue it with --resume {out}, or " if (out / "checkpoint.pt").is_file() else ""
        sys.exit(f"error: {out} already holds a run ({', '.join(found)}): {go_on}replace it with --overwrite")
    for name in found if remove else ():
        files.remove(out / name)  # a planted link goes, never what it points to
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test.{os.getpid()}"  # one per process: several may start at once
        files.write_text(probe, "")
        probe.unlink()
    except OSError as e:
        sys.exit(f"error: --out {out}: cannot write there ({e.strerror or e})")


# atomic_write's temporary files of what a run writes big: checkpoint.pt and best*.pt (the model,
# with the Adam moments in checkpoint.pt) and mlm.py's encoder weights
RUN_TEMPORARIES = (".*.pt.*.tmp", "encoder/.model.safetensors.*.tmp")


@contextlib.contextmanager
def run_folder_locked(out):
    """files.locked(out) for the process that writes the run (torchrun's rank 0; the other ranks
    write nothing): a second train.py or mlm.py on the same folder refuses while this one runs.
    Holding it, it removes the temporary files a run killed mid-write left (files.remove_leftovers)."""
    if os.environ.get("RANK", "0") != "0":
        yield None
        return
    with files.locked(out) as lock:
        files.remove_leftovers(out, RUN_TEMPORARIES)
        yield lock


# What a full GPU is told, instead of a traceback from deep inside the first step.
OUT_OF_MEMORY = (
    "error: out of GPU memory. A step holds the activations of its batches (with --pcgrad every task's "
    "at once, with --smart two more passes; docs/gpu.md, 'GPU memory', has bert-base's figures): try --grad-accum 2 "
    "or 4 (not with --pcgrad, which keeps every graph for its surgery), or a smaller --batch-size or --max-length"
)


def run_command(work):
    """An entry point's main: bad input becomes one `error: ...` line, and a run stopped by Ctrl-C
    (work() returns None after saving) exits 130, so `make` and `&&` chains stop too; so does
    Ctrl-C outside the loop (reading and tokenizing the data, the final predictions), in one line."""
    try:
        result = work()
    except (data.DataError, files.WriteError, files.ReadError, files.LockError, hub.ModelFileError) as e:
        sys.exit(f"error: {e}")
    except torch.cuda.OutOfMemoryError:
        sys.exit(OUT_OF_MEMORY)
    except KeyboardInterrupt:
        print("\nstopped (Ctrl-C); a run that wrote checkpoint.pt goes on with --resume", file=sys.stderr)
        sys.exit(130)
    if result is None:
        sys.exit(130)
