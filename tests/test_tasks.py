"""Tests for tasks.py: the task table and the scores computed from it."""

import math

import numpy as np
import pytest

from tasks import SPLITS, TASK_NAMES, TASKS, overall, plain_mean, score


def test_the_table_is_complete_and_consistent():
    assert TASK_NAMES == ("sst", "para", "sts")
    for name, task in TASKS.items():
        assert task.name == name and set(task.files) == set(SPLITS) == set(task.rows)
        assert task.kind in ("multiclass", "binary", "regression")
        assert task.metric == ("pearson" if task.kind == "regression" else "accuracy")
    assert [TASKS[t].is_pair for t in TASK_NAMES] == [False, True, True]


def test_the_columns_are_the_course_files_headers():
    # The course CSVs' headers: id, sentence, sentiment / id, sentence1, sentence2, is_duplicate /
    # id, sentence1, sentence2, similarity. A pair is read in its file's order: sentence1 first.
    columns = {t: (TASKS[t].text_columns, TASKS[t].label_column) for t in TASK_NAMES}
    assert columns == {
        "sst": (("sentence",), "sentiment"),
        "para": (("sentence1", "sentence2"), "is_duplicate"),
        "sts": (("sentence1", "sentence2"), "similarity"),
    }


def test_accuracy_and_pearson_by_hand():
    assert score("sst", [0, 1, 2, 4], [0, 1, 3, 4]) == 0.75
    assert score("para", np.array([1, 0]), np.array([1, 1])) == 0.5
    # preds (1, 2, 3) against gold (1, 3, 2): deviations (-1, 0, 1) and (-1, 1, 0), r = 1 / 2
    assert score("sts", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert score("sts", [3.0, 2.0, 1.0], [1.0, 3.0, 2.0]) == pytest.approx(-0.5)  # the same, reversed: r keeps its sign
    assert score("sts", [2.0, 2.0, 2.0], [1.0, 3.0, 2.0]) == 0.0  # constant predictions: no correlation
    assert score("sts", [1.0, 3.0, 2.0], [2.0, 2.0, 2.0]) == 0.0  # constant gold (a tiny dev slice): 0, not NaN


def test_overall_is_the_course_formula_and_plain_mean_is_not():
    metrics = {"sst": 0.5, "para": 0.8, "sts": 0.6}
    assert overall(metrics) == pytest.approx((0.5 + 0.8 + (0.6 + 1) / 2) / 3)  # 0.7
    assert plain_mean(metrics) == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    assert overall({"sts": -1.0}) == 0.0 and overall({"sst": 0.4}) == 0.4  # only the tasks present
    assert not math.isnan(overall({"sst": 0.4, "sts": 0.0}))
    assert plain_mean({"sst": 0.4, "sts": -0.2}) == pytest.approx(0.1)  # the mean of the tasks present
