"""The three tasks of the CS224N multitask project, in one table that every module reads.

Everything task-specific lives here: the columns of the course files, what kind of label a
task has, how it is scored, the names of its files and of its prediction column. No other
module keeps a list of tasks.

    task   input            label                      metric     course files
    sst    one sentence     5 sentiment classes 0..4   accuracy   ids-sst-{train,dev,test-student}.csv
    para   sentence pair    paraphrase or not (0 / 1)  accuracy   quora-{train,dev,test-student}.csv
    sts    sentence pair    similarity 0.0 .. 5.0      Pearson r  sts-{train,dev,test-student}.csv

The course's overall score puts the three on one scale: mean(SST acc, QQP acc, (STS r + 1) / 2).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Task:
    name: str  # the short name used in flags, files and logs
    title: str  # for people
    text_columns: tuple  # header names of the input sentences: one, or two for a pair
    label_column: str  # header name of the gold label
    kind: str  # "multiclass" (cross-entropy), "binary" (one logit) or "regression" (a score)
    metric: str  # "accuracy" or "pearson"
    files: dict  # split -> default course file name
    rows: dict  # split -> accepted numbers of data rows in the course file (None: not known)
    prediction_column: str  # column name in the course's submission files
    class_names: tuple = ()  # what each class id of a classification task means, for reports

    @property
    def is_pair(self):
        return len(self.text_columns) == 2


def _files(prefix):
    return {"train": f"{prefix}-train.csv", "dev": f"{prefix}-dev.csv", "test": f"{prefix}-test-student.csv"}


TASKS = {
    "sst": Task(
        name="sst",
        title="sentiment (SST-5)",
        text_columns=("sentence",),
        label_column="sentiment",
        kind="multiclass",
        metric="accuracy",
        files=_files("ids-sst"),
        rows={"train": (8544,), "dev": (1101,), "test": (2210,)},
        prediction_column="Predicted_Sentiment",
        class_names=("very negative", "negative", "neutral", "positive", "very positive"),
    ),
    "para": Task(
        name="para",
        title="paraphrase (Quora)",
        text_columns=("sentence1", "sentence2"),
        label_column="is_duplicate",
        kind="binary",
        metric="accuracy",
        files=_files("quora"),
        # train: the 13,507-row subset some mirrors hold, or the course's full file
        rows={"train": (13507, 141498), "dev": (20214,), "test": None},
        prediction_column="Predicted_Is_Paraphrase",
        class_names=("not paraphrase", "paraphrase"),
    ),
    "sts": Task(
        name="sts",
        title="similarity (STS)",
        text_columns=("sentence1", "sentence2"),
        label_column="similarity",
        kind="regression",
        metric="pearson",
        files=_files("sts"),
        rows={"train": (6040,), "dev": (863,), "test": (1725,)},
        prediction_column="Predicted_Similarity",
    ),
}
TASK_NAMES = tuple(TASKS)  # ("sst", "para", "sts"): the order of every table and log line
SPLITS = ("train", "dev", "test")


# ----------------------------------------------------------------------------
# scoring


def score(task, preds, labels):
    """The task's dev metric: accuracy for sst and para, Pearson correlation for sts."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    if TASKS[task].metric == "pearson":
        # Constant predictions have no correlation to measure; call it 0 rather than NaN so
        # that runs still compare (NaN > x is always False).
        if np.std(preds) == 0 or np.std(labels) == 0:
            return 0.0
        return float(np.corrcoef(preds, labels)[0, 1])
    return float((preds == labels).mean())


def overall(metrics):
    """The course's overall score: mean of SST acc, QQP acc and (STS r + 1) / 2 (of the tasks present).
    Mapping r from [-1, 1] onto [0, 1] puts it on the accuracies' scale."""
    parts = [(metrics[t] + 1) / 2 if TASKS[t].metric == "pearson" else metrics[t] for t in TASK_NAMES if t in metrics]
    return sum(parts) / len(parts)


def plain_mean(metrics):
    """The plain mean of the metrics (r as is), the overall figure the BERT++ and SUSTech reports give."""
    parts = [metrics[t] for t in TASK_NAMES if t in metrics]
    return sum(parts) / len(parts)
