"""The course data: read and validate the task files, tokenize them once, batch them.

The three tasks of the CS224N multitask project each come as tab-separated files written
by pandas (an unnamed index column, `"..."` quoting with `""` inside):

    sst   ids-sst-*.csv     id, sentence,             sentiment     (class 0..4)
    para  quora-*.csv       id, sentence1, sentence2, is_duplicate  (0 or 1)
    sts   sts-*.csv         id, sentence1, sentence2, similarity    (0.0..5.0)

Every row is one line, in every course file: a quote left open is an error at its line, not a
field that silently swallows the rows after it. Ids are hex strings; one holding a space, comma,
quote or control character is refused, since it is copied verbatim into the submission files.

The path of one example through this module:

    CSV row -> read_examples -> Example -> encode -> TaskData (token ids, tokenized once)
            -> batch_order / BatchStream (which examples go together) -> collate -> tensors

Batches are padded only to their own longest sequence, and by default are drawn from
"buckets" of similar lengths, so little compute goes to padding. Pairs of sentences can be
cross-encoded (one sequence `[CLS] a [SEP] b [SEP]`, the model sees both at once) or
bi-encoded (a and b as two sequences, compared after encoding).

A run's files (train.py's --data-dir, --{task}-{split}, --sst-synth) are read here too:
read_split, load_task_data (and --sst-synth's rows, checked against the run's own training file),
data_fingerprint (so --resume can tell a file changed); and mlm.py's text: train_sentences (the
training files' sentences), text_documents (a plain-text file, one document per line).

Where the files come from is fetch_data.py's job (`make data`); which columns each task has is
the task table's (tasks.py).
"""

import csv
import hashlib
import json
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tasks import TASKS


class DataError(Exception):
    """A data file is malformed, or could not be fetched. The message names the file and line."""


@dataclass
class Example:
    id: str
    text_a: str
    text_b: str | None  # None for single-sentence tasks
    label: int | float | None  # None in the test files, which have no labels
    line: int | None = None  # the line of the file it was read from, for error messages


# ----------------------------------------------------------------------------
# reading and validating the files


def parse_label(task, text):
    """The label of one row as a number, or ValueError saying what is wrong with it.
    Labels may be written as floats ("3.0", "1.0") because pandas wrote the files."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # fails every range check below
    kind = TASKS[task].kind
    if kind == "multiclass":
        if not (math.isfinite(value) and value >= 0 and value.is_integer()):
            raise ValueError(f"sentiment must be an integer class >= 0, got {text!r}")
        return int(value)
    if kind == "binary":
        if value not in (0.0, 1.0):
            raise ValueError(f"is_duplicate must be 0 or 1, got {text!r}")
        return value  # a float: it is the target of a binary cross-entropy
    if not 0.0 <= value <= 5.0:  # NaN fails this too
        raise ValueError(f"similarity must be a number in [0, 5], got {text!r}")
    return value


# An id is written verbatim into the submission files ("id , value" lines), so one holding a
# separator, a quote or a line break could forge extra lines there. The course's ids are hex strings.
BAD_ID = re.compile(r'[\s,"\'\x00-\x1f\x7f-\x9f]')


def text_lines(path, f):
    """(line number, text) of each physical line of a binary file, decoded one line at a time
    so that bytes that are not UTF-8 are reported with their line (predictions.py reads this way too)."""
    for n, raw in enumerate(f, 1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{n}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
        yield n, text.removesuffix("\n").removesuffix("\r")


def _fields(path, n, text):
    """The tab-separated fields of one physical line, pandas quoting undone.
    No course file has a row spanning lines, so a quote left open is an error here, at the line
    where it opens, rather than a field that silently swallows the rows after it."""
    limit = csv.field_size_limit()
    try:
        # csv refuses fields over 131072 characters; one field can be no longer than its line, and a
        # long sentence is valid (the tokenizer cuts it to --max-length), so allow that much here
        csv.field_size_limit(max(limit, len(text)))
        rows = list(csv.reader([text], delimiter="\t", strict=True))
    except csv.Error as e:
        if "\r" in text:  # Python's own hint (universal-newline mode) is no use to the user
            raise DataError(
                f"{path}:{n}: a carriage return inside the line: CR-only line ends? save with \\n"
            ) from None
        raise DataError(f"{path}:{n}: malformed CSV: {e} (is a quote left open? a row must fit on one line)") from None
    finally:
        csv.field_size_limit(limit)
    row = rows[0] if rows else []
    for field in row:
        if "\t" in field or "\n" in field or "\r" in field:
            raise DataError(f"{path}:{n}: a quoted field holds a tab or line break ({field[:40]!r})")
    return row


def read_rows(path, task, labelled):
    """Examples of one file plus the line numbers of rows skipped for an empty label."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    text_columns, label_column = TASKS[task].text_columns, TASKS[task].label_column
    path = Path(path)
    examples, skipped, seen = [], [], {}
    try:
        with open(path, "rb") as f:
            lines = text_lines(path, f)
            _, first = next(lines, (1, None))
            if first is None:
                raise DataError(f"{path}:1: empty file, expected a header row")
            header = _fields(path, 1, first)
            for name in ("id", *text_columns):
                if name not in header:
                    raise DataError(f"{path}:1: no column {name!r} in header {header}")
            if labelled and label_column not in header:
                raise DataError(f"{path}:1: no label column {label_column!r} in header {header}")
            has_label = label_column in header and labelled is not False
            id_col = header.index("id")
            text_cols = [header.index(name) for name in text_columns]
            label_col = header.index(label_column) if has_label else None

            for line, text in lines:
                row = _fields(path, line, text)
                if len(row) != len(header):
                    raise DataError(f"{path}:{line}: expected {len(header)} tab-separated fields, found {len(row)}")
                id_ = row[id_col]
                if not id_:
                    raise DataError(f"{path}:{line}: empty id")
                if BAD_ID.search(id_):
                    raise DataError(f"{path}:{line}: id {id_!r} holds a space, comma, quote or control character")
                if id_ in seen:  # predictions are keyed by id, so ids must be unique
                    raise DataError(f"{path}:{line}: duplicate id {id_!r} (first on line {seen[id_]})")
                seen[id_] = line
                label = None
                if has_label:
                    if row[label_col].strip() == "":
                        skipped.append(line)
                        continue
                    try:
                        label = parse_label(task, row[label_col])
                    except ValueError as e:
                        raise DataError(f"{path}:{line}: {e}") from None
                texts = [row[c] for c in text_cols]
                examples.append(Example(id_, texts[0], texts[1] if len(texts) > 1 else None, label, line))
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    return examples, skipped


def read_examples(path, task, labelled=None):
    """Read one task file into a list of Examples, validating every row.

    task: "sst" (any single-sentence file with integer classes), "para" or "sts".
    labelled: True requires the label column, False ignores it, None (default) reads
    labels if the header has the column (the test files do not).
    Rows with an empty label are skipped and reported on stderr; any other problem
    raises DataError("{path}:{line}: {problem}")."""
    examples, skipped = read_rows(path, task, labelled)
    report_skipped(path, skipped)
    return examples


def report_skipped(path, skipped):
    """One line on stderr naming the rows skipped for an empty label (if any)."""
    if skipped:
        shown = ", ".join(map(str, skipped[:10])) + (", ..." if len(skipped) > 10 else "")
        print(f"{path}: skipped {len(skipped)} rows with an empty label (lines {shown})", file=sys.stderr)


SYNTH_FIELDS = ("id", "source_id", "label", "text", "model")


def read_synth(path):
    """Read synth.py's paraphrases (JSONL, one record per paraphrase) into sentiment Examples.

    A record is {"id": "{source_id}-syn{k}", "source_id", "label", "text", "model"}; the label is
    the source sentence's. Every record is checked; a problem raises DataError("{path}:{line}: ...")."""
    path = Path(path)
    examples, seen = [], {}
    try:
        with open(path, "rb") as f:
            for line, text in text_lines(path, f):
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}:{line}: not a JSON record ({e.msg})") from None
                if not isinstance(record, dict) or set(record) != set(SYNTH_FIELDS):
                    raise DataError(f"{path}:{line}: expected a record with fields {', '.join(SYNTH_FIELDS)}")
                id_, source, label = record["id"], record["source_id"], record["label"]
                if not all(isinstance(record[k], str) for k in ("id", "source_id", "text", "model")):
                    raise DataError(f"{path}:{line}: id, source_id, text and model must be strings")
                if not record["text"].strip():
                    raise DataError(f"{path}:{line}: empty text")
                if not (isinstance(label, int) and not isinstance(label, bool) and label >= 0):
                    raise DataError(f"{path}:{line}: label must be an integer class >= 0, got {label!r}")
                k = id_.removeprefix(f"{source}-syn")
                if not source or k == id_ or not (k.isascii() and k.isdigit()):
                    raise DataError(f"{path}:{line}: id {id_!r} is not '{{source_id}}-syn{{k}}' for {source!r}")
                if id_ in seen:
                    raise DataError(f"{path}:{line}: duplicate id {id_!r} (first on line {seen[id_]})")
                seen[id_] = line
                examples.append(Example(id_, record["text"], None, label, line))
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e.strerror or e}") from None
    return examples


def num_classes(examples, path=None, given=None):
    """The number K of sentiment classes, checking that every label lies in 0..K-1.

    given: K as the user set it (train.py's --num-classes); a label >= K is an error.
    Otherwise K is inferred as the largest label + 1, which is trusted only if every class
    0..K-1 occurs: a stray 7 in SST-5 would otherwise make an 8-class model without a word.
    Raises DataError("{path}:{line}: ...") naming the offending row."""
    labels = {ex.label for ex in examples}
    if not labels or None in labels or not all(isinstance(y, int) for y in labels):
        raise ValueError("num_classes needs examples that all carry integer class labels")
    where = f"{path}:" if path else "line "
    if given is not None:
        if given < 2:
            raise ValueError(f"the number of classes must be at least 2, got {given}")
        for ex in examples:
            if ex.label >= given:
                raise DataError(
                    f"{where}{ex.line}: sentiment {ex.label} is not a class 0..{given - 1} (--num-classes {given})"
                )
        return given
    k = max(labels) + 1
    missing = sorted(set(range(k)) - labels)
    if missing:
        top = next(ex for ex in examples if ex.label == k - 1)
        raise DataError(
            f"{where}{top.line}: sentiment {k - 1} implies {k} classes 0..{k - 1}, but {missing} never occur "
            "(fix the label, or set the number of classes with --num-classes)"
        )
    return k


# ----------------------------------------------------------------------------
# a run's course files: train.py's --data-dir, --{task}-{train,dev,test}, --num-classes, --sst-synth


def task_path(args, task, split):
    return getattr(args, f"{task}_{split}") or str(Path(args.data_dir) / TASKS[task].files[split])


def read_split(args, task, split, log=print):
    """The examples of one course file, or None for a default test file that is absent."""
    path = task_path(args, task, split)
    if split == "test" and path == "none":
        return None
    if split == "test" and not Path(path).is_file():
        if getattr(args, f"{task}_test"):  # asked for by name: a missing file is a mistake
            raise DataError(f"--{task}-test {path}: no such file")
        log(f"{task}: no test file at {path}, so no test predictions (set --{task}-test)")
        return None
    examples, skipped = read_rows(path, task, labelled=split != "test")
    report_skipped(path, skipped)
    if not examples:
        raise DataError(f"{path}: no examples")
    rows, known = len(examples) + len(skipped), (TASKS[task].rows or {}).get(split)
    if known and rows not in known and not getattr(args, f"{task}_{split}"):  # a default course file
        log(f"warning: {path} has {rows} rows; the course file has {' or '.join(map(str, known))}")
    return examples


def load_task_data(args, tasks, tokenizer, encodings, log=print):
    """Tokenized train / dev / test data per task (test only where the file exists), the number
    of sentiment classes, and what --sst-synth added (or None). encodings(task) says how the task's
    model encodes its input (heads.HeadConfig.encoding: "single", "cross" or "bi")."""
    splits, classes, synth = {"train": {}, "dev": {}, "test": {}}, args.num_classes or 5, None
    for task in tasks:
        encoding = encodings(task)
        for split in splits:
            examples = read_split(args, task, split, log)
            if examples is None:
                continue
            if split == "train":
                train = examples
            elif split == "dev":
                refuse_dev_rows(task, train, task_path(args, task, "train"), examples, task_path(args, task, "dev"))
            if task == "sst" and split == "train":  # labels must be 0..K-1 (num_classes says why not)
                classes = num_classes(examples, task_path(args, task, split), given=args.num_classes)
            elif task == "sst" and split == "dev":  # the dev labels must be the model's classes
                num_classes(examples, task_path(args, task, split), given=classes)
            if task == "sst" and split == "train" and args.sst_synth:
                synth = load_sst_synth(args, examples, classes, log)
                examples = examples + synth["rows"]
            splits[split][task] = encode(tokenizer, examples, encoding)
    return splits, classes, synth


def refuse_dev_rows(task, train, train_path, dev, dev_path):
    """A training file must hold no row of the dev file (--{task}-train naming the dev file, a copy
    of it, dev appended to train): the dev scores that choose the best epoch would be of examples
    the model was trained on. Rows are matched by id; the course files share none across splits."""
    lines = {ex.id: ex.line for ex in train}
    for ex in dev:
        if ex.id in lines:
            raise DataError(
                f"{train_path}:{lines[ex.id]}: id {ex.id!r} is also row {ex.line} of the dev file {dev_path}: "
                f"dev data cannot be training data (check --{task}-train)"
            )


def load_sst_synth(args, real, num_classes, log=print):
    """--sst-synth: synth.py's paraphrases of training sentences, each with its source's label.
    They join the sentiment training rows only, never dev or test ("Tuning Up BERT" §4.3). Each
    must name a row of this run's training file and carry its label: a paraphrase of a dev or
    test sentence would leak the held-out set into training."""
    synth = read_synth(args.sst_synth)
    labels = {ex.id: ex.label for ex in real}
    for ex in synth:
        where, source = f"{args.sst_synth}:{ex.line}", ex.id.rsplit("-syn", 1)[0]
        if ex.id in labels:
            raise DataError(f"{where}: id {ex.id!r} is also an id of the real training rows")
        if ex.label >= num_classes:
            raise DataError(f"{where}: {ex.id} has label {ex.label}; sentiment has {num_classes} classes")
        if source not in labels:
            raise DataError(f"{where}: source {source!r} {held_out(args, source)}")
        if ex.label != labels[source]:
            raise DataError(f"{where}: {ex.id} has label {ex.label}, its source {source} has {labels[source]}")
    sources = len({ex.id.rsplit("-syn", 1)[0] for ex in synth})
    log(f"sst: + {len(synth)} synthetic paraphrases of {sources} training sentences from {args.sst_synth}")
    return {"rows": synth, "file": args.sst_synth, "examples": len(synth), "sources": sources}


def held_out(args, source):
    """Why a synthetic row's source is not a training row: a dev or test sentence, or no row at all."""
    for split in ("dev", "test"):
        if source in {ex.id for ex in read_split(args, "sst", split, log=lambda *a: None) or []}:
            path = task_path(args, "sst", split)
            return f"is a row of the {split} file {path}: its paraphrases would leak {split} into training"
    return f"is not a row of the training file {task_path(args, 'sst', 'train')}"


def data_fingerprint(args, tasks):
    """sha256 of every course file the run reads, so a resumed run can tell they did not change."""
    paths = [task_path(args, task, split) for task in tasks for split in ("train", "dev", "test")]
    paths = [p for p in paths if Path(p).is_file()] + ([args.sst_synth] if args.sst_synth else [])
    return file_hashes(paths)


def file_hashes(paths):
    """{path: sha256 of the file}: what --resume compares (loop.resume) to refuse changed data."""
    return {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in paths}


def train_sentences(args):
    """Every sentence of the three training files (both sentences of a pair), and the files read:
    mlm.py's in-domain text. A training file holding rows of --data-dir's dev file is refused, as
    train.py refuses it: pretraining on dev sentences would leak them into the fine-tuned model."""
    sentences, paths = [], []
    for task in TASKS:
        path, dev = task_path(args, task, "train"), Path(args.data_dir) / TASKS[task].files["dev"]
        examples = read_examples(path, task, labelled=False)
        if dev.is_file():
            refuse_dev_rows(task, examples, path, read_examples(dev, task, labelled=False), dev)
        sentences += [text for ex in examples for text in (ex.text_a, ex.text_b) if text is not None]
        paths.append(path)
    return sentences, paths


def text_documents(path):
    """The documents of a plain-text file (mlm.py's --text): one per non-blank line."""
    try:
        with open(path, "rb") as f:
            lines = [line.strip() for _, line in text_lines(path, f)]
    except OSError as e:
        raise DataError(f"--text {path}: cannot read: {e.strerror or e}") from None
    return [line for line in lines if line]


# ----------------------------------------------------------------------------
# tokenizing once, padding per batch


@dataclass
class TaskData:
    """One task file, tokenized. `seqs` holds one (input_ids, token_type_ids) pair of lists
    for a single sentence or a cross-encoded pair, and two, (a then b), for a bi-encoded pair."""

    example_ids: list[str]
    seqs: list[tuple[list[np.ndarray], list[np.ndarray]]]
    labels: np.ndarray | None  # (N,) int64 class ids, or float32 targets; None if unlabelled
    lengths: np.ndarray  # (N,) tokens in the example's longest sequence, for bucketing

    def __len__(self):
        return len(self.example_ids)


def _encode_texts(tokenizer, inputs):
    encodings = tokenizer.encode_batch(inputs)
    # int32 halves the memory of python ints stored as int64; collate widens to long
    ids = [np.array(e.ids, dtype=np.int32) for e in encodings]
    types = [np.array(e.type_ids, dtype=np.int8) for e in encodings]
    return ids, types


def encode(tokenizer, examples, pair_encoding="cross"):
    """Tokenize examples once into a TaskData.

    tokenizer: tokenizer.build_tokenizer's, which adds [CLS]/[SEP] and truncates but never pads
    (collate pads each batch). pair_encoding: "cross" (one sequence per pair, type ids 0/1) or
    "bi" (sentence a and sentence b as separate sequences); for single sentences it is ignored
    ("single" says so)."""
    if pair_encoding not in ("cross", "bi", "single"):
        raise ValueError(f"pair_encoding must be 'cross', 'bi' or 'single', got {pair_encoding!r}")
    pairs = {ex.text_b is not None for ex in examples}
    if len(pairs) > 1:
        raise ValueError("examples mix single sentences and sentence pairs")
    if not pairs or pairs == {False}:
        seqs = [_encode_texts(tokenizer, [ex.text_a for ex in examples])]
    elif pair_encoding == "cross":
        seqs = [_encode_texts(tokenizer, [(ex.text_a, ex.text_b) for ex in examples])]
    else:
        seqs = [
            _encode_texts(tokenizer, [ex.text_a for ex in examples]),
            _encode_texts(tokenizer, [ex.text_b for ex in examples]),
        ]

    labels = [ex.label for ex in examples]
    if all(y is None for y in labels):
        labels = None
    elif any(y is None for y in labels):
        raise ValueError("some examples have labels and some do not")
    else:
        # integer labels are class ids (cross-entropy wants long); others are float targets
        labels = np.array(labels, dtype=np.int64 if all(isinstance(y, int) for y in labels) else np.float32)
    lengths = np.array([max(len(ids[i]) for ids, _ in seqs) for i in range(len(examples))], dtype=np.int64)
    return TaskData([ex.id for ex in examples], seqs, labels, lengths)


def pad(input_ids, token_type_ids, indices):
    """Right-pad the chosen sequences to the longest of them (pad id 0).
    The one padding function: every batch of every task goes through it."""
    T = max(len(input_ids[i]) for i in indices)
    ids = np.zeros((len(indices), T), dtype=np.int64)  # (B, T)
    types = np.zeros((len(indices), T), dtype=np.int64)  # (B, T)
    mask = np.zeros((len(indices), T), dtype=np.int64)  # (B, T) 1 = real token, 0 = padding
    for row, i in enumerate(indices):
        n = len(input_ids[i])
        ids[row, :n] = input_ids[i]
        types[row, :n] = token_type_ids[i]
        mask[row, :n] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "token_type_ids": torch.from_numpy(types),
    }


def swap_pair(input_ids, token_type_ids):
    """A cross-encoded pair in the other order: "[CLS] a [SEP] b [SEP]" (types 0.. 1..) becomes
    "[CLS] b [SEP] a [SEP]", the same tokens (truncation included) with b as the first segment."""
    n = int((token_type_ids == 0).sum())  # [CLS] a [SEP]
    if n == len(input_ids):
        raise ValueError("swap_pair needs a cross-encoded pair (token type 1 marks its second sentence)")
    ids = np.concatenate([input_ids[:1], input_ids[n:-1], input_ids[n - 1 : n], input_ids[1 : n - 1], input_ids[-1:]])
    types = np.concatenate(
        [np.zeros(len(input_ids) - n + 1, token_type_ids.dtype), np.ones(n - 1, token_type_ids.dtype)]
    )
    return ids, types


def collate(data, indices, swap=None):
    """The batch of examples `indices` of a TaskData, as tensors:
    {"input_ids", "attention_mask", "token_type_ids": (B, T), "labels": (B,)} for single sentences
    and cross-encoded pairs; {"a": {...}, "b": {...}, "labels": (B,)} for bi-encoded pairs.
    Unlabelled data has no "labels". swap (B,) bools, for cross-encoded pairs: the examples to
    give in the other order, b before a (swap_pair; train.py's --pair-symmetry)."""
    indices = list(indices)
    if swap is not None:
        ids, types = data.seqs[0]
        pairs = [swap_pair(ids[i], types[i]) if s else (ids[i], types[i]) for i, s in zip(indices, swap, strict=True)]
        batch = pad([p[0] for p in pairs], [p[1] for p in pairs], range(len(pairs)))
    elif len(data.seqs) == 1:
        batch = pad(*data.seqs[0], indices)
    else:
        batch = {"a": pad(*data.seqs[0], indices), "b": pad(*data.seqs[1], indices)}
    if data.labels is not None:
        batch["labels"] = torch.from_numpy(data.labels[indices])  # (B,)
    return batch


def subset(data, indices):
    """The examples `indices` of a TaskData, as a TaskData of their own."""
    indices = np.asarray(indices, dtype=np.int64)
    return TaskData(
        [data.example_ids[i] for i in indices],
        [([ids[i] for i in indices], [types[i] for i in indices]) for ids, types in data.seqs],
        None if data.labels is None else data.labels[indices],
        data.lengths[indices],
    )


# ----------------------------------------------------------------------------
# the order of examples


def batch_order(lengths, batch_size, generator, bucket=True, bucket_batches=50):
    """A random split of range(len(lengths)) into batches, every index exactly once.

    With bucket=True, indices are shuffled, cut into chunks of bucket_batches * batch_size,
    each chunk is sorted by length and cut into batches, and the batches are shuffled:
    the order stays random but each batch holds similar lengths, so padding is small.
    Deterministic given the torch.Generator."""
    perm = torch.randperm(len(lengths), generator=generator).tolist()
    if not bucket:
        return [perm[i : i + batch_size] for i in range(0, len(perm), batch_size)]
    chunk = bucket_batches * batch_size
    batches = []
    for start in range(0, len(perm), chunk):
        part = sorted(perm[start : start + chunk], key=lambda i: lengths[i])
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[k] for k in torch.randperm(len(batches), generator=generator).tolist()]


def eval_order(lengths, batch_size):
    """Batches for evaluation: sorted by length, longest first, so an out-of-memory error
    shows on the first batch rather than at the end. Map predictions back by index."""
    order = np.argsort(-np.asarray(lengths), kind="stable").tolist()
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class BatchStream:
    """An endless stream of index batches over one task, for the multitask loop.

    Pass k is ordered by a generator seeded from (seed, k), so the whole stream is a function
    of the seed, and `state_dict()` ({"pass", "pos"}) is enough to resume exactly where an
    interrupted run stopped."""

    def __init__(self, data, batch_size, seed, bucket=True, overfit=False):
        if len(data.lengths) == 0:
            raise ValueError("cannot stream batches from an empty task")
        self.lengths = data.lengths
        self.batch_size, self.seed, self.bucket = batch_size, seed, bucket
        self.overfit = overfit  # a sanity mode: every batch is the first one, which the model should memorise
        self.pass_, self.pos = 0, 0
        self._batches = None  # the batches of pass self.pass_, made on first use

    def _make_batches(self):
        # SeedSequence mixes (seed, pass) into a well-spread 32-bit seed; seed + pass would
        # make seed 1 pass 0 replay seed 0 pass 1
        pass_ = 0 if self.overfit else self.pass_
        pass_seed = int(np.random.SeedSequence([self.seed, pass_]).generate_state(1)[0])
        generator = torch.Generator().manual_seed(pass_seed)
        batches = batch_order(self.lengths, self.batch_size, generator, self.bucket)
        if self.overfit:  # the first full batch (after bucketing, the first may be a short tail)
            return [next(b for b in batches if len(b) == max(map(len, batches)))]
        return batches

    def __iter__(self):
        return self

    def __next__(self):
        if self._batches is None:
            self._batches = self._make_batches()
        if self.pos >= len(self._batches):
            self.pass_, self.pos = self.pass_ + 1, 0
            self._batches = self._make_batches()
        batch = self._batches[self.pos]
        self.pos += 1
        return batch

    @property
    def batches_per_pass(self):
        return math.ceil(len(self.lengths) / self.batch_size)

    @property
    def passes(self):
        """How many times the data has been seen, as a fraction (1.5 = one and a half passes)."""
        return self.pass_ + self.pos / self.batches_per_pass

    def state_dict(self):
        return {"pass": self.pass_, "pos": self.pos, "batch_size": self.batch_size, "examples": len(self.lengths)}

    def load_state_dict(self, state):
        expected = {"batch_size": self.batch_size, "examples": len(self.lengths)}
        found = {key: state.get(key, value) for key, value in expected.items()}
        if found != expected:
            raise ValueError(f"cannot resume batch stream saved with {found} into one with {expected}")
        self.pass_, self.pos = state["pass"], state["pos"]
        self._batches = None
