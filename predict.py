"""Use a model: run it over a task's data, write predictions, or read your own text.

train.py calls `predict` for every evaluation. On its own, this module loads a
finished run and predicts for sentences you give it, one example per line (a pair as two
tab-separated sentences):

    echo "A gorgeous, witty film." | python predict.py runs/main --task sst
    python predict.py runs/main --task sts --input pairs.tsv
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import data
from heads import HeadConfig, MultitaskBert
from loop import autocast, to_device
from minbert import BertConfig, BertModel
from tokenizer import build_tokenizer


@torch.no_grad()
def predict(model, task, task_data, batch_size=64, device=None, amp="off"):
    """Predictions (N,) and raw outputs (class probabilities (N, K) or scores (N,)) in the
    order of task_data. Batches are sorted by length so little time goes to padding."""
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    preds, raws = [None] * len(task_data), [None] * len(task_data)
    for indices in data.eval_order(task_data.lengths, batch_size):
        batch = to_device(data.collate(task_data, indices), device)
        with autocast(device, amp):
            out = model(task, batch)
        pred, raw = model.predict(task, out)
        for i, p, r in zip(indices, pred.cpu().numpy(), raw.float().cpu().numpy()):
            preds[i], raws[i] = p, r
    model.train(was_training)
    return np.array(preds), np.array(raws)


# ----------------------------------------------------------------------------
# loading a finished run


def load_run(run_dir, device="cpu"):
    """The best model of a run folder written by train.py, its tokenizer and its settings."""
    run_dir = Path(run_dir)
    path = run_dir / "best.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (is {run_dir} a finished run of train.py?)")
    ckpt = torch.load(path, map_location=device, weights_only=True)
    args = ckpt["args"]
    bert = BertModel(BertConfig.from_dict(ckpt["encoder_config"]))
    # from_args gives flags the run did not have their defaults, so older runs load too.
    model = MultitaskBert(bert, ckpt["num_classes"], HeadConfig.from_args(args), tasks=ckpt["tasks"])
    model.load_state_dict(ckpt["model"])
    tokenizer = build_tokenizer(run_dir / "tokenizer", max_length=args["max_length"])
    return model.to(device).eval(), tokenizer, args


def read_lines(lines, task):
    """Examples from raw text lines: one sentence, or two tab-separated sentences for a pair."""
    examples = []
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        expected = 1 if task == "sst" else 2
        if len(parts) != expected:
            what = "one sentence" if task == "sst" else "two tab-separated sentences"
            raise ValueError(f"line {n}: expected {what}, found {len(parts)} field(s)")
        examples.append(data.Example(str(n), parts[0], parts[1] if expected == 2 else None, None))
    return examples


def main():
    parser = argparse.ArgumentParser(description="Predict with a trained run on your own sentences.")
    parser.add_argument("run", help="run folder written by train.py (holds best.pt)")
    parser.add_argument("--task", required=True, choices=["sst", "para", "sts"], help="which task's head to use")
    parser.add_argument(
        "--input", default="-", help="text file, one example per line (pairs: tab-separated); - = stdin"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="examples per forward pass")
    args = parser.parse_args()
    model, tokenizer, run_args = load_run(args.run)
    if args.task not in model.heads:
        sys.exit(f"error: run {args.run} was not trained on task {args.task} (it has {', '.join(model.heads)})")
    f = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")
    try:
        examples = read_lines(f, args.task)
    except ValueError as e:
        sys.exit(f"error: {args.input}: {e}")
    task_data = data.encode(tokenizer, examples, model.encoding[args.task])
    preds, raws = predict(model, args.task, task_data, args.batch_size)
    for ex, p, r in zip(examples, preds, raws):
        text = ex.text_a if ex.text_b is None else f"{ex.text_a}\t{ex.text_b}"
        extra = json.dumps([round(float(x), 4) for x in np.atleast_1d(r)])
        print(f"{p.item()}\t{extra}\t{text}")


if __name__ == "__main__":
    main()
