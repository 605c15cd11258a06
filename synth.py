"""Synthetic sentiment data and LLM labels from a chat-completions model ("Tuning Up BERT", §4.3).

SST-5 has 8,544 training sentences and a model overfits them. The report asked GPT-3.5 Turbo for
paraphrases of each training sentence that keep its sentiment and share few of its words; each
paraphrase takes its source's label, and about 100K of them raised SST dev accuracy from 0.530
to 0.540 (Table 2). New sentences labelled by the model were the report's first idea, but
GPT-4 Turbo labelled SST dev with accuracy only 0.548 (GPT-3.5 and GPT-4o lower): its labels
disagree with the SST annotators', so paraphrases carry the human label instead. `label` mode
repeats that measurement, and writes its labels as a run folder that ensemble.py can use.

    python synth.py paraphrase --input data/ids-sst-train.csv --out data/sst-synth.jsonl --n 12
    python synth.py label --split dev --out runs/llm-labels
    python synth.py paraphrase --input data/ids-sst-train.csv --out x.jsonl --n 12 --dry-run

The client is plain `requests`: POST $OPENAI_BASE_URL/chat/completions (default OpenAI's), key from
$OPENAI_API_KEY. Any OpenAI-compatible server works (vLLM, llama.cpp's server). The key is sent
in one header and nowhere else. Every message the tool prints passes one function, redact(),
which blanks the key and any user:password@ of a URL in use (the API's, a proxy's), so an API
that echoes the key in its error text cannot make us print it.

Paraphrases are appended to the JSONL file one source row at a time, and labels to a journal
in the label folder, so an interrupted run resumes where it stopped; data.read_synth reads the
paraphrases back for training. Each record names the model that wrote it, and a rerun with
another --model is refused rather than mixed in. One process at a time writes a file or folder (a
second refuses: files.locked). Ctrl-C stops every request at once (exit 130).
"""

import argparse
import collections
import hashlib
import io
import json
import math
import os
import queue
import random
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np
import requests

import analysis
import data
import files
import hub
import predictions
from loop import format_time
from tasks import TASKS, overall

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# List prices in USD per 1M tokens (input, output), from OpenAI's pricing page as of June 2026.
# Override with --price-in / --price-out for other models or servers (a local server costs 0).
PRICES = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4-turbo": (10.00, 30.00),
}

PARAPHRASE_PROMPT = """\
Here is a sentence from a movie review. Write {n} different paraphrases of it.
Each paraphrase must express exactly the same sentiment (equally negative, neutral or positive)
and should use as few of the original's words as possible while reading naturally.
Answer with a JSON array of exactly {n} strings and nothing else.

Sentence: {sentence}"""

LABEL_PROMPT = """\
Rate the sentiment of each movie-review sentence below on a 5-point scale:
0 negative, 1 somewhat negative, 2 neutral, 3 somewhat positive, 4 positive.
Answer with a JSON array of exactly {n} integers, one per sentence, in order, and nothing else.

Sentences (a JSON array):
{sentences}"""

# Varied paraphrases want sampling; labels want the model's single best answer.
PARAPHRASE_TEMPERATURE, LABEL_TEMPERATURE = 1.0, 0.0
CLASSES = 5  # SST-5's classes 0..4
# Label records name the prompt they were asked with, so a journal from another prompt is refused.
LABEL_PROMPT_ID = hashlib.sha256(f"{LABEL_PROMPT}{LABEL_TEMPERATURE}".encode()).hexdigest()[:12]

MAX_WAIT = 600.0  # seconds: the longest pause between retries (our backoff or a server's Retry-After)
MAX_TIMEOUT = 3600.0  # seconds: --timeout's ceiling; no reply is worth waiting an hour for
# A reply is read up to 1 MiB: 12 paraphrases of SST's longest sentence (284 characters) are
# under 5 KB, so anything near the cap is not an answer, and a hostile server cannot fill memory.
MAX_REPLY_BYTES = 1 << 20
MAX_TOKENS = 10**8  # token counts a reply may bill; beyond this a usage field is nonsense


# ----------------------------------------------------------------------------
# what the tool prints: every message passes redact(), so no credential reaches the screen

SECRETS = {}  # secret text -> what to print instead: the key and URL credentials, set by main()


def url_credentials(url):
    """The user name and password of a URL's user:password@ part, as written and percent-decoded."""
    try:
        parts = urllib.parse.urlsplit(url if "//" in url else f"//{url}")  # "user:pw@host/v1" too
        found = [x for x in (parts.username, parts.password) if x]
    except ValueError:  # a malformed URL: requests refuses it with a message of our own
        return []
    return found + [urllib.parse.unquote(x) for x in found]


def redact(text):
    """text with every secret blanked; longest first, so no secret leaves part of a longer one."""
    text = str(text)
    for secret in sorted(SECRETS, key=len, reverse=True):
        text = text.replace(secret, SECRETS[secret])
    return text


def say(text="", file=None):
    print(redact(text), file=file or sys.stdout, flush=True)


class APIError(Exception):
    """The API refused the request (a 4xx other than 429): retrying cannot help, so the run stops."""


class GaveUp(Exception):
    """A request still failed (429, 5xx, timeout, connection) after --max-retries retries."""


class Rejected(ValueError):
    """A reply broke the reply contract (not a JSON array of the right length and kind)."""


class ClientStopped(Exception):
    """The client was told to stop (Ctrl-C or an error elsewhere set its `stop`): a worker sends nothing more."""


# ----------------------------------------------------------------------------
# the client


class Stats:
    """Counters shared by the worker threads."""

    def __init__(self):
        self.counts = collections.Counter()
        self.reasons = collections.Counter()  # why replies were rejected
        self.lock = threading.Lock()

    def add(self, reason=None, **counts):
        with self.lock:
            self.counts.update(counts)
            if reason:
                self.reasons[reason] += 1


class RateLimit:
    """At most `rpm` requests start per minute, evenly spaced; rpm 0 means no limit.
    sleep(seconds) returns True to cut the wait short (the client's stop event)."""

    def __init__(self, rpm, clock=time.monotonic, sleep=time.sleep):
        self.interval = 60.0 / rpm if rpm else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_start = 0.0
        self.lock = threading.Lock()

    def wait(self):
        with self.lock:  # reserve the next slot, then sleep outside the lock
            now = self.clock()
            start = max(now, self.next_start)
            self.next_start = start + self.interval
        if start > now:
            self.sleep(start - now)


class Client:
    """POST chat completions with retries: exponential backoff with jitter on 429, 5xx, timeouts
    and connection errors (a server's Retry-After wins), up to max_retries retries.
    Setting `stop` ends every worker's requests: each checks it before sending and wakes from
    any wait (rate limit, backoff) at once."""

    def __init__(self, base_url, key, model, timeout, max_retries, backoff, rpm, stats):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.shown_url = hub.without_credentials(self.url)
        self._key = key
        self.model, self.timeout, self.max_retries, self.backoff = model, timeout, max_retries, backoff
        self.stop = threading.Event()
        self.limit, self.stats = RateLimit(rpm, sleep=self.stop.wait), stats
        self.local = threading.local()  # one Session (kept-alive connection) per worker thread

    def post(self, body):
        """(status, headers, reason, body bytes) of one request; the body is read up to
        MAX_REPLY_BYTES + 1 bytes, and the connection dropped if there is more. The whole request
        gets --timeout seconds: requests' own timeout bounds each read only, so a server trickling
        its reply a byte at a time could hold a worker for ever (raises requests.Timeout)."""
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        headers = {"Authorization": f"Bearer {self._key}"}
        post, deadline = self.local.session.post, time.monotonic() + self.timeout
        with post(self.url, json=body, headers=headers, timeout=self.timeout, stream=True) as response:
            content = bytearray()
            for chunk in hub.arrived(response, 1 << 16):  # what has come, so the deadline is checked
                content += chunk
                if time.monotonic() > deadline:
                    raise requests.Timeout(f"reply not complete after {self.timeout} s")
                if len(content) > MAX_REPLY_BYTES:
                    break
            return response.status_code, response.headers, response.reason, bytes(content)

    def chat(self, prompt, temperature):
        """The reply's text; counts requests, retries and tokens in self.stats."""
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": temperature}
        for attempt in range(self.max_retries + 1):
            self.limit.wait()
            if self.stop.is_set():
                raise ClientStopped
            self.stats.add(requests=1)
            wait = None
            try:
                status, headers, reason, content = self.post(body)
            except requests.Timeout:
                problem = f"no reply within --timeout {self.timeout:g} s"
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):  # the type says enough
                problem = f"cannot connect to {self.shown_url}"
            except requests.RequestException as e:  # a malformed URL, say: retrying cannot help
                raise APIError(
                    f"{self.shown_url}: cannot send a request ({type(e).__name__}); check OPENAI_BASE_URL"
                ) from None
            else:
                if status == 200:
                    return self.read_reply(content)
                problem = f"HTTP {status}: {error_text(content, reason)}"
                if status != 429 and status < 500:
                    raise APIError(f"{self.shown_url}: {problem}")
                wait = retry_after(headers)
            if attempt == self.max_retries:
                raise GaveUp(f"{problem} (gave up after {attempt + 1} attempts)")
            if wait is None:  # 1, 2, 4, ... times --backoff, each scaled by a random 0.5..1.5
                wait = min(self.backoff * 2.0 ** min(attempt, 30) * (0.5 + random.random()), MAX_WAIT)
            self.stats.add(retries=1)
            say(f"  {problem}; retry {attempt + 1}/{self.max_retries} in {wait:.3g} s")
            if self.stop.wait(wait):
                raise ClientStopped

    def read_reply(self, content):
        """The text of a chat completion; its token counts go to self.stats."""
        if len(content) > MAX_REPLY_BYTES:
            raise Rejected(f"reply over {MAX_REPLY_BYTES >> 20} MiB")
        try:
            reply = json.loads(content)
            text = reply["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            raise Rejected("not a chat completion") from None
        if not isinstance(text, str):
            raise Rejected("not a chat completion")
        usage = reply.get("usage") or {}
        tokens = [usage.get(k, 0) for k in ("prompt_tokens", "completion_tokens")] if isinstance(usage, dict) else []
        if len(tokens) != 2 or not all(type(k) is int and 0 <= k <= MAX_TOKENS for k in tokens):
            raise Rejected("usage is not token counts")  # 1e400, "12", a list: nothing to bill by
        self.stats.add(prompt_tokens=tokens[0], completion_tokens=tokens[1])
        return text


def error_text(content, reason):
    """The API's own error message ({"error": {"message": ...}}), else the body, else the reason:
    secrets blanked first, then cut to 300 characters (cutting first could keep half a key)."""
    try:
        text = str(json.loads(content)["error"]["message"])
    except (ValueError, KeyError, IndexError, TypeError, RecursionError):
        text = content.decode("utf-8", "replace") or reason
    return redact(" ".join(text.split()))[:300]


def retry_after(headers):
    """Seconds the server asks us to wait (Retry-After), or None."""
    try:
        seconds = float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff
    return min(max(seconds, 0.0), MAX_WAIT) if math.isfinite(seconds) else None


# ----------------------------------------------------------------------------
# the reply contract


def parse_json_reply(text):
    """A reply's JSON, accepting a Markdown code fence around it (```json ... ```)."""
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: [[[[...]]]] nested too deep
        raise Rejected("not JSON") from None


def normalise(text):
    return " ".join(text.lower().split())


def check_paraphrases(reply, source, n):
    """The n paraphrases of a reply, or Rejected naming what breaks the contract.
    A paraphrase reads about as long as its source; one over 4 times as long (+100 characters,
    for short sources) is not one, and would enter the training file as is."""
    items = parse_json_reply(reply)
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise Rejected("not a JSON array of strings")
    if len(items) != n:
        raise Rejected("wrong number of paraphrases")
    items = [x.strip() for x in items]
    if not all(items):
        raise Rejected("empty paraphrase")
    if max(map(len, items)) > 4 * len(source) + 100:
        raise Rejected("paraphrase far longer than its source")
    if normalise(source) in map(normalise, items):
        raise Rejected("identical to the source")
    if len(set(map(normalise, items))) != n:
        raise Rejected("duplicate paraphrases")
    return items


def check_labels(reply, n):
    items = parse_json_reply(reply)
    if not isinstance(items, list) or len(items) != n:
        raise Rejected("wrong number of labels")
    if not all(type(x) is int and 0 <= x < CLASSES for x in items):
        raise Rejected("labels not integers 0-4")
    return items


def ask(client, prompt, temperature, check):
    """check(reply) of one prompt, asking a second time if the first reply is rejected.
    Returns (result, None) or (None, why it failed)."""
    for _ in range(2):
        try:
            return check(client.chat(prompt, temperature)), None
        except Rejected as e:
            client.stats.add(rejections=1, reason=str(e))
            why = f"rejected: {e}"
        except GaveUp as e:
            why = str(e)
            break  # its retries are spent already
    return None, why


# ----------------------------------------------------------------------------
# running many requests: a pool of workers, progress, and an append-only record of results


def run_jobs(work, items, workers, unit, stop):
    """Yield (item, work(item)) as the workers finish them, printing the rate and ETA every 5 s.
    Leaving early (an error, Ctrl-C) sets `stop`, so no worker sends another request. Workers
    are daemon threads: the process exits without waiting for replies still in flight, which
    would be thrown away anyway (only this thread writes results)."""
    todo, finished = queue.SimpleQueue(), queue.SimpleQueue()
    for item in items:
        todo.put(item)

    def worker():
        while not stop.is_set():
            try:
                item = todo.get_nowait()
            except queue.Empty:
                return
            try:
                finished.put((item, work(item), None))
            except Exception as e:  # APIError, ClientStopped, a bug: the main thread decides
                finished.put((item, None, e))

    for _ in range(min(workers, len(items))):
        threading.Thread(target=worker, daemon=True).start()
    start = last = time.time()
    try:
        for done in range(1, len(items) + 1):
            item, result, error = finished.get()
            if error is not None:
                raise error
            yield item, result
            now = time.time()
            if now - last >= 5 or done == len(items):
                rate = done / max(now - start, 1e-9)
                eta = format_time((len(items) - done) / rate)
                say(f"  {done}/{len(items)} {unit}  {rate:.2f} {unit}/s  ETA {eta}")
                last = now
    finally:
        stop.set()


def record_line(record):
    return json.dumps(record, ensure_ascii=False) + "\n"


def read_journal(path, check, repair=True):
    """The records of an append-only JSONL file, each passed to check(record), which returns a
    problem or None. Lines end at '\\n' alone: a reply may hold U+2028 or U+0085, which
    str.splitlines() would also split at. A last line without '\\n' was torn by a kill; it is cut
    off (repair; a dry run only reads), but only once every whole line has passed, so a file of
    something else is never touched."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise data.DataError(f"{path}: cannot read: {e.strerror or e}") from None
    whole = raw[: raw.rfind(b"\n") + 1]
    records = []
    for line, text in data.text_lines(path, io.BytesIO(whole)):  # decoded line by line: file:line errors
        try:
            record = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise data.DataError(f"{path}:{line}: not a JSON record ({getattr(e, 'msg', 'nested too deep')})") from None
        problem = check(record)
        if problem:
            raise data.DataError(f"{path}:{line}: {problem}")
        records.append(record)
    if len(whole) < len(raw) and repair:
        say(f"{path}: dropping an unfinished last line (the run writing it was interrupted)")
        files.write_text(path, whole.decode("utf-8"))
    return records


def model_problem(record, model):
    """Why a record's model rules out resuming with --model `model` (None if it does not)."""
    if record["model"] != model:
        return (
            f"written by --model {record['model']!r}, not {model!r}: resume with that --model, "
            "or write to another --out (one file holds one model's answers)"
        )
    return None


# ----------------------------------------------------------------------------
# paraphrase mode


def paraphrase_problem(record, model):
    if not isinstance(record, dict) or set(record) != set(data.SYNTH_FIELDS):
        return f"expected a record with fields {', '.join(data.SYNTH_FIELDS)} (not a file synth.py wrote?)"
    return model_problem(record, model)


def resume_paraphrases(path, n, model, repair=True):
    """Source ids whose n paraphrases are all in the file. Only the last row can be incomplete
    (a kill during its write); its records are removed (repair) so that it is asked again."""
    records = read_journal(path, lambda record: paraphrase_problem(record, model), repair)
    if not records:
        return set()
    if repair:  # (a dry run prices only; the run itself checks every record before it appends)
        data.read_synth(path)  # every record valid, ids unique
    counts = collections.Counter(r["source_id"] for r in records)
    last = records[-1]["source_id"]
    for source, count in counts.items():
        if count > n or (count < n and source != last):
            raise data.DataError(
                f"{path}: row {source!r} has {count} paraphrases, not --n {n}: "
                "resume with the --n that wrote the file, or write to another --out"
            )
    if counts[last] < n:
        if repair:
            say(f"{path}: removing {counts[last]} paraphrases of the interrupted row {last!r}")
            files.write_text(path, "".join(record_line(r) for r in records if r["source_id"] != last))
        del counts[last]
    return set(counts)


def out_outside_runs(out):
    """--out as a Path, unless it lies inside a run folder (a train.py run's: synth.py did not make it)."""
    if problem := files.in_a_run(out, "--out"):
        raise data.DataError(problem)
    return Path(out)


def paraphrase(args, client):
    """Ask for args.n paraphrases of each row; returns the rows that failed."""
    rows = data.read_examples(args.input, "sst", labelled=True)[: args.limit]
    prompts = {ex.id: PARAPHRASE_PROMPT.format(n=args.n, sentence=ex.text_a.strip()) for ex in rows}
    out = out_outside_runs(args.out)
    if args.dry_run:  # the price of what is still to go
        todo = paraphrase_todo(args, rows, out, repair=False)
        # paraphrases are about as long as their source, plus quotes and commas
        completion = sum(args.n * (len(ex.text_a) / 4 + 3) for ex in todo)
        return dry_run(args, [prompts[ex.id] for ex in todo], completion)
    # one process per file: two would both ask for the rows still to go and write each id twice
    with files.locked(out.parent, say, name=f".{out.name}.lock"):
        return paraphrase_rows(args, client, paraphrase_todo(args, rows, out), prompts, out)


def paraphrase_todo(args, rows, out, repair=True):
    """The rows whose paraphrases are not all in --out yet."""
    done = resume_paraphrases(out, args.n, args.model, repair)
    todo = [ex for ex in rows if ex.id not in done]
    say(f"{args.input}: {len(rows)} rows; {len(rows) - len(todo)} already in {out}, {len(todo)} to go")
    return todo


def paraphrase_rows(args, client, todo, prompts, out):
    """Ask for the paraphrases of `todo`, appending each row's to --out; returns the rows that failed."""

    def work(ex):
        check = lambda reply: check_paraphrases(reply, ex.text_a, args.n)
        return ask(client, prompts[ex.id], PARAPHRASE_TEMPERATURE, check)

    failed = []
    for ex, (texts, why) in run_jobs(work, todo, args.workers, "rows", client.stop):
        if texts is None:
            failed.append(f"{ex.id}: {why}")
            continue
        records = [
            {"id": f"{ex.id}-syn{k}", "source_id": ex.id, "label": ex.label, "text": text, "model": args.model}
            for k, text in enumerate(texts)
        ]
        files.append_text(out, "".join(map(record_line, records)))  # the whole row in one write
    return failed


# ----------------------------------------------------------------------------
# label mode


SPLITS = ("train", "dev", "test")
# What label mode writes into --out; anything else there means the folder is not its own.
LABEL_FOLDER = {"metrics.json", "predictions", files.LOCK, *(f"sst-{split}-labels.jsonl" for split in SPLITS)}
LABEL_PREDICTIONS = {f"sst-{split}-{kind}.csv" for split in SPLITS for kind in ("output", "raw")}


def own_name(name, names):
    """Whether `name` is one of `names` or the temporary file files.atomic_write makes for one
    (.NAME.xxxx.tmp, which only a kill leaves behind)."""
    return name in names or any(name.startswith(f".{n}.") and name.endswith(".tmp") for n in names)


def read_label_metrics(path):
    """The metrics.json in label mode's --out as a dict: a JSON object, else DataError."""
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:  # ValueError: not JSON, not UTF-8
        raise data.DataError(f"{path}: cannot read it as JSON ({type(e).__name__})") from None
    if not isinstance(metrics, dict):
        raise data.DataError(f"{path}: not a JSON object")
    return metrics


def check_label_folder(out, model):
    """Refuse an --out that holds anything label mode did not write, before anything is written:
    a train.py run's predictions and metrics.json would be replaced. Label mode's own output is
    sst-{split}-labels.jsonl, predictions/sst-{split}-{output,raw}.csv and a metrics.json whose
    source is "synth.py label"; links are never its own. One folder holds one model's labels."""
    if not out.exists():
        return
    if not out.is_dir():
        raise data.DataError(f"{out}: not a folder (--out is the run folder label mode writes)")
    entries = [(entry, LABEL_FOLDER) for entry in out.iterdir()]
    if (out / "predictions").is_dir():
        entries += [(entry, LABEL_PREDICTIONS) for entry in (out / "predictions").iterdir()]
    for entry, names in entries:
        if entry.is_symlink() or not own_name(entry.name, names) or entry.is_dir() != (entry.name == "predictions"):
            raise data.DataError(
                f"{entry}: synth.py label did not write this; {out} is not a folder of its own "
                "(a train.py run?): label into a new folder"
            )
    if (out / "metrics.json").exists():
        metrics = read_label_metrics(out / "metrics.json")
        if metrics.get("source") != "synth.py label":
            raise data.DataError(f"{out / 'metrics.json'}: not written by synth.py label: label into a new folder")
        if metrics.get("model") != model:
            raise data.DataError(
                f"{out / 'metrics.json'}: labels by --model {metrics.get('model')!r}, not {model!r}: "
                "label into another --out (one folder holds one model's labels)"
            )


def label_problem(record, model):
    if not isinstance(record, dict) or set(record) != {"id", "label", "model", "prompt"}:
        return (
            "expected a record {'id', 'label', 'model', 'prompt'} (a journal of an older synth.py, or not one at all)"
        )
    label = record["label"]
    if not (isinstance(record["id"], str) and type(label) is int and 0 <= label < CLASSES):
        return "expected a record {'id': str, 'label': 0-4, ...}"
    if record["prompt"] != LABEL_PROMPT_ID:
        return "labelled with another prompt (by another version of synth.py): label into another --out"
    return model_problem(record, model)


def read_labels(path, model, repair=True):
    """{id: label} of label mode's journal of replies, each record checked."""
    records = read_journal(path, lambda r: label_problem(r, model), repair)
    return {record["id"]: record["label"] for record in records}


def label(args, client):
    """Label the split's sentences, batch_size per request; returns the sentences that failed."""
    out = out_outside_runs(args.out)
    check_label_folder(out, args.model)
    path = args.input or Path(args.data_dir) / TASKS["sst"].files[args.split]
    rows = data.read_examples(path, "sst")[: args.limit]
    for ex in rows:  # scored against CLASSES labels: a stray one must stop here, before any request
        if ex.label is not None and not 0 <= ex.label < CLASSES:
            raise data.DataError(f"{path}:{ex.line}: sentiment {ex.label} is not a class 0..{CLASSES - 1} of SST-5")
    if args.dry_run:
        return label_rows(args, client, out, path, rows)
    with files.locked(out, say):  # one process per folder: two would ask for every label twice
        return label_rows(args, client, out, path, rows)


def label_rows(args, client, out, path, rows):
    """Label the rows not in the journal yet; predictions once all are labelled. The rows that failed."""
    journal = out / f"sst-{args.split}-labels.jsonl"
    labels = read_labels(journal, args.model, repair=not args.dry_run)
    todo = [ex for ex in rows if ex.id not in labels]
    say(f"{path}: {len(rows)} sentences; {len(rows) - len(todo)} labelled already, {len(todo)} to go")
    batches = [todo[i : i + args.batch_size] for i in range(0, len(todo), args.batch_size)]
    prompt = lambda batch: LABEL_PROMPT.format(
        n=len(batch), sentences=json.dumps([ex.text_a.strip() for ex in batch], ensure_ascii=False)
    )
    if args.dry_run:
        return dry_run(args, [prompt(batch) for batch in batches], 2 * len(todo))  # "3, " is about 2 tokens

    out.mkdir(parents=True, exist_ok=True)
    work = lambda batch: ask(client, prompt(batch), LABEL_TEMPERATURE, lambda reply: check_labels(reply, len(batch)))
    failed = []
    for batch, (got, why) in run_jobs(work, batches, args.workers, "requests", client.stop):
        if got is None:
            failed += [f"{ex.id}: {why}" for ex in batch]
            continue
        records = [
            {"id": ex.id, "label": y, "model": args.model, "prompt": LABEL_PROMPT_ID} for ex, y in zip(batch, got)
        ]
        files.append_text(journal, "".join(map(record_line, records)))
        labels.update((ex.id, y) for ex, y in zip(batch, got))
    if not failed:  # predictions only once every sentence has its label
        write_label_results(args, out, rows, labels)
    return failed


def write_label_results(args, out, rows, labels):
    """predictions/sst-{split}-{output,raw}.csv (raw: one-hot probabilities) and metrics.json."""
    ids = [ex.id for ex in rows]
    preds = np.array([labels[i] for i in ids], dtype=np.int64)  # (N,)
    predictions.write(out / "predictions", "sst", args.split, ids, preds, np.eye(CLASSES)[preds])
    metrics_path = out / "metrics.json"
    metrics = read_label_metrics(metrics_path) if metrics_path.exists() else {}
    metrics.update(source="synth.py label", model=args.model)
    metrics.setdefault("config", {})[args.split] = vars(args)
    if all(ex.label is not None for ex in rows):  # the test split has no gold labels
        gold = np.array([ex.label for ex in rows], dtype=np.int64)
        accuracy = float((preds == gold).mean())
        matrix = analysis.confusion_matrix(gold, preds, CLASSES)
        metrics[args.split] = {"sst": accuracy}
        metrics.setdefault("confusion", {})[args.split] = {"sst": matrix.tolist()}
        if args.split == "dev":
            metrics["overall"] = overall({"sst": accuracy})
        say(f"{args.model} on sst {args.split}: accuracy {accuracy:.4f} ({int((preds == gold).sum())}/{len(rows)})")
        say("confusion matrix (rows: gold class 0-4, columns: predicted class 0-4)")
        for k, row in enumerate(matrix):
            say(f"  {k}: " + " ".join(f"{x:5d}" for x in row))
    files.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    say(f"wrote {out / 'predictions'}/sst-{args.split}-*.csv and {metrics_path}")
    if not predictions.file_path(out / "predictions", "sst", "test").exists():
        # train.py runs have test predictions, so an ensemble with them needs this member's too
        say(
            f"note: {out} has no sst test labels yet, so an ensemble beside train.py runs cannot use it "
            f"for test: label test too with  python synth.py label --split test --out {out} --model {args.model}"
        )


# ----------------------------------------------------------------------------
# cost and the end summary


def price(args):
    """(USD per 1M prompt tokens, per 1M completion tokens) of args.model; None where unknown."""
    listed = PRICES.get(args.model, (None, None))
    return (
        args.price_in if args.price_in is not None else listed[0],
        args.price_out if args.price_out is not None else listed[1],
    )


def cost_text(args, prompt_tokens, completion_tokens):
    price_in, price_out = price(args)
    if price_in is None or price_out is None:
        return f"cost unknown: no price listed for {args.model} (give --price-in and --price-out)"
    cost = (prompt_tokens * price_in + completion_tokens * price_out) / 1e6
    return f"estimated cost ${cost:.4f} (at ${price_in:g} / ${price_out:g} per 1M prompt / completion tokens)"


def dry_run(args, prompts, completion_tokens):
    """Print the first prompt and what all of them would cost; send nothing."""
    say("the first prompt (nothing is sent in a dry run):\n")
    say(prompts[0] if prompts else "(no prompts: nothing to do)")
    # about 4 characters a token in English, plus a few tokens of chat formatting per message
    prompt_tokens = round(sum(len(p) / 4 + 7 for p in prompts))
    completion_tokens = round(completion_tokens)
    say(f"\n{len(prompts)} requests, about {prompt_tokens:,} prompt + {completion_tokens:,} completion tokens")
    say(cost_text(args, prompt_tokens, completion_tokens))
    return []


def print_totals(stats, args, failed):
    """The end of a run: requests, retries, rejections, tokens and their cost, then what failed."""
    counts = stats.counts
    reasons = ", ".join(f"{why}: {k}" for why, k in stats.reasons.most_common())
    say(
        f"{counts['requests']} requests, {counts['retries']} retries, {counts['rejections']} rejected replies"
        + (f" ({reasons})" if reasons else "")
    )
    tokens = f"{counts['prompt_tokens']:,} prompt + {counts['completion_tokens']:,} completion tokens"
    say(f"{tokens}; {cost_text(args, counts['prompt_tokens'], counts['completion_tokens'])}")
    if failed:
        say(f"{len(failed)} failed (nothing written for them; run the same command again to retry them):")
        for line in failed:
            say(f"  {line}")


# ----------------------------------------------------------------------------
# command line


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    para = modes.add_parser("paraphrase", help="paraphrases of sentiment sentences, each keeping its label")
    para.add_argument("--input", required=True, help="sentiment file to paraphrase (e.g. data/ids-sst-train.csv)")
    para.add_argument("--out", required=True, help="JSONL file to append the paraphrases to (resumed if present)")
    para.add_argument("--n", type=int, default=3, help="paraphrases per sentence (12 over SST train gives ~100K)")
    lab = modes.add_parser("label", help="the model labels sentiment sentences; accuracy and predictions")
    lab.add_argument("--split", choices=("train", "dev", "test"), default="dev", help="which SST split to label")
    lab.add_argument("--data-dir", default="data", help="folder with the course files")
    lab.add_argument("--input", default=None, help="label this file instead of the split's course file")
    lab.add_argument("--out", default="runs/llm-labels", help="run folder for predictions/ and metrics.json")
    lab.add_argument("--batch-size", type=int, default=20, help="sentences per request")
    for p in (para, lab):
        p.add_argument("--model", default="gpt-3.5-turbo", help="chat-completions model name")
        p.add_argument("--limit", type=int, default=None, help="only the first K rows of the input")
        p.add_argument(
            "--dry-run", action="store_true", help="print the first prompt and a cost estimate; send nothing"
        )
        p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one reply")
        p.add_argument("--max-retries", type=int, default=5, help="retries of a request after 429, 5xx or a timeout")
        p.add_argument("--backoff", type=float, default=1.0, help="first retry waits about this many seconds, doubling")
        p.add_argument("--workers", type=int, default=4, help="requests in flight at once")
        p.add_argument("--rpm", type=float, default=500, help="at most this many requests per minute (0: no limit)")
        p.add_argument("--price-in", type=float, default=None, help="USD per 1M prompt tokens (default: PRICES)")
        p.add_argument("--price-out", type=float, default=None, help="USD per 1M completion tokens (default: PRICES)")
    return parser


def parse_args(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    minimum = {"n": 1, "batch_size": 1, "limit": 1, "workers": 1, "max_retries": 0}
    for name, low in minimum.items():
        if getattr(args, name, None) is not None and getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}")
    for name, high in (("timeout", MAX_TIMEOUT), ("backoff", MAX_WAIT)):
        if not 0 < getattr(args, name) <= high:  # also refuses nan and inf
            parser.error(f"--{name} must be a positive number of seconds, at most {high:g}")
    for name in ("rpm", "price_in", "price_out"):
        value = getattr(args, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            parser.error(f"--{name.replace('_', '-')} must be a finite number >= 0, not {value}")
    return args


def set_secrets(key, urls):
    """What redact() blanks: the key and the credentials of every URL in use. Secrets under 4
    characters are left alone (a placeholder key like "x" would blank every x in every message);
    URLs are shown without their credentials in any case."""
    SECRETS.clear()
    SECRETS.update((secret, "[credentials]") for url in urls for secret in url_credentials(url))
    SECRETS[key] = "[key]"
    for secret in [s for s in SECRETS if len(s) < 4]:
        del SECRETS[secret]


def main(argv=None):
    """Run one mode; returns the exit status (1 if some rows failed)."""
    args = parse_args(argv)
    key = os.environ.get("OPENAI_API_KEY", "")
    base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    proxies = [value for name, value in os.environ.items() if name.lower().endswith("_proxy")]
    set_secrets(key, [base_url, *proxies])
    if not key and not args.dry_run:
        sys.exit("error: OPENAI_API_KEY is not set (for a local server that ignores keys, set it to any value)")
    if not args.dry_run and not (key.isascii() and key.isprintable() and " " not in key):
        sys.exit(
            "error: OPENAI_API_KEY holds a character an HTTP header cannot carry (non-ASCII, a space or a control)"
        )
    stats = Stats()
    client = Client(base_url, key, args.model, args.timeout, args.max_retries, args.backoff, args.rpm, stats)
    try:
        failed = (paraphrase if args.mode == "paraphrase" else label)(args, client)
    except (data.DataError, APIError, files.LockError, OSError) as e:  # OSError: files.WriteError, an unwritable --out
        client.stop.set()
        print_totals(stats, args, [])
        sys.exit(redact(f"error: {e}"))
    except KeyboardInterrupt:
        client.stop.set()  # before anything else: no worker sends another request
        print_totals(stats, args, [])
        say("interrupted: what was written is kept; run the same command again to resume", file=sys.stderr)
        return 130
    finally:
        client.stop.set()
    if not args.dry_run:
        print_totals(stats, args, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
