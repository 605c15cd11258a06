"""What a run learned, in numbers: its dev predictions joined with the dev sentences, confusion
matrices, per-class precision / recall / F1 and their macro means, the least-squares line through
the similarity scatter, and the examples it got most confidently wrong.

These are the error analyses of the four reports ("Tuning Up BERT" Section 6: Fig. 5, normalised
confusion matrices for SST-5 and QQP; Fig. 6, predicted vs gold similarity; Tables 7-9, failure
cases with their sentences; "BERT and Beyond" Figs 3-4). pages.py draws them; report.py is the
command that writes the pages:

    python report.py runs/main
    run = analysis.load_results("runs/main"); counts = analysis.confusion_matrix(run.tasks["sst"].gold, ...)

A run folder is what train.py writes (metrics.json, predictions/), or what ensemble.py writes
(metrics.json too, and ensemble.json with its members); a folder may hold predictions for some
tasks only.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import data
import predictions
from tasks import TASK_NAMES, TASKS

SUMMARY_FILES = ("metrics.json", "ensemble.json")  # the summary: metrics.json, else an ensemble's ensemble.json


class RunError(Exception):
    """A run folder lacks something the report needs; the message names the folder and the file."""


@dataclass
class TaskDev:
    """One task's dev predictions, joined by id with the dev file's sentences and gold labels."""

    task: str
    ids: list
    pred: np.ndarray  # (N,) what was scored: class id, 0 / 1, or the similarity clipped to [0, 5]
    raw: np.ndarray  # (N, K) class probabilities for sst; (N,) P(paraphrase) or the unclipped score
    dev_file: Path
    examples: list | None  # data.Example per id, in the order of ids; None when the dev file was not found

    @property
    def gold(self):
        return None if self.examples is None else np.array([ex.label for ex in self.examples])  # (N,)


@dataclass
class RunResults:
    folder: Path
    summary_file: str  # "metrics.json", or "ensemble.json" where there is no metrics.json
    summary: dict
    tasks: dict  # task -> TaskDev, for the tasks with dev predictions
    absent: list = field(default_factory=list)  # one sentence per thing the report cannot show
    ensemble: dict | None = None  # ensemble.py's ensemble.json (members, weights, scores), where present

    @property
    def config(self):
        return self.summary.get("config", {})


def load_results(folder, data_dir=None):
    """Read a run folder: its summary file, its dev predictions and the dev files they refer to.
    data_dir, if given, replaces the folder the run read its dev files from (for runs made elsewhere)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder}: no such run folder")
    summary_path = next((folder / n for n in SUMMARY_FILES if (folder / n).is_file()), None)
    if summary_path is None:
        raise RunError(f"{folder}: no metrics.json (nor ensemble.json): is this a run folder of train.py?")
    summary = read_json(summary_path)
    if isinstance(summary, dict) and isinstance(summary.get("config"), dict) and "mask_prob" in summary["config"]:
        raise RunError(f"{folder}: an mlm.py run (pretraining, no task predictions); fine-tune its encoder first")
    check_summary(summary_path, summary)
    pred_dir = folder / "predictions"
    if not pred_dir.is_dir():
        raise RunError(f"{folder}: no predictions/ folder (train.py writes it when a run finishes)")
    run = RunResults(folder, summary_path.name, summary, {})
    if (folder / "ensemble.json").is_file():
        run.ensemble = read_json(folder / "ensemble.json")
    for task in TASK_NAMES:
        raw_path = predictions.file_path(pred_dir, task, "dev", "raw")
        if not raw_path.is_file():
            run.absent.append(f"{task}: no dev predictions ({raw_path} not found)")
            continue
        run.tasks[task] = read_task(task, pred_dir, dev_path(run.config, task, data_dir), run.absent)
    if not run.tasks:
        raise RunError(f"{pred_dir}: no dev predictions ({', '.join(t + '-dev-raw.csv' for t in TASK_NAMES)})")
    return run


def read_json(path):
    """A run's JSON file (metrics.json, ensemble.json), for report.py and reproduce.py's page alike;
    NaN and Infinity, which Python's json accepts but no chart can place, are errors."""

    def refuse(name):
        raise RunError(f"{path}: holds {name}, which is not a number (a run that diverged? the file was edited?)")

    def finite(text):  # 1e400 is a valid JSON number, which Python would read as inf
        if not math.isfinite(value := float(text)):
            raise RunError(f"{path}: holds {text}, a number beyond any float (it would be read as infinity)")
        return value

    try:
        return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=refuse, parse_float=finite)
    except OSError as e:
        raise RunError(f"{path}: cannot read it ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: not valid JSON ({e})") from None


def numbers(d):
    return isinstance(d, dict) and all(isinstance(v, int | float) for v in d.values())


def check_summary(path, summary):
    """The parts of a summary file the pages read, in the shapes they expect, or RunError naming the entry."""
    if not isinstance(summary, dict):
        raise RunError(f"{path}: expected a JSON object, found {type(summary).__name__}")
    if not isinstance(summary.get("config", {}), dict):
        raise RunError(f"{path}: 'config' should map flags to values")
    if not isinstance(summary.get("wall_time_s", 0), int | float):
        raise RunError(f"{path}: 'wall_time_s' should be a number")
    for key in ("dev", "examples_seen"):
        if key in summary and not numbers(summary[key]):
            raise RunError(f"{path}: '{key}' should map names to numbers")
    if not isinstance(summary.get("epochs", []), list):
        raise RunError(f"{path}: 'epochs' should be a list of per-epoch objects, found {json.dumps(summary['epochs'])}")
    for i, e in enumerate(summary.get("epochs", [])):
        if not isinstance(e, dict) or not isinstance(e.get("epoch"), int):
            raise RunError(f"{path}: epochs[{i}] should be an object with an integer 'epoch'")
        if not numbers({k: e[k] for k in ("overall", "plain_mean") if k in e}):
            raise RunError(f"{path}: epochs[{i}]: 'overall' and 'plain_mean' should be numbers")
        for key in ("dev", "train_loss", "train_acc"):
            if key in e and not numbers(e[key]):
                raise RunError(f"{path}: epochs[{i}].{key} should map tasks to numbers")


def dev_path(config, task, data_dir=None):
    """The dev file a run was scored on: the one its metrics.json records, unless data_dir replaces it."""
    if data_dir is not None:
        return Path(data_dir) / TASKS[task].files["dev"]
    return recorded_file(config, task, "dev") or Path("data") / TASKS[task].files["dev"]


def recorded_file(config, task, split):
    """The course file of a task and split as a run's metrics.json config records it, or None.
    train.py and ensemble.py record --{task}-{split} (a path, or "none") and --data-dir;
    `synth.py label` records its flags per split ({"dev": {"input": ..., "data_dir": ...}}), sst only."""
    per_split = config.get(split)
    if isinstance(per_split, dict):  # synth.py label
        if task != "sst":
            return None
        named, data_dir = per_split.get("input"), per_split.get("data_dir")
    else:
        named, data_dir = config.get(f"{task}_{split}"), config.get("data_dir")
    if named == "none":  # train.py's way to say: no test file, no test predictions
        return None
    if isinstance(named, str) and named:
        return Path(named)
    return Path(data_dir) / TASKS[task].files[split] if isinstance(data_dir, str) and data_dir else None


def read_task(task, pred_dir, dev_file, absent):
    ids, pred, raw = predictions.read(pred_dir, task, "dev")  # the one reader: every line checked
    out_path = predictions.file_path(pred_dir, task, "dev", "output")
    if not dev_file.is_file():
        absent.append(f"{task}: no sentences or gold labels, dev file {dev_file} not found (pass --data-dir)")
        return TaskDev(task, ids, pred, raw, dev_file, None)
    by_id = {ex.id: ex for ex in data.read_examples(dev_file, task, labelled=True)}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise RunError(
            f"{out_path}: {len(unknown)} of {len(ids)} ids (first {unknown[0]!r}) are not in {dev_file}: "
            "the run was scored on another dev file (pass --data-dir)"
        )
    if len(ids) < len(by_id):
        absent.append(f"{task}: predictions for {len(ids)} of the {len(by_id)} examples of {dev_file}")
    examples = [by_id[i] for i in ids]
    if raw.ndim == 2:
        predictions.check_gold(examples, raw.shape[1], dev_file, predictions.file_path(pred_dir, task, "dev"))
    return TaskDev(task, ids, pred, raw, dev_file, examples)


# ----------------------------------------------------------------------------
# the numbers


def confusion_matrix(gold, pred, k):
    """counts (K, K): counts[g, p] is the number of examples of gold class g predicted as p."""
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return counts


def per_class(counts):
    """(precision, recall, F1, support) per class of a confusion matrix; 0 where a ratio has no examples.
    precision: of the examples predicted as c, the share that are c; recall: of the examples of c,
    the share predicted as c; F1: their harmonic mean."""
    counts = np.asarray(counts, dtype=float)
    hits = np.diag(counts)  # (K,)
    predicted, support = counts.sum(axis=0), counts.sum(axis=1)  # (K,), (K,)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(hits), where=both > 0)
    return [(p, r, f, int(s)) for p, r, f, s in zip(precision, recall, f1, support)]


def macro_mean(scores):
    """(precision, recall, F1) averaged over the classes of per_class's `scores`, each class counting
    once, whatever its support: the mean of the values, not of their rounded figures."""
    return tuple(float(np.mean([row[i] for row in scores])) for i in range(3))


def least_squares(x, y):
    """(slope, intercept) of the line y = slope * x + intercept with the least squared error:
    slope = cov(x, y) / var(x), and the line passes through the means."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    dx = x - x.mean()
    var = (dx**2).sum()
    slope = (dx * (y - y.mean())).sum() / var if var > 0 else 0.0
    return float(slope), float(y.mean() - slope * x.mean())


def confusion_size(td):
    """K of a classification task's confusion matrix: the columns of the probabilities (2 for
    paraphrase), or more where a prediction or a gold label lies beyond them."""
    k = td.raw.shape[1] if td.raw.ndim == 2 else 2
    top = int(max(td.pred.max(), td.gold.max())) + 1
    return max(k, top)


def confidence(td):
    """How sure the model was of each prediction (N,): the probability it gave its predicted class
    (sst, para), or for sts, where there are no probabilities, the size of the error."""
    if TASKS[td.task].kind == "regression":
        return np.abs(td.pred - td.gold)
    if td.raw.ndim == 2:
        return td.raw[np.arange(len(td.pred)), td.pred.astype(int)]
    return np.where(td.pred == 1, td.raw, 1 - td.raw)


def confident_mistakes(td, n):
    """Indices of the n wrong predictions made with the highest confidence, most confident first.
    For sts every prediction is a little wrong: the n largest errors."""
    conf = confidence(td)
    regression = TASKS[td.task].kind == "regression"
    wrong = np.ones(len(conf), dtype=bool) if regression else td.pred != td.gold
    order = np.argsort(-conf, kind="stable")
    return [int(i) for i in order if wrong[i]][:n]
