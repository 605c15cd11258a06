"""predict.py on a finished run: a prediction per line, and one `error: ...` line, never a
traceback, for an incomplete or foreign run folder, an unreadable --input, text that is not
UTF-8 and a batch size of 0."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import files
import predict
from heads import HeadConfig, MultitaskBert
from minbert import BertModel
from tasks import TASK_NAMES

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).parent.parent


@pytest.fixture
def run_dir(tmp_path):
    """A run folder as train.py leaves it (best.pt and tokenizer/), with the tiny random BERT."""
    bert = BertModel.from_pretrained(str(FIXTURES / "tiny_bert"))
    args = {"pair_encoding": "cross", "bi_head": "cosine", "dropout": 0.1, "pooling": "cls", "max_length": 32}
    model = MultitaskBert(bert, 5, HeadConfig.from_args(args))
    run = tmp_path / "run"
    (run / "tokenizer").mkdir(parents=True)
    files.copy_file(FIXTURES / "tiny_bert" / "vocab.txt", run / "tokenizer" / "vocab.txt")
    best = {"model": model.state_dict(), "encoder_config": bert.config.to_dict(), "num_classes": 5}
    files.save_torch({**best, "tasks": list(TASK_NAMES), "args": args, "epoch": 1}, run / "best.pt")
    return run


def run_main(monkeypatch, *argv, stdin=b""):
    """predict.main() with these arguments and stdin bytes (decoded as Python does under a C locale):
    the exit code or message it stopped with, or None when it finished."""
    monkeypatch.setattr(sys, "argv", ["predict.py", *map(str, argv)])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8", errors="surrogateescape"))
    try:
        predict.main()
    except SystemExit as e:
        return e.code
    return None


def test_predicts_a_line_per_example(run_dir, monkeypatch, capsys):
    assert run_main(monkeypatch, run_dir, "--task", "sst", stdin=b"a fine film .\n\nboring .\n") is None
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[2] for line in lines] == ["a fine film .", "boring ."]
    # each line's class and probabilities are the model's own, run here sentence by sentence
    model, tokenizer, _ = predict.load_trained(run_dir)
    for line, text in zip(lines, ["a fine film .", "boring ."], strict=True):
        ids = torch.tensor([tokenizer.encode(text).ids])
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
        with torch.no_grad():
            probs = model("sst", batch).softmax(-1)[0]  # (5,)
        label, raw = line.split("\t")[:2]
        assert int(label) == int(probs.argmax())
        assert json.loads(raw) == pytest.approx(probs.tolist(), abs=1e-4)


def truncate(path):
    path.write_bytes(path.read_bytes()[:1000])


def wrong_checkpoint(path):
    files.save_torch({"model": {}, "step": 3}, path)  # a checkpoint, but not train.py's best.pt


def other_model(path):
    best = files.load_torch(path)
    files.save_torch({**best, "num_classes": 3}, path)  # the weights are of a 5-class head


def oversized_vocab(path):  # more entries than the embedding has rows: an IndexError deep in torch once
    path.write_text(path.read_text() + "".join(f"extra{i}\n" for i in range(500)))


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda run: (run / "best.pt").unlink(), "best.pt: no such file (is "),
        (lambda run: (run / "tokenizer" / "vocab.txt").unlink(), "tokenizer/vocab.txt: no such file"),
        (lambda run: truncate(run / "best.pt"), "best.pt: not a best model of a train.py run: truncated or corrupt"),
        (lambda run: wrong_checkpoint(run / "best.pt"), "it has no 'encoder_config', 'num_classes', 'tasks', 'args'"),
        (lambda run: other_model(run / "best.pt"), "best.pt: does not hold a model this code can build"),
        (lambda run: (run / "tokenizer" / "vocab.txt").write_text("hello\n"), "missing the special token"),
        (lambda run: oversized_vocab(run / "tokenizer" / "vocab.txt"), "entries, but config.json has vocab_size"),
    ],
)
def test_a_broken_run_folder_is_one_line(run_dir, monkeypatch, breakage, message):
    breakage(run_dir)
    code = run_main(monkeypatch, run_dir, "--task", "sst", stdin=b"fine .\n")
    assert isinstance(code, str) and code.startswith("error: ") and message in code and "\n" not in code, code


def test_bad_input_is_one_line(run_dir, monkeypatch, capsys, tmp_path):
    code = run_main(monkeypatch, run_dir, "--task", "sst", "--input", tmp_path)
    assert code == f"error: {tmp_path}: Is a directory"
    code = run_main(monkeypatch, run_dir, "--task", "sst", "--input", tmp_path / "none.txt")
    assert code == f"error: {tmp_path / 'none.txt'}: No such file or directory"
    code = run_main(monkeypatch, run_dir, "--task", "sst", stdin=b"fine .\ncaf\xe9 .\n")
    assert code == "error: stdin: line 2: not UTF-8 text (byte 0xe9 at column 4)"
    code = run_main(monkeypatch, run_dir, "--task", "para", stdin=b"only one sentence\n")
    assert code == "error: stdin: line 1: expected two tab-separated sentences, found 1 field(s)"
    assert run_main(monkeypatch, run_dir, "--task", "sst", "--batch-size", "0") == 2
    assert "--batch-size must be at least 1" in capsys.readouterr().err


def test_invalid_utf8_on_a_real_pipe(run_dir):
    # Under a C locale Python hands stdin's undecodable bytes on as surrogates, which the
    # tokenizer rejects with a TypeError deep inside; they must be caught where they are read.
    env = {**os.environ, "LC_ALL": "C", "PYTHONIOENCODING": ""}
    cmd = [sys.executable, "predict.py", str(run_dir), "--task", "sst"]
    result = subprocess.run(cmd, input=b"\xff\xfe bad bytes\n", capture_output=True, cwd=ROOT, env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr.decode(errors="replace")
    assert result.stderr.decode().strip() == "error: stdin: line 1: not UTF-8 text (byte 0xff at column 1)"


def test_an_empty_sentence_of_a_pair_is_named_and_a_very_long_one_is_cut_not_refused(run_dir, monkeypatch, capsys):
    code = run_main(monkeypatch, run_dir, "--task", "para", stdin=b"fine .\tfine .\na cat .\t \n")
    assert code == "error: stdin: line 2: the second sentence of the pair is empty"
    code = run_main(monkeypatch, run_dir, "--task", "sts", stdin=b"\ta cat .\n")
    assert code == "error: stdin: line 1: the first sentence of the pair is empty"
    long = ("a long sentence " * 9000)[:140_000].strip()  # BERT reads its first max_length tokens
    assert run_main(monkeypatch, run_dir, "--task", "sst", stdin=long.encode() + b"\n") is None
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split("\t")[2] == long


def test_a_reader_that_stops_early_is_no_traceback(run_dir):
    """`predict.py ... | head -1`: the output (about 240 KB) outgrows the pipe, whose reader leaves."""
    cmd = [sys.executable, "predict.py", str(run_dir), "--task", "sst"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdin.write(b"a fine film with a cast of many .\n" * 3000)
    proc.stdin.close()
    assert proc.stdout.readline().count(b"\t") == 2
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err  # 128 + SIGPIPE, like cat | head -1


def test_a_full_disk_under_stdout_is_one_line(run_dir):
    with open("/dev/full", "wb") as full:  # every write fails with ENOSPC, as on a full disk
        cmd = [sys.executable, "predict.py", str(run_dir), "--task", "sst"]
        result = subprocess.run(cmd, input=b"a fine film .\n" * 3000, stdout=full, stderr=subprocess.PIPE, cwd=ROOT)
    assert result.returncode == 1  # (an OSError traceback once)
    assert result.stderr.decode().strip() == "error: cannot write the predictions to stdout (No space left on device)"
