"""Tests for predictions.py: the course's submission format and raw files, written and read back."""

import numpy as np
import pytest

import predictions
from predictions import PredictionFileError


def test_round_trip_of_every_task(tmp_path):
    ids = ["a1", "b2", "c3"]
    probs = np.array([[0.1, 0.2, 0.3, 0.3, 0.1], [0.5, 0.5, 0, 0, 0], [0, 0, 0, 0, 1.0]])
    predictions.write(tmp_path, "sst", "dev", ids, probs.argmax(1), probs)
    predictions.write(tmp_path, "para", "test", ids, np.array([0, 1, 1]), np.array([0.25, 0.75, 0.5]))
    predictions.write(tmp_path, "sts", "dev", ids, np.array([0.0, 5.0, 2.5]), np.array([-0.5, 5.25, 2.5]))

    assert (tmp_path / "sst-dev-output.csv").read_text().splitlines()[:2] == ["id \t Predicted_Sentiment ", "a1 , 2 "]
    got_ids, got = predictions.read_raw(tmp_path / "sst-dev-raw.csv")
    assert got_ids == ids and np.allclose(got, probs)
    assert predictions.read_raw(tmp_path / "para-test-raw.csv")[1].tolist() == [0.25, 0.75, 0.5]
    assert predictions.read_raw(tmp_path / "sts-dev-raw.csv")[1].tolist() == [-0.5, 5.25, 2.5]
    assert predictions.read_output(tmp_path / "sts-dev-output.csv") == (ids, pytest.approx([0.0, 5.0, 2.5]))
    assert predictions.read_output(tmp_path / "para-test-output.csv")[1].tolist() == [0, 1, 1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", r":1: expected a header"),
        ("id\tscore\nx\t1.0\ny\n", r":3: expected 2 fields, found 1"),
        ("id\tscore\nx\tone\n", r":2: not a number"),
        ("id\tscore\nx\tnan\n", r":2: non-finite value"),
        ("id\tscore\nx\t1\nx\t2\n", r": duplicate ids"),
    ],
)
def test_malformed_raw_files_name_the_line(tmp_path, text, message):
    path = tmp_path / "sts-dev-raw.csv"
    path.write_text(text)
    with pytest.raises(PredictionFileError, match=rf"sts-dev-raw\.csv{message}"):
        predictions.read_raw(path)


def test_missing_and_malformed_output_files(tmp_path):
    with pytest.raises(PredictionFileError, match="no such file"):
        predictions.read_output(tmp_path / "nope.csv")
    (tmp_path / "o.csv").write_text("id \t Predicted_Sentiment \na , 1 \nb 2\n")
    with pytest.raises(PredictionFileError, match=r"o\.csv:3: expected 'id , value'"):
        predictions.read_output(tmp_path / "o.csv")
