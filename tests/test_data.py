"""Tests for data.py: reading and validating the task files, encoding, padding, batch order,
and resuming a batch stream."""

import csv
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import data
from hub import packaged_model_dir
from tasks import TASKS
from tokenizer import build_tokenizer

SST_HEADER = "\tid\tsentence\tsentiment\n"
PAIR_HEADER = "\tid\tsentence1\tsentence2\t{}\n"


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(packaged_model_dir(), max_length=128)


# ----------------------------------------------------------------------------
# reading


def test_pandas_quoting(tmp_path):
    path = write(
        tmp_path,
        "sst.csv",
        SST_HEADER + '0\tx1\t"a ""quoted"" word"\t3\n' + '1\tx2\t"""quoted"" first"\t0.0\n' + "2\tx3\tplain\t7.5\n",
    )
    with pytest.raises(data.DataError, match=r"sst\.csv:4: sentiment must be an integer"):
        data.read_examples(path, "sst")
    path.write_text(path.read_text().replace("7.5", "1"))
    examples = data.read_examples(path, "sst")
    assert [ex.text_a for ex in examples] == ['a "quoted" word', '"quoted" first', "plain"]
    assert [ex.label for ex in examples] == [3, 0, 1]
    assert [ex.id for ex in examples] == ["x1", "x2", "x3"]
    assert [ex.line for ex in examples] == [2, 3, 4]
    assert all(ex.text_b is None for ex in examples)


def test_text_lines_counts_from_one_and_drops_the_line_end_only():
    # CRLF line ends lose their \r too (predictions.py and synth.py read through text_lines);
    # spaces and a blank line stay, and a last line without its \n is still a line
    raw = b"a\r\n b \n\nlast"
    assert list(data.text_lines("f", io.BytesIO(raw))) == [(1, "a"), (2, " b "), (3, ""), (4, "last")]


def test_empty_file_headers_without_id_and_unknown_tasks_are_named(tmp_path):
    path = write(tmp_path, "sst.csv", "")
    with pytest.raises(data.DataError, match=r"sst\.csv:1: empty file, expected a header row"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "sst.csv", "\tsentence\tsentiment\n0\tfine\t1\n")
    with pytest.raises(data.DataError, match=r"sst\.csv:1: no column 'id' in header"):
        data.read_examples(path, "sst")
    with pytest.raises(ValueError, match="unknown task 'sts5'"):
        data.read_examples(path, "sts5")


def test_unclosed_quote_is_an_error_where_it_opens(tmp_path):
    # A quote opened on line 4 and closed on line 5: read as CSV records, rows c and d merge
    # into one example labelled 2, silently. Every course row fits on one line, so say so.
    rows = ["0\ta\tx\t1\n", "1\tb\ty\t0\n", '2\tc\t"open quote\t1\n', '3\td\tclosed"\t2\n', "4\te\tz\t3\n"]
    path = write(tmp_path, "sst.csv", SST_HEADER + "".join(rows))
    with pytest.raises(data.DataError, match=r"sst\.csv:4: malformed CSV: .*quote left open"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "sst.csv", SST_HEADER + '0\ta\t"never closed\t1\n' + "1\tb\ty\t0\n")
    with pytest.raises(data.DataError, match=r"sst\.csv:2: malformed CSV"):
        data.read_examples(path, "sst")


def test_a_very_long_sentence_is_read_not_taken_for_an_open_quote(tmp_path):
    long = ("a long sentence " * 9000)[:140_000]  # over csv's 131072-character field limit
    limit = csv.field_size_limit()
    path = write(tmp_path, "sst.csv", SST_HEADER + f"0\ta\t{long}\t1\n" + f'1\tb\t"{long}"\t2\n')
    assert [ex.text_a for ex in data.read_examples(path, "sst")] == [long, long]
    assert csv.field_size_limit() == limit  # raised for the long line only, not for every csv reader after
    path = write(tmp_path, "sst.csv", SST_HEADER + f'0\ta\t"{long}\t1\n')  # an open quote is still one
    with pytest.raises(data.DataError, match=r"sst\.csv:2: malformed CSV"):
        data.read_examples(path, "sst")


@pytest.mark.parametrize("field", ['"tab\tinside"', '"two\nlines"', '"carriage\rreturn"'])
def test_field_holding_a_tab_or_line_break_is_an_error(tmp_path, field):
    path = write(tmp_path, "sst.csv", SST_HEADER + "0\ta\tfine\t1\n" + f"1\tb\t{field}\t0\n" + "2\tc\tz\t3\n")
    with pytest.raises(data.DataError, match=r"sst\.csv:3: "):
        data.read_examples(path, "sst")


def test_cr_only_line_ends_are_named_as_such(tmp_path):
    # Python's csv said "do you need to open the file in universal-newline mode?" (and the project
    # "is a quote left open?"): neither helps the user, whose file has old Mac line ends.
    path = tmp_path / "sst.csv"
    path.write_bytes((SST_HEADER + "0\ta\tfine\t1\n").replace("\n", "\r").encode())
    with pytest.raises(data.DataError, match=r"sst\.csv:1: a carriage return inside the line: CR-only line ends"):
        data.read_examples(path, "sst")


def test_bytes_that_are_not_utf8_name_their_line(tmp_path):
    path = tmp_path / "sst.csv"
    path.write_bytes((SST_HEADER + "0\ta\tfine\t1\n").encode() + b"1\tb\tcaf\xe9\t0\n")
    with pytest.raises(data.DataError, match=r"sst\.csv:3: not UTF-8 text \(byte 0xe9 at column 8\)"):
        data.read_examples(path, "sst")


@pytest.mark.parametrize("bad_id", ["evil id", "a,b", '"a""b"', "it's", "x\x0by", "x\x7f", "nb\u00a0sp"])
def test_ids_that_could_forge_submission_lines_are_errors(tmp_path, bad_id):
    path = write(tmp_path, "sst.csv", SST_HEADER + "0\tgood-id_1.x\tfine\t1\n" + f"1\t{bad_id}\tx\t0\n")
    with pytest.raises(data.DataError, match=r"sst\.csv:3: id .* holds a space, comma, quote or control character"):
        data.read_examples(path, "sst")


def test_columns_found_by_header_name(tmp_path):
    # the sst test file's odd header: an index, an unnamed column, then id and sentence
    path = write(tmp_path, "test.csv", "0\t\tid\tsentence\n1\t0.0\tabc\t Effective but tepid\n2\t1.0\tdef\tfun\n")
    examples = data.read_examples(path, "sst")
    assert [(ex.id, ex.text_a, ex.label) for ex in examples] == [
        ("abc", " Effective but tepid", None),
        ("def", "fun", None),
    ]

    path = write(tmp_path, "shuffled.csv", "similarity\tsentence2\tid\tsentence1\n2.5\tB\tq1\tA\n")
    (ex,) = data.read_examples(path, "sts")
    assert (ex.id, ex.text_a, ex.text_b, ex.label) == ("q1", "A", "B", 2.5)


def test_label_column_optional_or_required(tmp_path):
    path = write(tmp_path, "nolabel.csv", "\tid\tsentence1\tsentence2\n0\ta\tx\ty\n")
    assert data.read_examples(path, "para")[0].label is None
    with pytest.raises(data.DataError, match=r"nolabel\.csv:1: no label column 'is_duplicate'"):
        data.read_examples(path, "para", labelled=True)
    labelled = write(tmp_path, "labelled.csv", PAIR_HEADER.format("is_duplicate") + "0\ta\tx\ty\t1.0\n")
    assert data.read_examples(labelled, "para", labelled=False)[0].label is None
    assert data.read_examples(labelled, "para")[0].label == 1.0


@pytest.mark.parametrize(
    "task, raw",
    [
        ("sst", "3.5"),
        ("sst", "-1"),
        ("sst", "abc"),
        ("sst", "inf"),
        ("para", "2"),
        ("para", "0.5"),
        ("para", "yes"),
        ("sts", "5.1"),
        ("sts", "-0.1"),
        ("sts", "nan"),
    ],
)
def test_bad_label_names_file_and_line(tmp_path, task, raw):
    if task == "sst":
        text = SST_HEADER + "0\ta\tgood\t2\n" + f"1\tb\tbad\t{raw}\n"
    else:
        column = TASKS[task].label_column
        text = PAIR_HEADER.format(column) + "0\ta\tx\ty\t1\n" + f"1\tb\tx\ty\t{raw}\n"
    path = write(tmp_path, "f.csv", text)
    with pytest.raises(data.DataError, match=rf"f\.csv:3: .*{raw!r}"):
        data.read_examples(path, task)


def test_labels_written_as_floats_are_accepted(tmp_path):
    path = write(tmp_path, "s.csv", SST_HEADER + "0\ta\tx\t3.0\n1\tb\ty\t0\n")
    assert [ex.label for ex in data.read_examples(path, "sst")] == [3, 0]
    assert all(isinstance(ex.label, int) for ex in data.read_examples(path, "sst"))
    path = write(tmp_path, "q.csv", PAIR_HEADER.format("is_duplicate") + "0\ta\tx\ty\t1\n1\tb\tx\ty\t0.0\n")
    assert [ex.label for ex in data.read_examples(path, "para")] == [1.0, 0.0]
    path = write(tmp_path, "t.csv", PAIR_HEADER.format("similarity") + "0\ta\tx\ty\t5\n1\tb\tx\ty\t0.25\n")
    assert [ex.label for ex in data.read_examples(path, "sts")] == [5.0, 0.25]


def test_malformed_rows(tmp_path):
    path = write(tmp_path, "f.csv", SST_HEADER + "0\ta\tx\t1\n1\tb\tmissing label field\n")
    with pytest.raises(data.DataError, match=r"f\.csv:3: expected 4 tab-separated fields, found 3"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "f.csv", SST_HEADER + '0\ta\t"unterminated\t1\n1\tb\tx\t1\n')
    with pytest.raises(data.DataError, match=r"f\.csv:2: malformed CSV"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "f.csv", "\tid\ttext\tsentiment\n0\ta\tx\t1\n")
    with pytest.raises(data.DataError, match=r"f\.csv:1: no column 'sentence'"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "f.csv", SST_HEADER + "0\ta\tx\t1\n1\ta\ty\t2\n")
    with pytest.raises(data.DataError, match=r"f\.csv:3: duplicate id 'a' \(first on line 2\)"):
        data.read_examples(path, "sst")
    path = write(tmp_path, "f.csv", SST_HEADER + "0\ta\tx\t1\n1\t\ty\t2\n")
    with pytest.raises(data.DataError, match=r"f\.csv:3: empty id"):
        data.read_examples(path, "sst")
    with pytest.raises(data.DataError, match=r"nothere\.csv"):
        data.read_examples(tmp_path / "nothere.csv", "sst")


def test_empty_sentence_is_legal_and_empty_label_skipped(tmp_path, capsys):
    # line 5's label is a space: empty too, not a label that fails to parse
    text = PAIR_HEADER.format("is_duplicate") + "0\ta\t\ty\t1.0\n1\tb\tx\ty\t\n2\tc\tx\ty\t0.0\n3\td\tx\ty\t \n"
    path = write(tmp_path, "quora-dev.csv", text)
    examples = data.read_examples(path, "para")
    assert [(ex.id, ex.text_a) for ex in examples] == [("a", ""), ("c", "x")]
    err = capsys.readouterr().err
    assert "quora-dev.csv: skipped 2 rows with an empty label (lines 3, 5)" in err
    assert err.count("skipped") == 1


def test_skipped_rows_are_listed_up_to_ten(capsys):
    data.report_skipped("f.csv", list(range(3, 13)))
    assert (
        capsys.readouterr().err
        == "f.csv: skipped 10 rows with an empty label (lines 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)\n"
    )
    data.report_skipped("f.csv", list(range(3, 14)))
    assert capsys.readouterr().err == (
        "f.csv: skipped 11 rows with an empty label (lines 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, ...)\n"
    )
    data.report_skipped("f.csv", [])
    assert capsys.readouterr().err == ""


def test_num_classes(tmp_path):
    path = write(tmp_path, "binary.csv", SST_HEADER + "0\ta\tgood\t1\n1\tb\tbad\t0\n2\tc\tfine\t1\n")
    assert data.num_classes(data.read_examples(path, "sst"), path) == 2
    assert data.num_classes(data.read_examples(path, "sst"), path, given=5) == 5
    with pytest.raises(ValueError):
        data.num_classes([data.Example("a", "x", None, None)])
    with pytest.raises(ValueError, match="integer class labels"):  # an sts file's labels are no classes
        data.num_classes([data.Example("a", "x", None, 1), data.Example("b", "y", None, 2.5)])
    assert data.num_classes(data.read_examples(path, "sst"), path, given=2) == 2
    with pytest.raises(ValueError, match="at least 2, got 1"):
        data.num_classes(data.read_examples(path, "sst"), path, given=1)


def test_label_outside_the_classes_is_an_error(tmp_path):
    rows = "".join(f"{i}\tid{i}\tx\t{y}\n" for i, y in enumerate([0, 1, 2, 3, 4, 2, 7, 1]))
    path = write(tmp_path, "sst-train.csv", SST_HEADER + rows)
    examples = data.read_examples(path, "sst")
    # inferred: a 7 would make 8 classes, but 5 and 6 never occur
    with pytest.raises(
        data.DataError, match=r"sst-train\.csv:8: sentiment 7 implies 8 classes 0\.\.7, but \[5, 6\] never"
    ):
        data.num_classes(examples, path)
    with pytest.raises(data.DataError, match=r"sst-train\.csv:8: sentiment 7 is not a class 0\.\.4"):
        data.num_classes(examples, path, given=5)
    assert data.num_classes(examples, path, given=8) == 8  # said explicitly: classes 5 and 6 may be empty
    # the first label outside 0..K-1 is K itself
    with pytest.raises(data.DataError, match=r"sst-train\.csv:8: sentiment 7 is not a class 0\.\.6"):
        data.num_classes(examples, path, given=7)


def synth_line(id_="x1-syn0", source="x1", label=3, text="a fine film", model="m", **extra):
    record = {"id": id_, "source_id": source, "label": label, "text": text, "model": model, **extra}
    return json.dumps(record) + "\n"


def test_read_synth(tmp_path):
    path = write(
        tmp_path, "synth.jsonl", synth_line() + synth_line("x1-syn1", text="good") + synth_line("y-syn0", "y", 0)
    )
    with pytest.raises(data.DataError, match=r"absent\.jsonl: cannot read"):
        data.read_synth(tmp_path / "absent.jsonl")
    examples = data.read_synth(path)
    assert [(ex.id, ex.text_a, ex.text_b, ex.label) for ex in examples] == [
        ("x1-syn0", "a fine film", None, 3),
        ("x1-syn1", "good", None, 3),
        ("y-syn0", "a fine film", None, 0),
    ]


@pytest.mark.parametrize(
    "bad, problem",
    [
        ('{"id": "x1-syn1", "source_id"\n', "not a JSON record"),
        ("[1, 2]\n", "expected a record with fields"),
        (synth_line("x1-syn1", extra=1), "expected a record with fields"),
        (synth_line("x1-syn1", text=" "), "empty text"),
        (synth_line("x1-syn1", text=7), "must be strings"),
        (synth_line("x1-syn1", label=2.5), "label must be an integer"),
        (synth_line("x1-syn1", label=True), "label must be an integer"),
        (synth_line("x1-syn1", label=-1), "label must be an integer"),
        (synth_line("x2-syn1"), "is not '{source_id}-syn{k}'"),
        (synth_line("x1-synA"), "is not '{source_id}-syn{k}'"),
        (synth_line("x1-syn\u00b2"), "is not '{source_id}-syn{k}'"),  # str.isdigit's superscript two: no 0-9
        (synth_line("12"), "is not '{source_id}-syn{k}'"),  # digits, but no "x1-syn" before them
        (synth_line("x1-syn0"), "duplicate id 'x1-syn0' \\(first on line 1\\)"),
    ],
)
def test_read_synth_names_file_and_line(tmp_path, bad, problem):
    path = write(tmp_path, "synth.jsonl", synth_line() + bad + synth_line("x1-syn2"))
    with pytest.raises(data.DataError, match=rf"synth\.jsonl:2: .*{problem}"):
        data.read_synth(path)
    path.write_bytes(synth_line().encode() + synth_line("x1-syn1", text="caf").encode().replace(b"caf", b"caf\xe9"))
    with pytest.raises(data.DataError, match=r"synth\.jsonl:2: not UTF-8 text \(byte 0xe9"):
        data.read_synth(path)


# ----------------------------------------------------------------------------
# a run's files: read_split, load_task_data, --sst-synth, fingerprints, mlm.py's sentences


def run_args(folder, **given):
    """train.py's arguments that data.py reads: no file named, so every file is --data-dir's."""
    names = {f"{task}_{split}": None for task in TASKS for split in ("train", "dev", "test")}
    return SimpleNamespace(**{"data_dir": str(folder), "num_classes": None, "sst_synth": None, **names, **given})


def sst_file(folder, split, labels, header=SST_HEADER):
    rows = "".join(f"{i}\t{split}{i}\tsentence {i}\t{y}\n" for i, y in enumerate(labels))
    return write(folder, TASKS["sst"].files[split], header + rows)


def test_read_split_needs_labels_and_rows_and_warns_of_default_files_only(tmp_path, capsys):
    logged = []
    args = run_args(tmp_path)
    write(tmp_path, TASKS["sst"].files["train"], "\tid\tsentence\n0\ta\tfine\n")
    with pytest.raises(data.DataError, match=r"ids-sst-train\.csv:1: no label column 'sentiment'"):
        data.read_split(args, "sst", "train", logged.append)
    dev = sst_file(tmp_path, "dev", [])
    with pytest.raises(data.DataError, match=rf"^{dev}: no examples$"):
        data.read_split(args, "sst", "dev", logged.append)
    assert data.read_split(args, "sst", "test", logged.append) is None
    assert logged == [
        f"sst: no test file at {tmp_path / TASKS['sst'].files['test']}, so no test predictions (set --sst-test)"
    ]

    # the course's 8544 rows, one with an empty label (skipped, but a row of the file all the same)
    train = sst_file(tmp_path, "train", [i % 5 for i in range(8543)] + [""])
    logged.clear()
    assert len(data.read_split(args, "sst", "train", logged.append)) == 8543
    assert logged == []
    assert "ids-sst-train.csv: skipped 1 rows with an empty label (lines 8545)" in capsys.readouterr().err
    small = sst_file(tmp_path, "train", [0, 1, 2])
    assert len(data.read_split(args, "sst", "train", logged.append)) == 3
    assert logged == [f"warning: {train} has 3 rows; the course file has 8544"]
    logged.clear()
    assert len(data.read_split(run_args(tmp_path, sst_train=str(small)), "sst", "train", logged.append)) == 3
    assert logged == []  # a file named with --sst-train is not the course's: its size is the user's


def single_or_cross(task):
    return "single" if task == "sst" else "cross"


def test_load_task_data_checks_sentiment_labels_of_train_and_dev(tmp_path, tokenizer):
    header = PAIR_HEADER.format("similarity")
    write(tmp_path, TASKS["sts"].files["train"], header + "0\tt1\ta\tb\t1.5\n1\tt2\tc\td\t4\n")
    write(tmp_path, TASKS["sts"].files["dev"], header + "0\tv1\ta\tb\t0\n")
    splits, classes, synth = data.load_task_data(run_args(tmp_path), ["sts"], tokenizer, single_or_cross, print)
    assert classes == 5 and synth is None  # no sentiment task: the default 5 classes
    assert splits["train"]["sts"].example_ids == ["t1", "t2"] and splits["train"]["sts"].labels.tolist() == [1.5, 4.0]
    assert splits["dev"]["sts"].example_ids == ["v1"] and splits["test"] == {}

    sst_file(tmp_path, "train", [0, 1, 2, 3, 4])
    dev = sst_file(tmp_path, "dev", [0, 1, 2, 3, 4, 5])  # a dev label the model has no class for
    with pytest.raises(data.DataError, match=rf"^{dev}:7: sentiment 5 is not a class 0\.\.4 \(--num-classes 5\)"):
        data.load_task_data(run_args(tmp_path), ["sst"], tokenizer, single_or_cross, print)
    train = sst_file(tmp_path, "train", [0, 1, 2, 3, 4, 7])
    with pytest.raises(data.DataError, match=rf"^{train}:7: sentiment 7 implies 8 classes"):
        data.load_task_data(run_args(tmp_path), ["sst"], tokenizer, single_or_cross, print)


def test_sst_synth_rows_join_by_their_source_id(tmp_path):
    # course ids are hex, but an id may hold "-syn": a paraphrase's source is what precedes its last "-syn"
    real = [data.Example(id_, "x", None, y) for id_, y in (("a-syn1", 2), ("a-syn2", 3), ("b", 0), ("b-syn0", 1))]
    synth = write(
        tmp_path, "synth.jsonl", synth_line("a-syn1-syn0", "a-syn1", 2) + synth_line("a-syn2-syn0", "a-syn2", 3)
    )
    logged = []
    loaded = data.load_sst_synth(run_args(tmp_path, sst_synth=str(synth)), real, 5, logged.append)
    assert [ex.id for ex in loaded["rows"]] == ["a-syn1-syn0", "a-syn2-syn0"]
    assert {k: loaded[k] for k in ("file", "examples", "sources")} == {"file": str(synth), "examples": 2, "sources": 2}
    assert logged == [f"sst: + 2 synthetic paraphrases of 2 training sentences from {synth}"]
    for bad, problem in (
        (synth_line("b-syn0", "b", 1), "id 'b-syn0' is also an id of the real training rows"),
        (synth_line("b-syn1", "b", 5), "b-syn1 has label 5; sentiment has 5 classes"),
    ):
        write(tmp_path, "synth.jsonl", synth_line("b-syn2", "b", 0) + bad)
        with pytest.raises(data.DataError, match=rf"^{synth}:2: {problem}$"):
            data.load_sst_synth(run_args(tmp_path, sst_synth=str(synth)), real, 5)


def test_data_fingerprint_covers_train_dev_test_and_synth(tmp_path):
    for split in ("train", "dev", "test"):
        sst_file(tmp_path, split, [0, 1])
    write(tmp_path, TASKS["sts"].files["train"], "one")  # no sts dev or test file: nothing to hash
    synth = write(tmp_path, "synth.jsonl", "two")
    hashes = data.data_fingerprint(run_args(tmp_path, sst_synth=str(synth)), ["sst", "sts"])
    names = [*(TASKS["sst"].files[split] for split in ("train", "dev", "test")), TASKS["sts"].files["train"]]
    assert list(hashes) == [str(tmp_path / name) for name in names] + [str(synth)]
    # sha256 of the three bytes "one" and "two" (`printf one | sha256sum`)
    assert hashes[str(tmp_path / "sts-train.csv")] == "7692c3ad3540bb803c020b3aee66cd8887123234ea0c6e7143c0add73ff431ed"
    assert hashes[str(synth)] == "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3"


def test_train_sentences_are_both_sentences_of_every_training_row(tmp_path):
    sst_file(tmp_path, "train", [3, ""])  # an empty label: mlm.py reads no labels, the sentence counts
    write(tmp_path, TASKS["para"].files["train"], PAIR_HEADER.format("is_duplicate") + "0\tp1\tq a\tq b\t1\n")
    write(tmp_path, TASKS["sts"].files["train"], PAIR_HEADER.format("similarity") + "0\tt1\tx\ty\t\n1\tt2\tz\tw\t2\n")
    sentences, paths = data.train_sentences(run_args(tmp_path))
    assert sentences == ["sentence 0", "sentence 1", "q a", "q b", "x", "y", "z", "w"]
    assert paths == [str(tmp_path / TASKS[task].files["train"]) for task in ("sst", "para", "sts")]
    # a dev row in a training file is refused, its label empty or not
    dev = write(tmp_path, TASKS["para"].files["dev"], PAIR_HEADER.format("is_duplicate") + "0\tp1\tq a\tq b\t\n")
    with pytest.raises(data.DataError, match=rf"quora-train\.csv:2: id 'p1' is also row 2 of the dev file {dev}"):
        data.train_sentences(run_args(tmp_path))


# ----------------------------------------------------------------------------
# encoding and padding


def test_text_documents_one_per_non_blank_line_and_bad_bytes_named(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"  first document \n\n \t \nsecond\r\nthird")
    assert data.text_documents(path) == ["first document", "second", "third"]
    path.write_bytes(b"fine\nnot \xff utf-8\n")
    with pytest.raises(data.DataError, match=rf"{path}:2: not UTF-8 text \(byte 0xff at column 5\)"):
        data.text_documents(path)
    with pytest.raises(data.DataError, match="--text .*absent.txt: cannot read"):
        data.text_documents(tmp_path / "absent.txt")


def test_file_hashes_change_with_a_file(tmp_path):
    a, b = write(tmp_path, "a.txt", "one"), write(tmp_path, "b.txt", "two")
    before = data.file_hashes([a, b])
    assert list(before) == [str(a), str(b)] and before[str(a)] != before[str(b)]
    a.write_text("one!")
    after = data.file_hashes([a, b])
    assert after[str(a)] != before[str(a)] and after[str(b)] == before[str(b)]


def test_encode_cross_and_bi(tokenizer):
    cls_id, sep_id = tokenizer.cls_id, tokenizer.sep_id
    examples = [data.Example("p1", "A cat sat.", "Dogs bark loudly today", 1.0), data.Example("p2", "Hi", "Yo", 0.0)]
    words = {
        text: tokenizer.wordpiece.encode(text, add_special_tokens=False).ids
        for ex in examples
        for text in (ex.text_a, ex.text_b)
    }

    cross = data.encode(tokenizer, examples, "cross")
    assert len(cross.seqs) == 1
    ids, types = cross.seqs[0]
    for i, ex in enumerate(examples):
        a, b = words[ex.text_a], words[ex.text_b]
        assert ids[i].tolist() == [cls_id, *a, sep_id, *b, sep_id]
        assert types[i].tolist() == [0] * (len(a) + 2) + [1] * (len(b) + 1)
    assert cross.lengths.tolist() == [len(x) for x in ids]

    bi = data.encode(tokenizer, examples, "bi")
    assert len(bi.seqs) == 2
    for (ids, types), field in zip(bi.seqs, ("text_a", "text_b")):
        for i, ex in enumerate(examples):
            assert ids[i].tolist() == [cls_id, *words[getattr(ex, field)], sep_id]
            assert not types[i].any()  # no segment B in a bi-encoded sequence
    assert bi.lengths.tolist() == [max(len(bi.seqs[0][0][i]), len(bi.seqs[1][0][i])) for i in range(2)]
    assert bi.example_ids == ["p1", "p2"]
    assert bi.labels.dtype == np.float32


def test_encode_rejects_mixed_examples(tokenizer):
    with pytest.raises(ValueError, match="mix"):
        data.encode(tokenizer, [data.Example("a", "x", None, 1), data.Example("b", "x", "y", 1)])


def test_collate_pads_to_longest_in_batch(tokenizer):
    texts = ["short", "a somewhat longer sentence with more words", "mid length one"]
    sst = data.encode(tokenizer, [data.Example(str(i), t, None, i) for i, t in enumerate(texts)])
    batch = data.collate(sst, [2, 0])
    n2, n0 = sst.lengths[2], sst.lengths[0]
    assert batch["input_ids"].shape == (2, max(n2, n0))
    assert batch["attention_mask"].sum(1).tolist() == [n2, n0]
    assert batch["input_ids"][1, n0:].eq(0).all() and batch["attention_mask"][1, n0:].eq(0).all()
    assert batch["input_ids"][0, :n2].tolist() == sst.seqs[0][0][2].tolist()
    assert all(t.dtype == torch.long for t in batch.values())
    assert batch["labels"].tolist() == [2, 0]

    pairs = [data.Example(str(i), t, "b " * (3 - i), i / 2) for i, t in enumerate(texts)]
    bi = data.collate(data.encode(tokenizer, pairs, "bi"), [0, 1, 2])
    assert set(bi) == {"a", "b", "labels"}
    assert bi["a"]["input_ids"].shape == (3, max(sst.lengths))
    assert bi["b"]["input_ids"].shape == (3, 5)  # [CLS] b b b [SEP]
    assert bi["b"]["attention_mask"].sum(1).tolist() == [5, 4, 3]
    assert bi["labels"].dtype == torch.float32 and bi["labels"].tolist() == [0.0, 0.5, 1.0]
    assert bi["a"]["token_type_ids"].eq(0).all()

    cross = data.collate(data.encode(tokenizer, pairs, "cross"), [0])
    assert cross["token_type_ids"].max() == 1 and set(cross) == {
        "input_ids",
        "attention_mask",
        "token_type_ids",
        "labels",
    }

    test = data.encode(tokenizer, [data.Example("t", "x", None, None)])
    assert test.labels is None and "labels" not in data.collate(test, [0])


def test_encode_checks_its_settings_and_labels(tokenizer):
    with pytest.raises(ValueError, match="pair_encoding must be 'cross', 'bi' or 'single', got 'crosss'"):
        data.encode(tokenizer, [data.Example("a", "x", "y", 1.0)], "crosss")
    with pytest.raises(ValueError, match="some examples have labels and some do not"):
        data.encode(tokenizer, [data.Example("a", "x", None, 1), data.Example("b", "y", None, None)])
    mixed = data.encode(tokenizer, [data.Example("a", "x", None, 1), data.Example("b", "y", None, 2.5)])
    assert mixed.labels.dtype == np.float32 and mixed.labels.tolist() == [1.0, 2.5]  # 2.5 not cut to 2
    # bi-encoded: an example's length is its longer sentence's ([CLS] b [SEP] is 3, [CLS] b b b [SEP] 5)
    pairs = [data.Example("p1", "b", "b b b", 1.0), data.Example("p2", "b b b b", "b", 0.0)]
    assert data.encode(tokenizer, pairs, "bi").lengths.tolist() == [5, 6]


def hand_pairs():
    """Two cross-encoded pairs by hand: [CLS]=2 7 8 [SEP]=3 9 [SEP], and [CLS] 5 [SEP] 6 [SEP]."""
    ids = [np.array([2, 7, 8, 3, 9, 3], dtype=np.int32), np.array([2, 5, 3, 6, 3], dtype=np.int32)]
    types = [np.array([0, 0, 0, 0, 1, 1], dtype=np.int8), np.array([0, 0, 0, 1, 1], dtype=np.int8)]
    return data.TaskData(["p", "q"], [(ids, types)], np.array([1.0, 0.0], dtype=np.float32), np.array([6, 5]))


def test_collate_swaps_the_pairs_of_the_batch_in_its_order():
    batch = data.collate(hand_pairs(), [1, 0], swap=[True, False])  # q swapped: [CLS] 6 [SEP] 5 [SEP]
    assert batch["input_ids"].tolist() == [[2, 6, 3, 5, 3, 0], [2, 7, 8, 3, 9, 3]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]
    assert batch["labels"].tolist() == [0.0, 1.0]
    with pytest.raises(ValueError):  # a swap flag per example, no fewer
        data.collate(hand_pairs(), [0, 1], swap=[True])
    assert data.collate(hand_pairs(), (1, 0))["labels"].tolist() == [0.0, 1.0]  # any sequence of indices


def test_subset_keeps_each_example_with_its_own_label_and_length():
    for indices in ([1, 0], (1, 0)):
        part = data.subset(hand_pairs(), indices)
        assert part.example_ids == ["q", "p"] and part.labels.tolist() == [0.0, 1.0] and part.lengths.tolist() == [5, 6]
        assert [x.tolist() for x in part.seqs[0][0]] == [[2, 5, 3, 6, 3], [2, 7, 8, 3, 9, 3]]
        assert [x.tolist() for x in part.seqs[0][1]] == [[0, 0, 0, 1, 1], [0, 0, 0, 0, 1, 1]]


# ----------------------------------------------------------------------------
# batch order


def padded_tokens(lengths, batches):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_batch_order_covers_every_index_once_and_is_deterministic():
    lengths = np.random.default_rng(0).integers(3, 100, size=1003)
    for bucket in (True, False):
        batches = data.batch_order(lengths, 16, torch.Generator().manual_seed(1), bucket=bucket)
        assert sorted(i for b in batches for i in b) == list(range(1003))
        assert all(len(b) == 16 for b in batches if len(b) != 1003 % 16)
        assert batches == data.batch_order(lengths, 16, torch.Generator().manual_seed(1), bucket=bucket)
        assert batches != data.batch_order(lengths, 16, torch.Generator().manual_seed(2), bucket=bucket)


def test_batch_order_keeps_the_index_past_a_whole_number_of_chunks():
    # chunks of 2 batches of 2: five examples are one chunk of four and one of one
    for size in (1, 5):
        for bucket in (True, False):
            batches = data.batch_order(np.arange(size), 2, torch.Generator().manual_seed(0), bucket, bucket_batches=2)
            assert sorted(i for b in batches for i in b) == list(range(size))


def test_buckets_reduce_padding():
    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.lognormal(3, 0.8, size=2000).astype(int) + 3, 128)  # mostly short, a long tail
    bucketed = data.batch_order(lengths, 32, torch.Generator().manual_seed(0), bucket=True)
    shuffled = data.batch_order(lengths, 32, torch.Generator().manual_seed(0), bucket=False)
    assert padded_tokens(lengths, bucketed) < 0.7 * padded_tokens(lengths, shuffled)
    # the batches themselves still come in a random order, not sorted by length
    firsts = [lengths[b[0]] for b in bucketed]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)


def test_eval_order_sorted_longest_first():
    lengths = [5, 9, 2, 9, 7]
    batches = data.eval_order(lengths, 2)
    assert batches == [[1, 3], [4, 0], [2]]


def lengths_only(lengths):
    return data.TaskData([str(i) for i in range(len(lengths))], [], None, np.asarray(lengths))


def test_batch_stream_resumes_exactly():
    task = lengths_only(np.random.default_rng(0).integers(3, 60, size=50))
    reference = data.BatchStream(task, batch_size=8, seed=7)
    expected = [next(reference) for _ in range(30)]  # 7 batches per pass: crosses several passes
    assert sorted(i for b in expected[:7] for i in b) == list(range(50))
    assert expected[:7] != expected[7:14]  # each pass is reshuffled

    interrupted = data.BatchStream(task, batch_size=8, seed=7)
    first = [next(interrupted) for _ in range(11)]
    state = interrupted.state_dict()
    assert state["pass"] == 1 and state["pos"] == 4 and interrupted.passes == pytest.approx(1 + 4 / 7)
    resumed = data.BatchStream(task, batch_size=8, seed=7)
    resumed.load_state_dict(state)
    assert first + [next(resumed) for _ in range(19)] == expected
    # rewinding a stream that has moved on (into another pass) replays the same batches too
    [next(interrupted) for _ in range(10)]
    interrupted.load_state_dict(state)
    assert [next(interrupted) for _ in range(19)] == expected[11:]

    other_seed = data.BatchStream(task, batch_size=8, seed=8)
    assert [next(other_seed) for _ in range(7)] != expected[:7]
    with pytest.raises(ValueError, match="cannot resume"):
        data.BatchStream(task, batch_size=4, seed=7).load_state_dict(state)
    with pytest.raises(ValueError, match="cannot stream batches from an empty task"):
        data.BatchStream(lengths_only([]), batch_size=8, seed=7)


# Literal rows of the course files (headers and quoting as in data/, which the tests cannot rely on:
# CI has no data/ before `make data`): the readers' checks must keep accepting them.
COURSE_ROWS = {
    "sst": [
        "\tid\tsentence\tsentiment",
        "4\t1ade8c062b919bec94fb66db9\t Yet the act is still charming here .\t3",
        "8\t8e75aa92b8159de17f19119af\t a screenplay more ingeniously constructed than `` Memento ''\t4",
    ],
    "para": [
        "\tid\tsentence1\tsentence2\tis_duplicate",
        '318900\t7104b8e0a74571b0d816241ce\tIs love even real?\t"""Is love """"real""""?"""\t1.0',
        "152791\td0c9195d00cd4234d6201a7b8\tCan hamsters eat cucumber?\tCan hamsters eat grapes?\t1.0",
    ],
    "sts": [
        "\tid\tsentence1\tsentence2\tsimilarity",
        "449\t1047dcaead3ca64fe7bb22637\tThe couple danced in the church.\tA couple slow dances.\t3.2",
        "554\t8b39f1929d39d4ccdd97267b6\tA girl is eating a cupcake.\tA woman is eating a cupcake.\t2.6",
    ],
    "sst-test": [
        "0\t\tid\tsentence",
        "1\t0.0\tb7573736a6ddf7be102b7fee0\t Effective but too-tepid biopic",
        "5\t4.0\t5c7702977c14da0d25873551b\t Offers that rare combination of entertainment and education .",
    ],
}


@pytest.mark.parametrize("name", COURSE_ROWS)
def test_course_rows_still_read(tmp_path, name):
    path = tmp_path / f"{name}.csv"
    path.write_text("\n".join(COURSE_ROWS[name]) + "\n", encoding="utf-8")
    examples = data.read_examples(path, name.split("-")[0])
    assert len(examples) == 2 and all(len(ex.id) == 25 for ex in examples)


def test_overfit_batch_is_a_full_batch_never_a_short_tail():
    # After bucketing, a pass's first batch may be its short tail (47 rows in batches of 10: one of
    # 7); --overfit-batch took it, and under torchrun one smaller than the processes hung the run.
    lengths = np.random.default_rng(0).integers(5, 60, size=47)
    task = type("Task", (), {"lengths": lengths})()
    firsts = [next(data.BatchStream(task, 10, seed, overfit=True)) for seed in range(30)]
    assert all(len(batch) == 10 for batch in firsts)
    stream = data.BatchStream(task, 10, 0, overfit=True)
    assert [next(stream) for _ in range(3)] == [firsts[0]] * 3  # the same batch on every pass
    tails = [next(data.BatchStream(task, 10, seed)) for seed in range(30)]
    assert any(len(batch) < 10 for batch in tails)  # without it the first batch is sometimes the tail
