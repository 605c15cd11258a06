"""Prediction files: the course's submission format, and the raw outputs kept for ensembling.

A run folder's predictions/ holds, for each task and split (dev, test):

    {task}-{split}-output.csv   the course's submission format: a header "id \t Predicted_X " and
                                rows "id , value " (class, 0/1, or a similarity clipped to [0, 5])
    {task}-{split}-raw.csv      tab-separated: id, then the raw outputs: p0 .. p{K-1} for sst (class
                                probabilities), prob for para (P(paraphrase)), score for sts (unclipped)

train.py writes them; ensemble.py and report.py read them back; `synth.py label` writes them too.
This module is the one place that knows their layout.
"""

import csv
from pathlib import Path

import numpy as np

from files import atomic_write, make_folder
from tasks import TASKS


class PredictionFileError(ValueError):
    """A prediction file is missing or malformed; the message names the file and line."""


def file_path(folder, task, split, kind="raw"):
    """predictions/{task}-{split}-{kind}.csv inside `folder`; kind is "raw" or "output"."""
    return Path(folder) / f"{task}-{split}-{kind}.csv"


def raw_columns(task, raws):
    if raws.ndim == 2:
        return [f"p{k}" for k in range(raws.shape[1])]
    return ["prob" if TASKS[task].kind == "binary" else "score"]


def write(folder, task, split, ids, preds, raws):
    """Write both files for one task and split. preds (N,), raws (N,) or (N, K), in the order of ids."""
    folder = make_folder(folder)  # a planted link is replaced, not followed
    raws = np.asarray(raws)
    with atomic_write(file_path(folder, task, split, "output")) as f:
        f.write(f"id \t {TASKS[task].prediction_column} \n")  # the exact layout of the course's starter code
        for id_, p in zip(ids, preds):
            f.write(f"{id_} , {p.item() if hasattr(p, 'item') else p} \n")
    with atomic_write(file_path(folder, task, split, "raw"), newline="") as f:
        writer = csv.writer(f, delimiter="\t")
        writer.writerow(["id", *raw_columns(task, raws)])
        for id_, r in zip(ids, raws):
            writer.writerow([id_, *(f"{x:.6g}" for x in np.atleast_1d(r))])


def read_raw(path):
    """(ids, values) of a raw file: values (N,) for one column, (N, K) for class probabilities."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    if not rows or rows[0][:1] != ["id"] or len(rows[0]) < 2:
        raise PredictionFileError(f"{path}:1: expected a header 'id<TAB>column...', found {rows[:1]}")
    ids, values = [], []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise PredictionFileError(f"{path}:{line}: expected {len(rows[0])} fields, found {len(row)}")
        try:
            numbers = [float(x) for x in row[1:]]
        except ValueError:
            raise PredictionFileError(f"{path}:{line}: not a number in {row[1:]}") from None
        if not np.all(np.isfinite(numbers)):
            raise PredictionFileError(f"{path}:{line}: non-finite value in {row[1:]}")
        ids.append(row[0])
        values.append(numbers)
    if len(set(ids)) != len(ids):
        raise PredictionFileError(f"{path}: duplicate ids")
    values = np.array(values, dtype=np.float64).reshape(len(ids), len(rows[0]) - 1)
    return ids, values[:, 0] if values.shape[1] == 1 else values


def read_output(path):
    """(ids, values) of a file in the course's submission format."""
    path = Path(path)
    if not path.is_file():
        raise PredictionFileError(f"{path}: no such file")
    ids, values = [], []
    with open(path, encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) != 2 or header[0] != "id":
            raise PredictionFileError(f"{path}:1: expected a header 'id \\t Predicted_...', found {header}")
        for line, text in enumerate(f, start=2):
            parts = [p.strip() for p in text.split(",")]
            try:
                if len(parts) != 2 or not parts[0]:
                    raise ValueError
                values.append(float(parts[1]))
            except ValueError:
                raise PredictionFileError(f"{path}:{line}: expected 'id , value', found {text.rstrip()!r}") from None
            ids.append(parts[0])
    return ids, np.array(values)
