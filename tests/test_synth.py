"""Tests for synth.py against a fake OpenAI-compatible server on 127.0.0.1 (never the real API):
scripted failures and retries, the reply contract, resume after a kill, Ctrl-C, the key and URL
credentials kept secret, label folders and models never mixed, and label mode's accuracy and
confusion matrix worked out by hand."""

import argparse
import collections
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY

import data
import files
import predictions
import synth
from tasks import TASKS

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "sk-FAKE-test-key-0123456789abcdef"
USAGE = {"prompt_tokens": 10, "completion_tokens": 20}  # what the fake server bills per reply


class FakeOpenAI:
    """POST /v1/chat/completions. `script[topic]` lists how to answer successive requests about
    one topic (a paraphrase prompt's sentence, a label prompt's first sentence); once it runs
    out, or for a topic without a script, the server answers well."""

    def __init__(self, delay=0.0):
        self.script, self.labels, self.delay = {}, {}, delay
        self.requests = []  # (topic, body, Authorization header, path, arrival time)
        self.in_flight = 0  # requests the server has not finished writing the reply to
        self.unanswered = self.max_unanswered = 0  # ... not begun to answer: what workers wait on at once
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.handle(self, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda request, address: None  # a client that timed out hung up
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def handle(self, handler, body):
        prompt = body["messages"][0]["content"]
        last = prompt.splitlines()[-1]
        batch = None if last.startswith("Sentence: ") else json.loads(last)
        topic = last.removeprefix("Sentence: ") if batch is None else batch[0]
        with self.lock:
            self.requests.append((topic, body, handler.headers["Authorization"], handler.path, time.monotonic()))
            step = self.script.get(topic, []).pop(0) if self.script.get(topic) else ("ok",)
            self.in_flight += 1
            self.unanswered += 1
            self.max_unanswered = max(self.max_unanswered, self.unanswered)
        answering = False
        try:
            time.sleep(self.delay)
            if step[0] == "slow":
                time.sleep(step[1])
            if step[0] == "status":
                reply, status, headers = {"error": {"message": step[2]}}, step[1], step[3] if len(step) > 3 else {}
            elif step[0] == "raw":  # a body as is (step[2], text)
                reply, status, headers = None, step[1], {}
            else:
                content = step[1] if step[0] == "content" else self.good_reply(prompt, topic, batch)
                reply, status, headers = self.completion(content, body["model"]), 200, {}
            data = json.dumps(reply).encode() if reply is not None else step[2].encode()
            with self.lock:  # from here the client may have its reply before this handler ends
                self.unanswered, answering = self.unanswered - 1, True
            handler.send_response(status)
            for name, value in {**headers, "Content-Type": "application/json", "Content-Length": len(data)}.items():
                handler.send_header(name, str(value))
            handler.end_headers()
            if step[0] == "cut":  # the reply announced in full, half of it sent, then the connection closes
                data = data[: len(data) // 2]
                handler.close_connection = True
            for piece in [data[i : i + 1] for i in range(len(data))] if step[0] == "trickle" else [data]:
                handler.wfile.write(piece)
                handler.wfile.flush()
                time.sleep(step[1] if step[0] == "trickle" else 0)  # trickle: a byte every step[1] s
        finally:
            with self.lock:
                self.in_flight -= 1
                self.unanswered -= 0 if answering else 1

    def good_reply(self, prompt, topic, batch):
        if batch is not None:
            return json.dumps([self.labels[s] for s in batch])
        n = int(prompt.split("Write ")[1].split()[0])
        return json.dumps(paraphrases(topic, n))

    @staticmethod
    def completion(content, model):
        message = {"role": "assistant", "content": content}
        return {
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": message}],
            "usage": USAGE,
        }

    def count(self, topic):
        return sum(r[0] == topic for r in self.requests)


def paraphrases(sentence, n):
    return [f"{sentence}, said another way ({k})" for k in range(n)]


@pytest.fixture
def server(monkeypatch):
    fake = FakeOpenAI()
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def sst_file(path, rows):
    """An SST-format file of (id, sentence, label) rows."""
    lines = ["\tid\tsentence\tsentiment"] + [f"{i}\t{id_}\t{s}\t{y}" for i, (id_, s, y) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def records(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n")[:-1]]


def expected_records(rows, n, model):
    return sorted(
        (f"{id_}-syn{k}", id_, y, text, model) for id_, s, y in rows for k, text in enumerate(paraphrases(s, n))
    )


def as_tuples(recs):
    return sorted((r["id"], r["source_id"], r["label"], r["text"], r["model"]) for r in recs)


FAST = ["--backoff", "0.001", "--rpm", "0"]


# ----------------------------------------------------------------------------
# the reply contract and the rate limit


@pytest.mark.parametrize(
    "reply, problem",
    [
        ("no json here", "not JSON"),
        ('{"a": 1}', "not a JSON array of strings"),
        ('["one", 2]', "not a JSON array of strings"),
        ('["one"]', "wrong number of paraphrases"),
        ('["one", "  "]', "empty paraphrase"),
        ('["one", "A  good film"]', "identical to the source"),
        ('["one", "One "]', "duplicate paraphrases"),
    ],
)
def test_paraphrase_contract_rejects(reply, problem):
    with pytest.raises(synth.Rejected, match=problem):
        synth.check_paraphrases(reply, "a good film", 2)


def test_paraphrase_contract_accepts_a_code_fence():
    assert synth.check_paraphrases('```json\n["one ", "two"]\n```', "a good film", 2) == ["one", "two"]
    assert synth.check_paraphrases('["one", "two"]', "a good film", 2) == ["one", "two"]


def test_label_contract():
    assert synth.check_labels("```\n[0, 4, 2]\n```", 3) == [0, 4, 2]
    for reply in ("[0, 4]", "[0, 5, 1]", "[0, true, 1]", "[0, 1.5, 1]", '["1", 2, 3]'):
        with pytest.raises(synth.Rejected):
            synth.check_labels(reply, 3)


def test_rate_limit_spaces_requests_evenly():
    slept = []
    limit = synth.RateLimit(rpm=60, clock=lambda: 100.0, sleep=slept.append)
    for _ in range(3):
        limit.wait()
    assert slept == [1.0, 2.0]  # three requests at t=100: the second waits 1 s, the third 2 s


# ----------------------------------------------------------------------------
# paraphrase mode


def test_scripted_failures_retries_and_rejections(server, tmp_path, capsys):
    rows = [(c, f"sentence {c}", k % 5) for k, c in enumerate("abcdefgh")]
    src = sst_file(tmp_path / "train.csv", rows)
    server.script = {
        "sentence b": [("status", 429, "slow down", {"Retry-After": "0.05"})],
        "sentence c": [("status", 500, "oops")],
        "sentence d": [("slow", 0.6)],  # longer than --timeout
        "sentence e": [
            ("content", "Sure! Here they are."),
            ("content", "```json\n" + json.dumps(paraphrases("sentence e", 2)) + "\n```"),
        ],
        "sentence f": [("content", '["only one"]')] * 2,  # wrong count twice: the row fails
        "sentence g": [("content", json.dumps(["sentence g", "other"]))],
        "sentence h": [("status", 500, "oops")] * 3,  # more 500s than --max-retries allows
    }
    out = tmp_path / "synth.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", "--model", "test-model"]
    argv += FAST + ["--workers", "2", "--timeout", "0.3", "--max-retries", "2", "--price-in", "1", "--price-out", "2"]
    assert synth.main(argv) == 1
    stdout = capsys.readouterr().out

    done = [r for r in rows if r[0] not in "fh"]
    assert as_tuples(records(out)) == expected_records(done, 2, "test-model")
    assert [server.count(f"sentence {c}") for c in "abcdefgh"] == [1, 2, 2, 2, 2, 2, 2, 3]
    assert "HTTP 429: slow down; retry 1/2 in 0.05 s" in stdout  # Retry-After, not our backoff
    retry_waits = [
        float(line.split(" in ")[1].split()[0]) for line in stdout.splitlines() if "HTTP 500: oops; retry" in line
    ]
    assert len(retry_waits) == 3 and max(retry_waits) <= 0.003  # --backoff 0.001, doubled once
    assert "no reply within --timeout 0.3 s; retry 1/2" in stdout
    # a: 1, b-g: 2 each, h: 3 = 16 requests; 200 replies (billed): a-c 1, d 1 (the slow one hung up), e-g 2 = 10
    assert "16 requests, 5 retries, 4 rejected replies" in stdout
    assert (
        "wrong number of paraphrases: 2" in stdout
        and "not JSON: 1" in stdout
        and "identical to the source: 1" in stdout
    )
    assert "100 prompt + 200 completion tokens; estimated cost $0.0005" in stdout  # (100 * 1 + 200 * 2) / 1e6
    assert "2 failed" in stdout and "  8/8 rows" in stdout and "rows/s  ETA" in stdout
    assert "  f: rejected: wrong number of paraphrases" in stdout
    assert "  h: HTTP 500: oops (gave up after 3 attempts)" in stdout
    assert {r[1]["model"] for r in server.requests} == {"test-model"}
    assert {r[2] for r in server.requests} == {f"Bearer {FAKE_KEY}"}
    assert {r[3] for r in server.requests} == {"/v1/chat/completions"}

    # run again: only the two failed rows are asked, and every row is in the file once
    n = len(server.requests)
    assert synth.main(argv) == 0
    assert "8 rows; 6 already in" in capsys.readouterr().out
    assert sorted(r[0] for r in server.requests[n:]) == ["sentence f", "sentence h"]
    assert as_tuples(records(out)) == expected_records(rows, 2, "test-model")
    assert len(data.read_synth(out)) == 16


def test_resume_redoes_an_interrupted_row_and_checks_n(server, tmp_path, capsys):
    rows = [("a", "sentence a", 1), ("b", "sentence b", 2), ("c", "sentence c", 3)]
    src = sst_file(tmp_path / "train.csv", rows)
    out = tmp_path / "synth.jsonl"
    first = as_dicts(expected_records(rows[:2], 2, "m"))
    # row a complete, row b cut short by a kill: one of its two records and half of the next line
    out.write_text("".join(synth.record_line(r) for r in first[:3]) + '{"id": "b-syn1", "sour', encoding="utf-8")
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", "--model", "m", *FAST]
    assert synth.main(argv) == 0
    stdout = capsys.readouterr().out
    assert (
        "dropping an unfinished last line" in stdout and "removing 1 paraphrases of the interrupted row 'b'" in stdout
    )
    assert sorted(r[0] for r in server.requests) == ["sentence b", "sentence c"]
    assert as_tuples(records(out)) == expected_records(rows, 2, "m")

    with pytest.raises(SystemExit, match=r"synth\.jsonl: row 'a' has 2 paraphrases, not --n 3"):
        synth.main([*argv[:5], "--n", "3", *argv[7:]])


def as_dicts(tuples):
    return [dict(zip(("id", "source_id", "label", "text", "model"), t)) for t in tuples]


def test_limit_dry_run_and_missing_key(server, tmp_path, capsys, monkeypatch):
    rows = [(f"r{k}", f"sentence {k}", 1) for k in range(5)]
    src = sst_file(tmp_path / "train.csv", rows)
    out = tmp_path / "data" / "synth.jsonl"  # its folder is made when needed
    base = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "4", *FAST]
    monkeypatch.delenv("OPENAI_API_KEY")
    assert synth.main([*base, "--limit", "2", "--dry-run", "--price-in", "1", "--price-out", "1"]) == 0
    stdout = capsys.readouterr().out
    assert "Write 4 different paraphrases" in stdout and "Sentence: sentence 0" in stdout
    # prompt: len/4 + 7 tokens each; completion: 4 * (10 / 4 + 3) = 22 tokens per row
    prompt_tokens = round(sum(len(synth.PARAPHRASE_PROMPT.format(n=4, sentence=s)) / 4 + 7 for _, s, _ in rows[:2]))
    assert f"2 requests, about {prompt_tokens:,} prompt + 44 completion tokens" in stdout
    assert f"estimated cost ${(prompt_tokens + 44) / 1e6:.4f}" in stdout
    assert server.requests == [] and not out.exists()
    with pytest.raises(SystemExit, match="error: OPENAI_API_KEY is not set"):
        synth.main(base)

    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    assert synth.main([*base, "--limit", "2"]) == 0
    assert as_tuples(records(out)) == expected_records(rows[:2], 4, "gpt-3.5-turbo")
    # A dry run prices only what is still to go (it once priced all 3 rows), and changes nothing:
    # neither an interrupted row's records (r2: 1 of 4) that a real run would remove, nor a torn
    # last line that a real run would cut.
    r2 = {"id": "r2-syn0", "source_id": "r2", "label": 1, "text": "a paraphrase", "model": "gpt-3.5-turbo"}
    with open(out, "ab") as f:
        f.write((json.dumps(r2) + "\n").encode())
        f.write(b'{"id": "r2-syn1", "sour')
    before = out.read_bytes()
    assert synth.main([*base, "--limit", "3", "--dry-run"]) == 0
    stdout = capsys.readouterr().out
    assert "3 rows; 2 already in" in stdout and "\n1 requests, about" in stdout and "Sentence: sentence 2" in stdout
    assert "prompt + 22 completion tokens" in stdout  # the row to go only: 4 * (10 / 4 + 3)
    assert out.read_bytes() == before and len(server.requests) == 2
    with pytest.raises(SystemExit, match="error: .*Is a directory"):
        synth.main([*base, "--out", str(tmp_path)])


def test_workers_run_requests_at_once(server, tmp_path):
    server.delay = 0.2
    rows = [(f"r{k}", f"sentence {k}", 1) for k in range(6)]
    src = sst_file(tmp_path / "train.csv", rows)
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--n", "1", *FAST]
    assert synth.main([*argv, "--workers", "3"]) == 0
    # (counted until the answer begins: a worker can have its whole reply, and send its next
    # request, while this handler is still between its last write and its end)
    assert 2 <= server.max_unanswered <= 3


def test_rpm_spaces_requests(server, tmp_path):
    rows = [(f"r{k}", f"sentence {k}", 1) for k in range(4)]
    src = sst_file(tmp_path / "train.csv", rows)
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--n", "1", "--backoff", "0.001"]
    assert synth.main([*argv, "--workers", "4", "--rpm", "600"]) == 0  # one request every 0.1 s
    arrivals = sorted(r[4] for r in server.requests)
    # 0.3 s from the first start to the fourth; less the first connection's setup, which can lag
    assert arrivals[-1] - arrivals[0] >= 0.2


# ----------------------------------------------------------------------------
# processes: killed mid-way, and the key


def run_synth(args, env, **kwargs):
    return subprocess.run(
        [sys.executable, "synth.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, **kwargs
    )


def child_env(server):
    return {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": FAKE_KEY}


def test_killed_run_resumes_writing_each_row_once(server, tmp_path, capsys):
    server.delay = 0.05
    rows = [(f"r{k}", f"sentence {k}", k % 5) for k in range(12)]
    src = sst_file(tmp_path / "train.csv", rows)
    out = tmp_path / "synth.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", "--workers", "1", *FAST]
    child = subprocess.Popen([sys.executable, "synth.py", *argv], cwd=ROOT, env=child_env(server))
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or out.read_text().count("\n") < 4):
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    written = out.read_text().count("\n")
    assert 4 <= written < 24  # killed mid-way

    assert synth.main(argv) == 0
    assert f"12 rows; {written // 2} already in" in capsys.readouterr().out
    assert as_tuples(records(out)) == expected_records(rows, 2, "gpt-3.5-turbo")


def test_the_key_appears_nowhere(server, tmp_path, capfd, monkeypatch):
    rows = [("a", "sentence a", 1), ("b", "sentence b", 2)]
    src = sst_file(tmp_path / "ids-sst-dev.csv", rows)
    server.labels = {"sentence a": 1, "sentence b": 3}
    # an API that echoes the key in its error text, as OpenAI's 401 does (partly masked); in a
    # process of its own, so that whatever Python prints on the way out is seen too
    server.script = {"sentence b": [("status", 401, f"Incorrect API key provided: {FAKE_KEY}.")]}
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--workers", "1", *FAST]
    refused = subprocess.run(
        [sys.executable, "synth.py", *argv], cwd=ROOT, env=child_env(server), capture_output=True, text=True
    )
    assert refused.returncode == 1 and "HTTP 401: Incorrect API key provided: [key]." in refused.stderr
    assert FAKE_KEY not in refused.stdout + refused.stderr

    assert synth.main(["label", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *FAST]) == 0
    with socket.socket() as s:  # a port nobody listens on: a connection error
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{s.getsockname()[1]}/v1")
    assert synth.main([*argv, "--max-retries", "1"]) == 1
    printed = capfd.readouterr()
    assert "cannot connect to" in printed.out and (tmp_path / "run" / "metrics.json").exists()
    assert FAKE_KEY not in printed.out + printed.err

    assert {r[2] for r in server.requests} == {f"Bearer {FAKE_KEY}"}  # it was sent, and only there
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) >= 6  # the input, the paraphrases, the labels, two predictions, metrics.json
    for path in written:
        assert FAKE_KEY.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------
# label mode


def test_label_accuracy_confusion_and_predictions(server, tmp_path, capsys):
    gold = [0, 1, 2, 3, 4, 4, 2]
    said = [0, 1, 3, 3, 4, 2, 2]  # 5 of 7 right; gold 2 -> 3 once, gold 4 -> 2 once
    rows = [(f"d{k}", f"sentence {k}", y) for k, y in enumerate(gold)]
    sst_file(tmp_path / "ids-sst-dev.csv", rows)
    server.labels = {s: y for (_, s, _), y in zip(rows, said)}
    server.script = {"sentence 3": [("content", "[3, 4]")]}  # the second batch answers too few labels once
    out = tmp_path / "run"
    argv = ["label", "--split", "dev", "--data-dir", str(tmp_path), "--out", str(out), "--batch-size", "3", *FAST]
    assert synth.main(argv) == 0
    stdout = capsys.readouterr().out

    batches = [json.loads(r[1]["messages"][0]["content"].splitlines()[-1]) for r in server.requests]
    assert sorted(map(len, batches)) == [1, 3, 3, 3]  # 3 + 3 + 1, and the rejected batch again
    assert {r[1]["temperature"] for r in server.requests} == {0.0}
    assert "accuracy 0.7143 (5/7)" in stdout
    expected = np.zeros((5, 5), dtype=int)
    for g, p in [(0, 0), (1, 1), (2, 3), (3, 3), (4, 4), (4, 2), (2, 2)]:
        expected[g, p] += 1
    assert "  2:     0     0     1     1     0" in stdout and "  4:     0     0     1     0     1" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dev"] == {"sst": pytest.approx(5 / 7)} and metrics["overall"] == pytest.approx(5 / 7)
    assert metrics["confusion"]["dev"]["sst"] == expected.tolist()
    ids, preds = predictions.read_output(out / "predictions" / "sst-dev-output.csv")
    assert ids == [r[0] for r in rows] and preds.tolist() == said
    ids, raws = predictions.read_raw(out / "predictions" / "sst-dev-raw.csv")
    assert ids == [r[0] for r in rows] and raws.tolist() == np.eye(5)[said].tolist()

    # a rerun finds every label recorded and asks nothing
    n = len(server.requests)
    assert synth.main(argv) == 0
    assert len(server.requests) == n
    assert json.loads((out / "metrics.json").read_text())["confusion"]["dev"]["sst"] == expected.tolist()


def test_label_failures_write_no_predictions(server, tmp_path, capsys):
    rows = [(f"d{k}", f"sentence {k}", 1) for k in range(4)]
    sst_file(tmp_path / "ids-sst-dev.csv", rows)
    server.labels = {s: 1 for _, s, _ in rows}
    server.script = {"sentence 2": [("content", "[9, 9]")] * 2}
    out = tmp_path / "run"
    argv = ["label", "--data-dir", str(tmp_path), "--out", str(out), "--batch-size", "2", *FAST]
    assert synth.main(argv) == 1
    stdout = capsys.readouterr().out
    assert "2 failed" in stdout and "  d2: rejected: labels not integers 0-4" in stdout
    assert not (out / "predictions").exists() and not (out / "metrics.json").exists()
    journal = out / "sst-dev-labels.jsonl"
    with open(journal, "ab") as f:  # a torn last line: the real run cuts it, a dry run leaves it
        f.write(b'{"id": "d2", "lab')
    before = journal.read_bytes()
    assert synth.main([*argv, "--dry-run"]) == 0  # prices the failed batch only (it once priced all 4)
    assert journal.read_bytes() == before
    assert "2 labelled already, 2 to go" in (stdout := capsys.readouterr().out) and "\n1 requests" in stdout
    assert "prompt + 4 completion tokens" in stdout  # 2 tokens a label to go, not 2 * 4
    assert synth.main(argv) == 0  # the rerun asks only for the failed batch
    assert collections.Counter(r[0] for r in server.requests) == {"sentence 0": 1, "sentence 2": 3}
    assert predictions.read_output(out / "predictions" / "sst-dev-output.csv")[1].tolist() == [1, 1, 1, 1]


def test_a_reply_trickling_in_is_cut_at_the_timeout_and_asked_again(server, tmp_path, capsys):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    server.script = {"sentence a": [("trickle", 0.02)]}  # each read is quick, the whole reply takes seconds
    out = tmp_path / "synth.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", *FAST, "--timeout", "0.3"]
    assert synth.main(argv) == 0  # (it once waited for the whole trickle, and took it)
    assert server.count("sentence a") == 2 and "no reply within --timeout 0.3 s; retry 1/" in capsys.readouterr().out
    assert as_tuples(records(out)) == expected_records([("a", "sentence a", 1)], 2, "gpt-3.5-turbo")


def test_a_reply_cut_short_is_asked_again(server, tmp_path, capsys):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    server.script = {"sentence a": [("cut",)]}
    out = tmp_path / "synth.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", *FAST]
    assert synth.main(argv) == 0  # (urllib3's IncompleteRead once escaped as a traceback)
    assert server.count("sentence a") == 2 and "cannot connect to" in capsys.readouterr().out
    assert as_tuples(records(out)) == expected_records([("a", "sentence a", 1)], 2, "gpt-3.5-turbo")


def test_label_refuses_a_gold_label_outside_sst5_before_any_request(server, tmp_path):
    sst_file(tmp_path / "ids-sst-dev.csv", [("d0", "good film", 3), ("d1", "bad film", 5)])
    server.labels = {"good film": 2, "bad film": 2}
    out = tmp_path / "run"
    # (it once paid for every label, wrote predictions/, then died on the confusion matrix)
    with pytest.raises(SystemExit, match=r"ids-sst-dev\.csv:3: sentiment 5 is not a class 0\.\.4"):
        synth.main(["label", "--data-dir", str(tmp_path), "--out", str(out), *FAST])
    assert server.requests == [] and not out.exists()


def test_bad_flags_are_one_line_errors(capsys):
    for argv, flag in (
        (["paraphrase", "--input", "x", "--out", "y", "--n", "0"], "--n must be at least 1"),
        (["label", "--workers", "0"], "--workers must be at least 1"),
        (["label", "--timeout", "0"], "--timeout must be a positive"),
    ):
        with pytest.raises(SystemExit):
            synth.main(argv)
        assert flag in capsys.readouterr().err


def test_bad_records_and_base_url_are_one_line_errors(server, tmp_path, monkeypatch):
    rows = [("d0", "sentence 0", 1)]
    sst_file(tmp_path / "ids-sst-dev.csv", rows)
    (tmp_path / "run").mkdir()
    journal = [{"id": "d0", "label": 1}, {"id": "d1", "label": 7}]
    journal = "".join(
        synth.record_line({**r, "model": "gpt-3.5-turbo", "prompt": synth.LABEL_PROMPT_ID}) for r in journal
    )
    (tmp_path / "run" / "sst-dev-labels.jsonl").write_text(journal)
    argv = ["label", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *FAST]
    with pytest.raises(SystemExit, match=r"sst-dev-labels\.jsonl:2: expected a record"):
        synth.main(argv)
    monkeypatch.setenv("OPENAI_BASE_URL", "127.0.0.1:1/v1")  # no scheme
    with pytest.raises(SystemExit, match="cannot send a request .*check OPENAI_BASE_URL"):
        synth.main([*argv[: -len(FAST)], "--out", str(tmp_path / "other"), *FAST])
    assert server.requests == []


@pytest.mark.parametrize(
    "header, wait",
    [(None, None), ("2", 2.0), ("0.25", 0.25), ("-3", 0.0), ("99999", 600.0), ("inf", None), ("nan", None)]
    + [("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_retry_after(header, wait):
    assert synth.retry_after({} if header is None else {"Retry-After": header}) == wait


# ----------------------------------------------------------------------------
# secrets: blanked before any cut, and URL credentials never printed or written


def test_a_key_straddling_the_cut_of_an_error_body_is_blanked(server, tmp_path, capsys):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    # not JSON, so the body itself is shown, cut to 300 characters: the key starts 14 before the cut
    body = "x" * 286 + FAKE_KEY + " was refused"
    server.script = {"sentence a": [("raw", 500, body)] * 2}
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--max-retries", "1", *FAST]
    assert synth.main(argv) == 1
    printed = capsys.readouterr()
    assert "x; retry 1/1" not in printed.out and "xxx[key]" in printed.out  # blanked, then cut
    assert FAKE_KEY[:6] not in printed.out + printed.err


def test_credentials_in_urls_are_never_printed_or_written(server, tmp_path, monkeypatch, capfd):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1), ("b", "sentence b", 2)])
    secrets = ("alice-user", "pw-SECRET-9876", "proxy-PASS-5432")
    server.script = {
        "sentence a": [("status", 500, "busy")] * 2,  # retry lines
        "sentence b": [("status", 401, "no such user alice-user")],  # an error that names the URL
    }
    creds_url = server.url.replace("http://", "http://alice-user:pw-SECRET-9876@")
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--workers", "1", *FAST]
    # in a process of its own, so that whatever Python prints on the way out is seen too
    refused = run_synth(argv, {**child_env(server), "OPENAI_BASE_URL": creds_url})
    assert refused.returncode == 1 and "HTTP 500: busy; retry 1/5" in refused.stdout
    assert "http://[credentials]@127.0.0.1" in refused.stderr and "no such user [credentials]" in refused.stderr
    printed = [refused.stdout, refused.stderr]

    with socket.socket() as s:  # a port nobody listens on: "cannot connect to URL" on every retry
        s.bind(("127.0.0.1", 0))
        closed = f"127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://alice-user:pw-SECRET-9876@{closed}/v1")
    assert synth.main([*argv, "--max-retries", "2"]) == 1
    printed += capfd.readouterr()
    assert f"cannot connect to http://[credentials]@{closed}/v1" in printed[-2]
    monkeypatch.setenv("http_proxy", f"http://u:proxy-PASS-5432@{closed}")
    monkeypatch.setenv("NO_PROXY", "")
    assert synth.main([*argv, "--max-retries", "1"]) == 1
    printed += capfd.readouterr()
    assert "gave up after 2 attempts" in printed[-2]
    monkeypatch.setenv("OPENAI_BASE_URL", f"alice-user:pw-SECRET-9876@{closed}/v1")  # no scheme
    with pytest.raises(SystemExit, match=r"\[credentials\]@127.*cannot send a request") as refused:
        synth.main(argv)
    printed += [str(refused.value), *capfd.readouterr()]
    assert not any(secret in text for secret in secrets for text in printed), printed
    for path in tmp_path.rglob("*"):
        assert path.is_dir() or not any(secret.encode() in path.read_bytes() for secret in secrets), path


# ----------------------------------------------------------------------------
# label folders, models and journals


def test_label_refuses_an_out_it_did_not_write(server, tmp_path, data_dir):
    run = tmp_path / "run"
    train = [sys.executable, "train.py", "--task", "sst", "--model", str(TINY), "--data-dir", str(data_dir)]
    done = subprocess.run(
        [*train, "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "8", "--out", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    before, before_all = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}, list(run.rglob("*"))
    argv = ["label", "--data-dir", str(data_dir), *FAST]
    with pytest.raises(SystemExit, match=r"synth\.py label did not write this; .*run is not a folder of its own"):
        synth.main([*argv, "--out", str(run)])
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written

    # its metrics.json alone is not label mode's either, nor is a link, even to label mode's folder
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "metrics.json").write_bytes(before[run / "metrics.json"])
    with pytest.raises(SystemExit, match=r"alone/metrics\.json: not written by synth\.py label"):
        synth.main([*argv, "--out", str(alone)])
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "predictions").symlink_to(run / "predictions")
    with pytest.raises(SystemExit, match=r"linked/predictions: synth\.py label did not write this"):
        synth.main([*argv, "--out", str(linked)])
    assert server.requests == [] and {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before

    # nor a new folder or file inside the run, in either mode (dry runs included: the flag is wrong)
    para = ["paraphrase", "--input", str(data_dir / TASKS["sst"].files["train"]), *FAST]
    for command, out in ((argv, run / "llm"), (para, run / "more" / "para.jsonl")):
        for dry in ([], ["--dry-run"]):
            message = rf"--out {out} is inside the run {run.resolve()}: choose a folder outside it"
            with pytest.raises(SystemExit, match=message):
                synth.main([*command, "--out", str(out), *dry])
    assert server.requests == [] and sorted(run.rglob("*")) == sorted(before_all)


def test_paraphrase_never_repairs_a_file_it_did_not_write(server, tmp_path):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    other = tmp_path / "notes.txt"
    other.write_text('{"id": "x"}\nnot a journal, and no newline at the end')
    argv = ["paraphrase", "--input", str(src), "--out", str(other), *FAST]
    with pytest.raises(SystemExit, match=r"notes\.txt:1: expected a record with fields id, source_id"):
        synth.main(argv)
    assert other.read_text().endswith("no newline at the end") and server.requests == []


def test_another_model_is_refused_not_credited(server, tmp_path, capsys):
    rows = [(f"d{k}", f"sentence {k}", 1) for k in range(4)]
    sst_file(tmp_path / "ids-sst-dev.csv", rows)
    server.labels = {s: 1 for _, s, _ in rows}
    server.script = {"sentence 2": [("content", "[9, 9]")] * 2}  # one batch fails: a journal, no metrics.json
    out = tmp_path / "run"
    argv = ["label", "--data-dir", str(tmp_path), "--out", str(out), "--batch-size", "2", *FAST]
    assert synth.main([*argv, "--model", "model-a"]) == 1
    n = len(server.requests)
    with pytest.raises(SystemExit, match=r"sst-dev-labels\.jsonl:1: written by --model 'model-a', not 'model-b'"):
        synth.main([*argv, "--model", "model-b"])
    assert synth.main([*argv, "--model", "model-a"]) == 0  # the same model resumes
    with pytest.raises(SystemExit, match=r"metrics\.json: labels by --model 'model-a', not 'model-b'"):
        synth.main([*argv, "--model", "model-b"])
    with pytest.raises(SystemExit, match=r"metrics\.json: labels by --model 'model-a', not 'model-b'"):
        synth.main([*argv, "--model", "model-b", "--split", "test"])  # another split, the same folder
    assert len(server.requests) == n + 1 and {r[1]["model"] for r in server.requests} == {"model-a"}
    assert json.loads((out / "metrics.json").read_text())["model"] == "model-a"

    src = sst_file(tmp_path / "train.csv", rows[:1])
    para = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), *FAST]
    assert synth.main([*para, "--model", "model-a"]) == 0
    with pytest.raises(SystemExit, match=r"s\.jsonl:1: written by --model 'model-a', not 'model-b'"):
        synth.main([*para, "--model", "model-b"])
    capsys.readouterr()


def test_line_separators_in_replies_round_trip(server, tmp_path, capsys):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1), ("b", "sentence b", 2)])
    texts = ["one\u2028line", "next\x85line", "para\u2029graph\x1cfile"]
    server.script = {"sentence a": [("content", json.dumps(texts))]}
    out = tmp_path / "s.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "3", "--workers", "1", *FAST]
    assert synth.main([*argv, "--limit", "1"]) == 0
    assert synth.main(argv) == 0  # resumes: reads the journal back
    assert "2 rows; 1 already in" in capsys.readouterr().out
    assert [ex.text_a for ex in data.read_synth(out)][:3] == texts
    assert len(records(out)) == 6


def test_journal_bytes_that_are_not_utf8_name_their_line(server, tmp_path):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1), ("b", "sentence b", 1)])
    out = tmp_path / "s.jsonl"
    good = synth.record_line(as_dicts(expected_records([("a", "sentence a", 1)], 1, "gpt-3.5-turbo"))[0])
    out.write_bytes(good.encode() + b'{"id": "b\xff-syn0"}\n')
    with pytest.raises(SystemExit, match=r"s\.jsonl:2: not UTF-8 text \(byte 0xff at column 10\)"):
        synth.main(["paraphrase", "--input", str(src), "--out", str(out), "--n", "1", *FAST])
    assert server.requests == []


def test_a_dev_only_label_folder_says_test_is_needed_for_an_ensemble(server, tmp_path, capsys):
    rows = [("d0", "sentence 0", 1), ("d1", "sentence 1", 3)]
    sst_file(tmp_path / "ids-sst-dev.csv", rows)
    (tmp_path / TASKS["sst"].files["test"]).write_text("\tid\tsentence\n0\tt0\tsentence 2\n")
    server.labels = {"sentence 0": 1, "sentence 1": 3, "sentence 2": 0}
    argv = ["label", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *FAST]
    assert synth.main(argv) == 0
    assert "--split test --out" in capsys.readouterr().out
    assert synth.main([*argv, "--split", "test"]) == 0
    assert "--split test --out" not in capsys.readouterr().out


# ----------------------------------------------------------------------------
# Ctrl-C


@pytest.mark.parametrize("where", ["in flight", "asleep in a backoff"])
def test_ctrl_c_sends_nothing_more_and_exits_130(server, tmp_path, where):
    rows = [(f"r{k}", f"sentence {k}", 1) for k in range(6)]
    src = sst_file(tmp_path / "train.csv", rows)
    server.script = {s: [("status", 500, "busy")] * 100 for _, s, _ in rows}  # every request fails
    argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--workers", "2", "--rpm", "0"]
    if where == "in flight":  # slow replies, short waits: a signal finds requests on the wire
        server.delay, started = 0.3, 4
        argv += ["--backoff", "0.01", "--max-retries", "10"]
    else:  # quick replies, then both workers wait 2.5-7.5 s before their retries
        started = 2
        argv += ["--backoff", "5", "--max-retries", "3"]
    child = subprocess.Popen(
        [sys.executable, "synth.py", *argv], cwd=ROOT, env=child_env(server), stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        len(server.requests) < started or (where != "in flight" and server.in_flight)
    ):
        time.sleep(0.01)
    with server.lock:
        sent, in_flight = time.monotonic(), server.in_flight
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=60)
    time.sleep(0.5)  # a request sent after the signal would have arrived by now
    after = [r for r in server.requests if r[4] > sent]
    # a worker whose request the server holds sends nothing more; one may have a request on the wire
    assert len(after) <= (2 - in_flight if where == "in flight" else 0), (len(after), in_flight)
    assert child.returncode == 130, out


# ----------------------------------------------------------------------------
# replies and flags that make no sense


def test_replies_that_make_no_sense_fail_their_row(server, tmp_path, capsys):
    rows = [(c, f"sentence {c}", 1) for c in "abcdef"]
    src = sst_file(tmp_path / "train.csv", rows)
    content = json.dumps(json.dumps(paraphrases("sentence x", 2)))  # the reply text, as a JSON string

    def reply(usage, pad=""):
        return f'{{"choices": [{{"message": {{"content": {content}}}}}], "usage": {usage}{pad}}}'

    server.script = {
        "sentence a": [("raw", 200, reply('"lots"'))] * 2,
        "sentence b": [("raw", 200, reply("[10, 20]"))] * 2,
        "sentence c": [("raw", 200, reply('{"prompt_tokens": 1e400}'))] * 2,
        "sentence d": [("raw", 200, reply("{}", ', "pad": "' + "x" * (2 << 20) + '"'))] * 2,
        "sentence e": [("content", json.dumps(["x" * 5000, "short"]))] * 2,  # a "paraphrase" of 5,000 characters
    }
    out = tmp_path / "s.jsonl"
    argv = ["paraphrase", "--input", str(src), "--out", str(out), "--n", "2", "--max-retries", "0", *FAST]
    assert synth.main(argv) == 1
    stdout = capsys.readouterr().out
    for c, why in zip(
        "abcde", ["usage is not token counts"] * 3 + ["reply over 1 MiB", "paraphrase far longer than its source"]
    ):
        assert f"  {c}: rejected: {why}" in stdout
    assert [r["source_id"] for r in records(out)] == ["f", "f"]


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--timeout", "inf", "--timeout must be a positive number of seconds, at most 3600"),
        ("--backoff", "1e300", "--backoff must be a positive number of seconds, at most 600"),
        ("--price-in", "-3", "--price-in must be a finite number >= 0"),
        ("--price-out", "nan", "--price-out must be a finite number >= 0"),
        ("--price-in", "inf", "--price-in must be a finite number >= 0"),
        ("--rpm", "nan", "--rpm must be a finite number >= 0"),
    ],
)
def test_flags_that_make_no_sense_are_refused(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        synth.main(["label", "--out", "nowhere", flag, value])
    assert message in capsys.readouterr().err


def test_a_key_an_http_header_cannot_carry_is_one_line(server, tmp_path, monkeypatch, capfd):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ключ-0123")
    with pytest.raises(SystemExit, match="OPENAI_API_KEY holds a character an HTTP header cannot carry"):
        synth.main(["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), *FAST])
    assert server.requests == [] and "ключ" not in "".join(capfd.readouterr())


def test_a_second_process_on_the_same_output_is_refused_before_any_request(server, tmp_path):
    src = sst_file(tmp_path / "ids-sst-dev.csv", [("a", "sentence a", 1), ("b", "sentence b", 3)])
    out, folder = tmp_path / "sst-synth.jsonl", tmp_path / "labels"
    server.labels = {"sentence a": 1, "sentence b": 3}
    # the other process's lock: this process is alive, so the lock is never taken for stale
    with files.locked(tmp_path, name=".sst-synth.jsonl.lock"):
        with pytest.raises(SystemExit, match=r"is in use: process \d+ .* is writing into it"):
            synth.main(["paraphrase", "--input", str(src), "--out", str(out), *FAST])
    with files.locked(folder):
        with pytest.raises(SystemExit, match=r"labels is in use: process \d+ .* is writing into it"):
            synth.main(["label", "--data-dir", str(tmp_path), "--out", str(folder), *FAST])
    assert server.requests == [] and not out.exists() and [p.name for p in folder.iterdir()] == []
    # once the other process is done, both run, and leave no lock behind
    assert synth.main(["paraphrase", "--input", str(src), "--out", str(out), *FAST]) == 0
    assert synth.main(["label", "--data-dir", str(tmp_path), "--out", str(folder), *FAST]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if "lock" in p.name) == []
    assert not (folder / files.LOCK).exists()


# ----------------------------------------------------------------------------
# pinned where mutations of synth.py survived: contract bounds, token counts, cost, metrics, secrets


def test_paraphrase_contract_bounds():
    source = "a good film"  # 11 characters: a paraphrase may have 4 * 11 + 100 = 144
    assert synth.check_paraphrases(json.dumps(["x" * 144, "two"]), source, 2) == ["x" * 144, "two"]
    with pytest.raises(synth.Rejected, match="far longer than its source"):
        synth.check_paraphrases(json.dumps(["x" * 145, "two"]), source, 2)
    with pytest.raises(synth.Rejected, match="wrong number of paraphrases"):
        synth.check_paraphrases('["one", "two", "three"]', source, 2)  # one too many is not n either
    with pytest.raises(synth.Rejected, match="not JSON"):
        synth.check_paraphrases("```", source, 2)  # a fence and nothing else
    # a fence ends at the last ```: one inside a paraphrase stays
    assert synth.check_paraphrases('```json\n["a ``` b", "two"]\n```', source, 2) == ["a ``` b", "two"]


def test_label_contract_bounds():
    for reply in ("[-1, 0, 1]", "[0, 1, 2, 3]"):  # below class 0; one label too many
        with pytest.raises(synth.Rejected):
            synth.check_labels(reply, 3)


def completion_bytes(usage, content="[1]"):
    reply = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    return json.dumps(reply if usage is None else {**reply, "usage": usage}).encode()


def test_token_counts_at_their_bounds():
    stats = synth.Stats()
    client = synth.Client("http://127.0.0.1:1/v1", FAKE_KEY, "m", 1.0, 0, 1.0, 0, stats)
    assert client.read_reply(completion_bytes({"prompt_tokens": 3, "completion_tokens": 4})) == "[1]"
    assert client.read_reply(completion_bytes({"prompt_tokens": 0, "completion_tokens": 10**8})) == "[1]"
    assert client.read_reply(completion_bytes(None)) == "[1]"  # no usage: nothing billed
    assert (stats.counts["prompt_tokens"], stats.counts["completion_tokens"]) == (3, 4 + 10**8)
    for usage in (
        {"prompt_tokens": -1},
        {"completion_tokens": 10**8 + 1},
        {"prompt_tokens": True},
        {"prompt_tokens": 1.0},
    ):
        with pytest.raises(synth.Rejected, match="usage is not token counts"):
            client.read_reply(completion_bytes(usage))
    with pytest.raises(synth.Rejected, match="not a chat completion"):
        client.read_reply(completion_bytes({}, content=None))
    # a reply of exactly MAX_REPLY_BYTES is read; one byte more is not
    exact = completion_bytes({})
    exact = exact[:-1] + b', "pad": "' + b"x" * (synth.MAX_REPLY_BYTES - len(exact) - 11) + b'"}'
    assert len(exact) == synth.MAX_REPLY_BYTES and client.read_reply(exact) == "[1]"
    with pytest.raises(synth.Rejected, match="reply over 1 MiB"):
        client.read_reply(exact[:-2] + b'x"}')
    assert (stats.counts["prompt_tokens"], stats.counts["completion_tokens"]) == (3, 4 + 10**8)


def test_cost_by_list_price_and_by_flags():
    def cost(model, prompt, completion, price_in=None, price_out=None):
        args = argparse.Namespace(model=model, price_in=price_in, price_out=price_out)
        return synth.cost_text(args, prompt, completion)

    # gpt-4o: $2.50 per 1M prompt tokens, $10 per 1M completion tokens
    assert cost("gpt-4o", 1_000_000, 100_000).startswith("estimated cost $3.5000 ")  # 2.5 + 1.0
    assert cost("gpt-4o-mini", 2_000_000, 1_000_000).startswith("estimated cost $0.9000 ")  # 0.30 + 0.60
    assert cost("gpt-3.5-turbo", 2_000_000, 0).startswith("estimated cost $1.0000 ")  # 2 * 0.50
    assert cost("gpt-4-turbo", 0, 1_000_000).startswith("estimated cost $30.0000 ")
    # a flag replaces one list price, the other stays; 0 is a price (a local server), not "unset"
    assert cost("gpt-4o", 1_000_000, 1_000_000, price_in=1).startswith("estimated cost $11.0000 ")  # 1 + 10
    assert cost("gpt-4o", 1_000_000, 1_000_000, price_out=1).startswith("estimated cost $3.5000 ")  # 2.5 + 1
    assert cost("gpt-4o", 1_000_000, 1_000_000, price_in=0, price_out=0).startswith("estimated cost $0.0000 ")
    # an unlisted model needs both prices
    assert cost("local", 10, 10, price_in=1).startswith("cost unknown: no price listed for local")
    assert cost("local", 10, 10, price_out=1).startswith("cost unknown: no price listed for local")
    assert cost("local", 10**6, 10**6, price_in=1, price_out=3).startswith("estimated cost $4.0000 ")


def test_label_metrics_of_every_split_are_kept_and_overall_is_dev_only(server, tmp_path):
    sst_file(tmp_path / "ids-sst-dev.csv", [("d0", "sentence 0", 1), ("d1", "sentence 1", 3)])
    (tmp_path / TASKS["sst"].files["test"]).write_text("\tid\tsentence\n0\tt0\tsentence 2\n")
    sst_file(tmp_path / "ids-sst-train.csv", [("r0", "sentence 3", 4)])
    server.labels = {"sentence 0": 1, "sentence 1": 2, "sentence 2": 0, "sentence 3": 4}  # dev: 1 of 2 right
    argv = ["label", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *FAST]
    for split in ("dev", "test", "train"):
        assert synth.main([*argv, "--split", split]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dev"] == {"sst": 0.5} and metrics["train"] == {"sst": 1.0} and "test" not in metrics
    assert metrics["overall"] == 0.5  # dev's, not train's 1.0
    assert sorted(metrics["config"]) == ["dev", "test", "train"]
    assert metrics["confusion"]["dev"]["sst"][3] == [0, 0, 1, 0, 0]  # gold 3 said 2
    assert metrics["confusion"]["train"]["sst"][4] == [0, 0, 0, 0, 1]
    assert sorted(metrics["confusion"]) == ["dev", "train"]


def test_redact_blanks_every_form_of_every_secret():
    try:
        # the key holds the URL's password: the longer secret goes first, so none of the key shows
        synth.set_secrets("sk-abc123-xyz9", ["http://alice:abc123@h/v1"])
        assert synth.redact("sk-abc123-xyz9 alice") == "[key] [credentials]"
        synth.set_secrets("sk-key-0000", ["http://user%40x:p%40ss-word@h/v1"])  # both percent-encoded
        text = "user%40x p%40ss-word user@x p@ss-word"
        assert synth.redact(text) == " ".join(["[credentials]"] * 4)
        synth.set_secrets("abcd", [])  # 4 characters: blanked
        assert synth.redact("xabcdx") == "x[key]x"
        synth.set_secrets("abc", ["http://u:pw@h"])  # under 4: left alone, as are "u" and "pw"
        assert synth.redact("abc u pw") == "abc u pw"
    finally:
        synth.SECRETS.clear()


def test_proxy_credentials_of_upper_case_variables_are_secrets(server, tmp_path, monkeypatch, capsys):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1)])
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy-user:proxy-PASS-5432@127.0.0.1:9")
    try:
        argv = ["paraphrase", "--input", str(src), "--out", str(tmp_path / "s.jsonl"), "--dry-run"]
        assert synth.main(argv) == 0
        assert synth.redact("proxy-user proxy-PASS-5432") == "[credentials] [credentials]"
    finally:
        synth.SECRETS.clear()
    capsys.readouterr()


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--batch-size", "0", "--batch-size must be at least 1"),
        ("--limit", "0", "--limit must be at least 1"),
        ("--max-retries", "-1", "--max-retries must be at least 0"),
    ],
)
def test_counts_below_their_minimum_are_refused(flag, value, message, capsys):
    with pytest.raises(SystemExit):
        synth.parse_args(["label", flag, value])
    assert message in capsys.readouterr().err


def test_flags_at_their_bounds_are_taken():
    args = synth.parse_args(["label", "--timeout", "3600", "--backoff", "600", "--max-retries", "0"])
    assert (args.timeout, args.backoff, args.max_retries) == (3600.0, 600.0, 0)
    args = synth.parse_args(["label", "--price-in", "0", "--price-out", "0", "--rpm", "0", "--limit", "1"])
    assert (args.price_in, args.price_out, args.rpm, args.limit) == (0.0, 0.0, 0.0, 1)


def test_resume_checks_every_record_before_it_appends(server, tmp_path):
    src = sst_file(tmp_path / "train.csv", [("a", "sentence a", 1), ("b", "sentence b", 2)])
    out = tmp_path / "s.jsonl"
    # row a's one paraphrase under the id of another row: resuming would count a as done
    record = {"id": "b-syn0", "source_id": "a", "label": 1, "text": "a paraphrase", "model": "gpt-3.5-turbo"}
    out.write_text(synth.record_line(record), encoding="utf-8")
    with pytest.raises(SystemExit, match=r"s\.jsonl:1: id 'b-syn0' is not '\{source_id\}-syn\{k\}' for 'a'"):
        synth.main(["paraphrase", "--input", str(src), "--out", str(out), "--n", "1", *FAST])
    assert server.requests == [] and out.read_text(encoding="utf-8") == synth.record_line(record)


def test_resume_refuses_a_row_with_more_paraphrases_than_n(tmp_path):
    out = tmp_path / "s.jsonl"
    written = as_dicts(expected_records([("a", "sentence a", 1)], 2, "m"))  # a-syn0, a-syn1
    out.write_text("".join(map(synth.record_line, written)), encoding="utf-8")
    with pytest.raises(data.DataError, match=r"row 'a' has 2 paraphrases, not --n 1"):
        synth.resume_paraphrases(out, 1, "m")
    assert synth.resume_paraphrases(out, 2, "m") == {"a"}


def test_label_limit_asks_and_scores_the_first_rows_only(server, tmp_path, capsys):
    sst_file(tmp_path / "ids-sst-dev.csv", [("d0", "sentence 0", 1), ("d1", "sentence 1", 3)])
    server.labels = {"sentence 0": 1, "sentence 1": 0}
    out = tmp_path / "run"
    assert synth.main(["label", "--data-dir", str(tmp_path), "--out", str(out), "--limit", "1", *FAST]) == 0
    assert "accuracy 1.0000 (1/1)" in capsys.readouterr().out and [r[0] for r in server.requests] == ["sentence 0"]
    assert predictions.read_output(out / "predictions" / "sst-dev-output.csv")[0] == ["d0"]


GOOD_LABEL = {"id": "d0", "label": 1, "model": "gpt-3.5-turbo", "prompt": synth.LABEL_PROMPT_ID}


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"prompt": None}, "expected a record {'id', 'label', 'model', 'prompt'}"),  # None: the field left out
        ({"id": 0}, "expected a record {'id': str, 'label': 0-4"),
        ({"label": True}, "expected a record {'id': str, 'label': 0-4"),
        ({"label": 5}, "expected a record {'id': str, 'label': 0-4"),
        ({"prompt": "0123456789ab"}, "labelled with another prompt"),
    ],
)
def test_label_journal_records_are_checked(server, tmp_path, change, problem):
    sst_file(tmp_path / "ids-sst-dev.csv", [("d0", "sentence 0", 1)])
    (tmp_path / "run").mkdir()
    record = {k: v for k, v in {**GOOD_LABEL, **change}.items() if v is not None}
    (tmp_path / "run" / "sst-dev-labels.jsonl").write_text(synth.record_line(record))
    with pytest.raises(SystemExit, match=rf"sst-dev-labels\.jsonl:1: {re.escape(problem)}"):
        synth.main(["label", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run"), *FAST])
    assert server.requests == []
