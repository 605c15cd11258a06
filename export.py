"""Export a fine-tuned run for other tools: the encoder as a Hugging Face model folder, the task
heads beside it.

    python export.py runs/all --out exported/all

What DIR (--out) holds:

    config.json, model.safetensors, vocab.txt   the run's best encoder (best.pt) in the layout of
      (+ tokenizer_config.json if the run's     Hugging Face's BertModel: transformers'
       model had one)                           BertModel.from_pretrained(DIR) loads it, and so
                                                does minBERT's (or train.py --model DIR)
    heads.safetensors                           the task heads' weights, named as in heads.py
                                                (sst.out.weight, para.out.bias, ...)
    heads.json                                  what the heads are: tasks, sentiment classes, pair
                                                encoding, bi-encoder head, pooling, dropout,
                                                max length, and per task its input and output

    .minbert-export                             the mark of an export: --overwrite replaces
                                                only a folder that holds it

`load_export(DIR)` rebuilds the whole multitask model from those files alone.

Nothing is deleted before everything is checked: RUN must be a finished run, DIR must be neither
RUN nor a folder holding it nor inside it (nor inside any other run folder), and a DIR already
there is replaced (--overwrite) only if it is an export. The new export is written beside DIR and
swapped in once complete.
"""

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

import files
import hub
from heads import HeadConfig, MultitaskBert
from minbert import BertConfig, BertModel
from tasks import TASKS

OUTPUTS = {  # how a head's output reads, per task kind
    "multiclass": "class logits (N, num_classes); softmax for probabilities",
    "binary": "one logit (N,) for 'is a paraphrase'; sigmoid for the probability",
    "regression": "similarity (N,) on the 0..5 scale; clip to [0, 5]",
}


def head_description(args, num_classes, tasks, best, epoch):
    """heads.json: everything needed to rebuild the heads around the encoder."""
    config = HeadConfig.from_args(args)
    heads = {}
    for task in tasks:
        if TASKS[task].is_pair:
            cross = config.encoding(task) == "cross"
            read = "[CLS] a [SEP] b [SEP] (token types 0, 1)" if cross else "a and b encoded apart"
            if cross and config.pair_symmetry:
                read += "; and b before a: predictions average the two orders (pair_symmetry)"
        else:
            read = "[CLS] sentence [SEP]"
        heads[task] = {"title": TASKS[task].title, "kind": TASKS[task].kind, "input": read}
        heads[task]["output"] = OUTPUTS[TASKS[task].kind]
    return {
        "format": "minbert-heads 1",
        "source": {"checkpoint": str(best), "epoch": epoch},
        "tasks": list(tasks),
        "num_classes": num_classes,
        "head_config": dataclasses.asdict(config),  # heads.HeadConfig: encodings, pooling, head shapes, losses
        "max_length": args["max_length"],
        "heads": heads,
    }


MARK = ".minbert-export"  # in every export: the one kind of folder --overwrite may replace


def read_best(run_dir):
    """The run's best.pt, checked, with its tokenizer/vocab.txt, which the export copies (files.load_run_best:
    raises files.ReadError naming the file)."""
    return files.load_run_best(run_dir, keys=("model", "encoder_config", "args", "num_classes", "tasks"))


def export(run_dir, out, ckpt=None):
    """Write the run's best model as DIR (see the module docstring)."""
    run_dir, out = Path(run_dir), Path(out)
    path = run_dir / "best.pt"
    ckpt = read_best(run_dir) if ckpt is None else ckpt
    state = ckpt["model"]

    # the encoder, through minBERT's own Hugging Face writer
    try:  # strict: weights that do not fit their config (a checkpoint of another kind) are named here
        bert = BertModel(BertConfig.from_dict(ckpt["encoder_config"]))
        bert.load_state_dict({k.removeprefix("bert."): v for k, v in state.items() if k.startswith("bert.")})
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        reason = files.short_reason(e)
        raise files.ReadError(f"{path}: its encoder does not fit its encoder_config ({reason})") from None
    bert.source_dir = run_dir / "tokenizer"  # the run's vocab.txt and tokenizer_config.json go with it
    bert.save_pretrained(out)

    # the heads
    heads = {k.removeprefix("heads."): v for k, v in state.items() if k.startswith("heads.")}
    hub.save_safetensors(heads, out / "heads.safetensors")
    meta = head_description(ckpt["args"], ckpt["num_classes"], ckpt["tasks"], path, ckpt["epoch"])
    files.write_text(out / "heads.json", json.dumps(meta, indent=2) + "\n")
    files.write_text(out / MARK, f"exported by minBERT's export.py from {run_dir}\n")
    return meta


def check_export_out(run_dir, out, overwrite):
    """Why `out` must not receive the export of `run_dir` (None when it may). Deletes nothing."""
    run, dest = Path(run_dir).resolve(), Path(out).resolve()
    if dest.exists() and not dest.is_dir():
        return f"--out {out} is a file, not a folder"
    if dest == run or dest in run.parents:
        return f"--out {out} holds the run {run_dir} itself: choose a folder outside it"
    if run in dest.parents:
        return f"--out {out} is inside the run {run_dir}: a run folder holds only what train.py wrote"
    if problem := files.in_a_run(out, "--out"):  # another run's folder
        return problem
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            return f"--out {out} is not empty: replace it with --overwrite, or choose another folder"
        if not (dest / MARK).is_file():
            return f"--out {out} is not an export (it has no {MARK}): --overwrite replaces only an earlier export"
    return None


def write_in_place(run_dir, out, ckpt):
    """Export into a new folder beside `out`, then swap it in: a failure leaves `out` as it was."""
    out = Path(out)
    with files.folder_beside(out) as fresh:
        meta = export(run_dir, fresh, ckpt)
        if out.is_dir():  # an earlier export (check_export_out said so)
            old = fresh.with_name(fresh.name + ".old")
            os.rename(out, old)
            os.rename(fresh, out)
            files.remove(old)  # (a link to an earlier export: the link only)
        else:
            os.rename(fresh, out)
    return meta


def load_export(folder):
    """The multitask model (encoder and heads) of an exported folder, in eval mode."""
    folder = Path(folder)
    meta = json.loads((folder / "heads.json").read_text())
    bert = BertModel.from_pretrained(folder)
    model = MultitaskBert(bert, meta["num_classes"], HeadConfig(**meta["head_config"]), meta["tasks"])
    model.heads.load_state_dict(hub.load_safetensors(folder / "heads.safetensors"))  # strict: every key, every shape
    return model.eval()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])  # the first paragraph, whole
    p.add_argument("run", metavar="RUN_DIR", help="run folder written by train.py (holds best.pt and tokenizer/)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the model into")
    p.add_argument("--overwrite", action="store_true", help="replace an export already in --out (default: refuse)")
    args = p.parse_args()
    out = Path(args.out)
    try:
        ckpt = read_best(args.run)  # a missing or broken run is named before anything else happens
        problem = check_export_out(args.run, out, args.overwrite)
        if problem:
            sys.exit(f"error: {problem}")
        meta = write_in_place(args.run, out, ckpt)
    except (FileNotFoundError, hub.ModelFileError, files.WriteError, files.ReadError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        sys.exit(f"error: --out {out}: {e.strerror or e}")
    print(f"wrote {out}/: encoder (Hugging Face BertModel folder) and heads {', '.join(meta['tasks'])}")


if __name__ == "__main__":
    main()
