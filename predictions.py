"""Prediction files: the course's submission format, and the raw outputs kept for ensembling.

A run folder's predictions/ holds, for each task and split (dev, test):

    {task}-{split}-output.csv   the course's submission format: a header "id \t Predicted_X " and
                                rows "id , value " (class, 0/1, or a similarity clipped to [0, 5])
    {task}-{split}-raw.csv      tab-separated: id, then the raw outputs: p0 .. p{K-1} for sst (class
                                probabilities), prob for para (P(paraphrase)), score for sts (unclipped)

train.py writes them; ensemble.py and report.py read them back; `synth.py label` writes them too.
This module is the one place that knows their layout, and `read` / `read_raw` / `read_output` the one
reader: every line is checked by the rules they were written with (ids as data.py's, sst
probabilities summing to 1, a prediction a valid label: a class, 0 / 1, a similarity in [0, 5]),
and an error names the file and line.
"""

import csv
import os
from pathlib import Path

import numpy as np

import data
from files import atomic_write, make_folder
from tasks import TASKS


class PredictionFileError(data.DataError):
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


# ----------------------------------------------------------------------------
# reading: the one reader of report.py, ensemble.py and analysis.py, every line checked


def read(folder, task, split):
    """(ids, preds, raws) of one task and split: both files, checked alone and against each other
    (the same ids in the same order; sst predictions among the raw file's classes)."""
    raw_path, out_path = file_path(folder, task, split, "raw"), file_path(folder, task, split, "output")
    ids, raws = read_raw(raw_path, task)
    out_ids, preds = read_output(out_path, task, classes=raws.shape[1] if raws.ndim == 2 else None)
    if out_ids != ids:
        raise PredictionFileError(f"{out_path}: its ids differ from those of {raw_path.name} (or their order)")
    return ids, preds, raws


def read_raw(path, task=None):
    """(ids, values) of a raw file: values (N,) for one column, (N, K) for class probabilities.
    task (default: the one the file name says) sets the columns and the ranges: sst p0 .. p{K-1}
    with K >= 2, each row a probability distribution; para prob in [0, 1]; sts score, any number."""
    path = Path(path)
    task = task or task_of(path)
    lines = read_lines(path)
    header = lines[0][1].split("\t") if lines else []
    if header[:1] != ["id"] or len(header) < 2 or (task and not raw_header_fits(task, header[1:])):
        found = shown(lines[0][1] if lines else "")
        raise PredictionFileError(f"{path}:1: expected a header '{raw_header(task)}', found {found}")
    if len(lines) == 1:
        raise PredictionFileError(f"{path}: a header and no predictions")
    ids, values, seen = [], [], {}
    for line, text in lines[1:]:
        row = text.split("\t")  # written by csv.writer, but nothing valid in it ever needs quoting
        check_id(path, line, row[0], seen)  # first: a quoted id spanning lines is the likelier fault
        if len(row) != len(header):
            raise PredictionFileError(f"{path}:{line}: expected {len(header)} tab-separated fields, found {len(row)}")
        try:
            numbers = [float(x) for x in row[1:]]
        except ValueError:
            raise PredictionFileError(f"{path}:{line}: not a number in {shown(' '.join(row[1:]))}") from None
        if not np.all(np.isfinite(numbers)):
            raise PredictionFileError(f"{path}:{line}: non-finite value in {shown(' '.join(row[1:]))}")
        if task and not raw_values_fit(task, numbers):
            what = {"multiclass": "a probability distribution", "binary": "a probability"}[TASKS[task].kind]
            raise PredictionFileError(f"{path}:{line}: not {what}: {shown(' '.join(row[1:]))}")
        ids.append(row[0])
        values.append(numbers)
    values = np.array(values, dtype=np.float64).reshape(len(ids), len(header) - 1)
    return ids, values[:, 0] if values.shape[1] == 1 else values


def read_output(path, task=None, classes=None):
    """(ids, values) of a file in the course's submission format. task (default: from the file name)
    checks each value by the rules of a gold label (data.parse_label): an sst class (below `classes`,
    when given), 0 or 1 for para, a similarity in [0, 5] for sts."""
    path = Path(path)
    task = task or task_of(path)
    lines = read_lines(path)
    header = lines[0][1].split() if lines else []
    if len(header) != 2 or header[0] != "id" or (task and header[1] != TASKS[task].prediction_column):
        want = TASKS[task].prediction_column if task else "Predicted_..."
        raise PredictionFileError(f"{path}:1: expected a header 'id \\t {want}', found {shown(' '.join(header))}")
    if len(lines) == 1:
        raise PredictionFileError(f"{path}: a header and no predictions")
    ids, values, seen = [], [], {}
    for line, text in lines[1:]:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 2 or not parts[0]:
            raise PredictionFileError(f"{path}:{line}: expected 'id , value', found {shown(text)}")
        check_id(path, line, parts[0], seen)
        try:
            value = data.parse_label(task, parts[1]) if task else float(parts[1])
            if classes is not None and value >= classes:
                raise ValueError
        except ValueError:
            want = prediction_rule(task, classes)
            raise PredictionFileError(f"{path}:{line}: expected {want}, found {shown(parts[1])}") from None
        ids.append(parts[0])
        values.append(value)
    return ids, np.array(values, dtype=np.float64)


def check_gold(examples, classes, gold_path, raw_path):
    """Gold sentiment labels must be among the classes of a raw file: a 3-class run scored on 5-class
    gold, or a stray label 7, would otherwise score silently wrong (or break a confusion matrix)."""
    for ex in examples:
        if ex.label >= classes:
            raise PredictionFileError(
                f"{gold_path}:{ex.line}: sentiment {ex.label} is not one of the {classes} classes of {raw_path}"
            )


def prediction_rule(task, classes=None):
    """What a prediction of the task must be, in words."""
    if task is None:
        return "a number"
    if TASKS[task].kind == "multiclass":
        return f"a class 0..{classes - 1}" if classes else "an integer class >= 0"
    return "0 or 1" if TASKS[task].kind == "binary" else "a similarity in [0, 5]"


def task_of(path):
    """The task a prediction file holds, from its name ({task}-{split}-{kind}.csv); None for other names."""
    task = Path(path).name.split("-", 1)[0]
    return task if task in TASKS else None


def read_lines(path):
    """[(line number, text)] of a file, split at \\n only; a byte that is not UTF-8 is an error at its
    line, and so is a last line without its line end: write() ends every line, so the file was cut
    short (a copy stopped midway), and the last value may be cut too (1.7597 read as 1.7)."""
    if not path.is_file():
        raise PredictionFileError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            lines = list(data.text_lines(path, f))
            if lines:
                f.seek(-1, os.SEEK_END)
                last_byte = f.read(1)
    except data.DataError as e:
        raise PredictionFileError(str(e)) from None
    if lines and last_byte != b"\n":
        raise PredictionFileError(f"{path}:{lines[-1][0]}: no line end after the last line: the file is cut short")
    return lines


def check_id(path, line, id_, seen):
    """data.py's rules for an id, which is copied into submission files: not empty, no space, comma,
    quote or control character (it could forge rows), not seen before."""
    if not id_:
        raise PredictionFileError(f"{path}:{line}: empty id")
    if data.BAD_ID.search(id_):
        raise PredictionFileError(f"{path}:{line}: id {shown(id_)} holds a space, comma, quote or control character")
    if id_ in seen:
        raise PredictionFileError(f"{path}:{line}: duplicate id {shown(id_)} (first on line {seen[id_]})")
    seen[id_] = line


def raw_header(task):
    """The header a raw file of the task has, in words (<TAB> for a tab)."""
    if task is None:
        return "id<TAB>column..."
    if TASKS[task].kind == "multiclass":
        return "id<TAB>p0<TAB>p1 ... p(K-1)"
    return "id<TAB>" + raw_columns(task, np.zeros(0))[0]


def raw_header_fits(task, columns):
    if TASKS[task].kind == "multiclass":
        return len(columns) >= 2 and columns == [f"p{k}" for k in range(len(columns))]
    return columns == raw_columns(task, np.zeros(0))


def raw_values_fit(task, numbers):
    """sst: a probability distribution (to the 6 significant digits written, so a sum may miss 1 by
    a few millionths); para: a probability; sts: any score (clipped only when predicting)."""
    kind = TASKS[task].kind
    if kind == "multiclass":
        return min(numbers) >= 0 and abs(sum(numbers) - 1) <= 1e-3
    return 0 <= numbers[0] <= 1 if kind == "binary" else True


def shown(text, n=40):
    """A field as a message shows it: quoted, and cut, since a bad file may hold a huge one."""
    return repr(text[:n]) + f"... ({len(text)} characters)" if len(text) > n else repr(text)
