"""Use a model: run it over a task's data, write predictions, or read your own text.

train.py calls `predict` for every evaluation. On its own, this module loads a
finished run and predicts for sentences you give it, one example per line (a pair as two
tab-separated sentences):

    echo "A gorgeous, witty film." | python predict.py runs/main --task sst
    python predict.py runs/main --task sts --input pairs.tsv
"""

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import torch

import data
import hub
from files import ReadError, load_run_best, short_reason
from heads import HeadConfig, MultitaskBert
from loop import autocast, to_device
from minbert import BertConfig, BertModel
from tasks import TASKS
from tokenizer import build_tokenizer

CHECKPOINT_KEYS = ("model", "encoder_config", "num_classes", "tasks", "args")  # what train.py saves in best.pt


@torch.no_grad()
def predict(model, task, task_data, batch_size=64, device=None, amp="off"):
    """Predictions (N,) and raw outputs (class probabilities (N, K) or scores (N,)) in the
    order of task_data. Batches are sorted by length so little time goes to padding. A run
    trained with --pair-symmetry predicts each pair in both orders and averages the two."""
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    preds, raws = [None] * len(task_data), [None] * len(task_data)
    for indices in data.eval_order(task_data.lengths, batch_size):
        batch = to_device(data.collate(task_data, indices), device)
        with autocast(device, amp):
            out = model(task, batch)
        if model.symmetric(task):  # the same pairs again, b before a
            swapped = to_device(data.collate(task_data, indices, swap=[True] * len(indices)), device)
            with autocast(device, amp):
                out_swapped = model(task, swapped)
            pred, raw = model.predict_symmetric(task, out, out_swapped)
        else:
            pred, raw = model.predict(task, out)
        for i, p, r in zip(indices, pred.cpu().numpy(), raw.float().cpu().numpy()):
            preds[i], raws[i] = p, r
    model.train(was_training)
    return np.array(preds), np.array(raws)


# ----------------------------------------------------------------------------
# loading a finished run


def load_trained(run_dir, device="cpu"):
    """The best model of a run folder written by train.py, its tokenizer and its settings.
    Raises files.ReadError naming the file if the run is incomplete or its files are not train.py's."""
    run_dir = Path(run_dir)
    path, vocab = run_dir / "best.pt", run_dir / "tokenizer" / "vocab.txt"
    ckpt = load_run_best(run_dir, CHECKPOINT_KEYS, map_location=device)
    args = ckpt["args"]
    try:
        bert = BertModel(BertConfig.from_dict(ckpt["encoder_config"]))
        # from_args gives flags the run did not have their defaults, so older runs load too.
        model = MultitaskBert(bert, ckpt["num_classes"], HeadConfig.from_args(args), tasks=ckpt["tasks"])
        model.load_state_dict(ckpt["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:  # a checkpoint of another kind or version
        raise ReadError(f"{path}: does not hold a model this code can build ({short_reason(e)})") from None
    try:  # no more entries than the embedding has rows: a larger vocab.txt would index past them
        hub.check_vocab(vocab, ckpt["encoder_config"])
    except hub.ModelFileError as e:
        raise ReadError(str(e)) from None
    try:
        tokenizer = build_tokenizer(run_dir / "tokenizer", max_length=args["max_length"])
    except Exception as e:  # tokenizers raises its own exception type for an unreadable vocabulary
        raise ReadError(f"{vocab}: not a usable vocabulary ({short_reason(e)})") from None
    return model.to(device).eval(), tokenizer, args


def examples_from_lines(lines, task):
    """Examples from raw text lines (bytes or str): one sentence, or two tab-separated sentences
    for a pair. Raises ValueError("line N: ...")."""
    examples = []
    expected = 2 if TASKS[task].is_pair else 1
    for n, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"line {n}: not UTF-8 text (byte 0x{line[e.start]:02x} at column {e.start + 1})"
                ) from None
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != expected:
            what = "two tab-separated sentences" if expected == 2 else "one sentence"
            raise ValueError(f"line {n}: expected {what}, found {len(parts)} field(s)")
        empty = [which for which, part in zip(("first", "second"), parts) if not part.strip()]
        if empty:  # (a blank line is skipped above; a pair needs both of its sentences)
            raise ValueError(f"line {n}: the {empty[0]} sentence of the pair is empty")
        examples.append(data.Example(str(n), parts[0], parts[1] if expected == 2 else None, None, n))
    return examples


def read_input(name, task):
    """The examples of --input: a text file, or - for stdin, read as bytes so that text that is
    not UTF-8 is reported with its line instead of reaching the tokenizer."""
    try:
        if name == "-":
            return examples_from_lines(sys.stdin.buffer, task)
        with open(name, "rb") as f:
            return examples_from_lines(f, task)
    except OSError as e:
        raise ValueError(e.strerror or str(e)) from None


def main():
    parser = argparse.ArgumentParser(description="Predict with a trained run on your own sentences.")
    parser.add_argument("run", help="run folder written by train.py (holds best.pt)")
    parser.add_argument("--task", required=True, choices=list(TASKS), help="which task's head to use")
    parser.add_argument(
        "--input", default="-", help="text file, one example per line (pairs: tab-separated); - = stdin"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    args = parser.parse_args()
    if args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    try:
        model, tokenizer, run_args = load_trained(args.run)
    except ReadError as e:
        sys.exit(f"error: {e}")
    if args.task not in model.heads:
        sys.exit(f"error: run {args.run} was not trained on task {args.task} (it has {', '.join(model.heads)})")
    try:
        examples = read_input(args.input, args.task)
    except ValueError as e:
        sys.exit(f"error: {'stdin' if args.input == '-' else args.input}: {e}")
    task_data = data.encode(tokenizer, examples, model.encoding[args.task])
    preds, raws = predict(model, args.task, task_data, args.batch_size)
    try:
        for ex, p, r in zip(examples, preds, raws):
            text = ex.text_a if ex.text_b is None else f"{ex.text_a}\t{ex.text_b}"
            extra = json.dumps([round(float(x), 4) for x in np.atleast_1d(r)])
            print(f"{p.item()}\t{extra}\t{text}")
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader left (`| head -1`): stop quietly, as unix tools do. Python would flush stdout
        # again at exit and fail once more, so point it at /dev/null first.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)  # the status a shell shows for a tool that SIGPIPE ended
    except OSError as e:  # a full disk under `> file`, say: one line, and no second failure at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(f"error: cannot write the predictions to stdout ({e.strerror or e})")


if __name__ == "__main__":
    main()
