"""Tests for predictions.py: the course's submission format and raw files, written and read back."""

import numpy as np
import pytest

import predictions
from data import Example
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
        ("id\tscore\nx\t1.0\ny\n", r":3: expected 2 tab-separated fields, found 1"),
        ("id\tscore\nx\tone\n", r":2: not a number"),
        ("id\tscore\nx\tnan\n", r":2: non-finite value"),
        ("id\tscore\nx\t1\nx\t2\n", r":3: duplicate id .x. \(first on line 2\)"),
        ("id\tscore\n", r": a header and no predictions"),
        ("id\tscore\nx\t1.7597\ny\t1.7", r":3: no line end after the last line: the file is cut short"),
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
    (tmp_path / "o.csv").write_text("id \t Predicted_Sentiment \n")
    with pytest.raises(PredictionFileError, match=r"o\.csv: a header and no predictions"):
        predictions.read_output(tmp_path / "o.csv")
    (tmp_path / "o.csv").write_text("id \t Predicted_Sentiment \r\na , 1 \r\nb , 2")  # cut inside its last line
    with pytest.raises(PredictionFileError, match=r"o\.csv:3: no line end after the last line"):
        predictions.read_output(tmp_path / "o.csv")


# ----------------------------------------------------------------------------
# the one reader: every value checked by the task's rules, every error naming file:line


@pytest.mark.parametrize(
    "task, value, message",
    [
        ("sst", "-1", r"sst-dev-output\.csv:3: expected a class 0\.\.4, found '-1'"),
        ("sst", "2.7", r"sst-dev-output\.csv:3: expected a class 0\.\.4, found '2\.7'"),
        ("sst", "7", r"sst-dev-output\.csv:3: expected a class 0\.\.4, found '7'"),
        ("para", "0.7", r"para-dev-output\.csv:3: expected 0 or 1, found '0\.7'"),
        ("sts", "99", r"sts-dev-output\.csv:3: expected a similarity in \[0, 5\], found '99'"),
        ("sts", "nan", r"sts-dev-output\.csv:3: expected a similarity in \[0, 5\], found 'nan'"),
    ],
)
def test_predictions_out_of_their_range_name_the_line(tmp_path, task, value, message):
    raws = {"sst": np.eye(5)[[1, 2]], "para": np.array([0.2, 0.9]), "sts": np.array([1.0, 2.0])}[task]
    predictions.write(tmp_path, task, "dev", ["a", "b"], np.array([1, 1]), raws)
    path = tmp_path / f"{task}-dev-output.csv"
    path.write_text(path.read_text().replace("b , 1 ", f"b , {value} "))
    with pytest.raises(PredictionFileError, match=message):
        predictions.read(tmp_path, task, "dev")
    if value != "7":  # on its own, by the rules its file name implies (the classes are the raw file's)
        with pytest.raises(PredictionFileError, match=rf"{task}-dev-output\.csv:3: expected"):
            predictions.read_output(path)


@pytest.mark.parametrize(
    "text, message",
    [
        (b"id\tscore\nx\t1.0\ny\xff\t2.0\n", r":3: not UTF-8 text \(byte 0xff"),
        (b"id\tscore\nx\t" + b"1" * 200_000 + b"\n", r":2: non-finite value in '1111.*\(200000 characters\)$"),
        (b"id\tscore\n" + b"x" * 200_000 + b"\tone\n", r":2: not a number in 'one'$"),
        (b'id\tscore\n"a , 4 \n"\t1.0\n', r":2: id .\"a , 4 . holds a space, comma"),
        (b"id\tscore\na,4\t1.0\n", r":2: id 'a,4' holds a space, comma"),
        (b"id\tprob\nx\t0.5\n", r":1: expected a header 'id<TAB>score', found 'id\\tprob'"),
    ],
)
def test_hostile_raw_files_are_one_short_error(tmp_path, text, message):
    path = tmp_path / "sts-dev-raw.csv"
    path.write_bytes(text)
    with pytest.raises(PredictionFileError, match=rf"sts-dev-raw\.csv{message}") as e:
        predictions.read_raw(path)
    assert len(str(e.value)) < 300


def test_raw_and_output_files_must_agree(tmp_path):
    predictions.write(tmp_path, "sst", "dev", ["a", "b"], np.array([0, 1]), np.eye(3)[[0, 1]])
    assert predictions.read(tmp_path, "sst", "dev")[1].tolist() == [0, 1]
    (tmp_path / "sst-dev-output.csv").write_text("id \t Predicted_Sentiment \nb , 1 \na , 0 \n")
    with pytest.raises(PredictionFileError, match=r"sst-dev-output\.csv: its ids differ from those of sst-dev-raw"):
        predictions.read(tmp_path, "sst", "dev")
    (tmp_path / "sst-dev-output.csv").write_text("id \t Predicted_Sentiment \na , 0 \nb , 3 \n")  # 3 classes only
    with pytest.raises(PredictionFileError, match=r"sst-dev-output\.csv:3: expected a class 0\.\.2, found '3'"):
        predictions.read(tmp_path, "sst", "dev")


@pytest.mark.parametrize(
    "name, text, message",
    [
        # sst: each row a probability distribution over at least two classes
        ("sst-dev-raw.csv", "id\tp0\tp1\nx\t1.5\t-0.5\n", r":2: not a probability distribution: '1.5 -0.5'"),
        ("sst-dev-raw.csv", "id\tp0\tp1\nx\t0.5\t0.6\n", r":2: not a probability distribution: '0.5 0.6'"),
        ("sst-dev-raw.csv", "id\tp0\nx\t1.0\n", r":1: expected a header 'id<TAB>p0<TAB>p1 ... p\(K-1\)'"),
        ("para-dev-raw.csv", "id\tprob\nx\t1.5\n", r":2: not a probability: '1.5'"),
    ],
)
def test_raw_values_outside_their_task_s_range_name_the_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PredictionFileError, match=rf"{name}{message}"):
        predictions.read_raw(path)


def test_an_output_file_needs_ids_and_its_task_s_column(tmp_path):
    path = tmp_path / "para-dev-output.csv"
    path.write_text("id \t Predicted_Is_Paraphrase \n , 1 \n")
    with pytest.raises(PredictionFileError, match=r"para-dev-output\.csv:2: expected 'id , value', found ' , 1 '"):
        predictions.read_output(path)
    path.write_text("id \t Predicted_Sentiment \na , 1 \n")  # sst's column in a para file
    with pytest.raises(PredictionFileError, match=r":1: expected a header 'id \\t Predicted_Is_Paraphrase'"):
        predictions.read_output(path)


def test_gold_labels_must_be_below_the_raw_file_s_classes():
    gold = [Example("a", "x", None, 2, line=2), Example("b", "y", None, 3, line=3)]
    predictions.check_gold(gold[:1], 3, "dev.csv", "sst-dev-raw.csv")  # classes 0..2: fine
    with pytest.raises(PredictionFileError, match=r"dev\.csv:3: sentiment 3 is not one of the 3 classes"):
        predictions.check_gold(gold, 3, "dev.csv", "sst-dev-raw.csv")
