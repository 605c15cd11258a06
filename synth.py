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
in one header and nowhere else: error messages are built from status codes and the API's error
text with the key blanked out, never from request objects.

Paraphrases are appended to the JSONL file one source row at a time, so an interrupted run
resumes where it stopped; data.read_synth reads the file back for training.
"""

import argparse
import collections
import json
import math
import os
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

import numpy as np
import requests

import analysis
import data
import files
import predictions
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


class APIError(Exception):
    """The API refused the request (a 4xx other than 429): retrying cannot help, so the run stops."""


class GaveUp(Exception):
    """A request still failed (429, 5xx, timeout, connection) after --max-retries retries."""


class Rejected(ValueError):
    """A reply broke the reply contract (not a JSON array of the right length and kind)."""


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
    """At most `rpm` requests start per minute, evenly spaced; rpm 0 means no limit."""

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
    and connection errors (a server's Retry-After wins), up to max_retries retries."""

    def __init__(self, base_url, key, model, timeout, max_retries, backoff, rpm, stats, log):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._key = key
        self.model, self.timeout, self.max_retries, self.backoff = model, timeout, max_retries, backoff
        self.limit, self.stats, self.log = RateLimit(rpm), stats, log
        self.local = threading.local()  # one Session (kept-alive connection) per worker thread

    def redact(self, text):
        return text.replace(self._key, "[key]") if self._key else text

    def post(self, body):
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
        headers = {"Authorization": f"Bearer {self._key}"}
        return self.local.session.post(self.url, json=body, headers=headers, timeout=self.timeout)

    def chat(self, prompt, temperature):
        """The reply's text; counts requests, retries and tokens in self.stats."""
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": temperature}
        for attempt in range(self.max_retries + 1):
            self.limit.wait()
            self.stats.add(requests=1)
            wait = None
            try:
                response = self.post(body)
            except requests.Timeout:
                problem = f"no reply within --timeout {self.timeout:g} s"
            except requests.ConnectionError:  # its text can be long; the type says enough
                problem = f"cannot connect to {self.url}"
            except requests.RequestException as e:  # a malformed URL, say: retrying cannot help
                raise APIError(
                    f"{self.url}: cannot send a request ({type(e).__name__}); check OPENAI_BASE_URL"
                ) from None
            else:
                if response.status_code == 200:
                    return self.read_reply(response)
                problem = f"HTTP {response.status_code}: {self.error_text(response)}"
                if response.status_code != 429 and response.status_code < 500:
                    raise APIError(f"{self.url}: {problem}")
                wait = retry_after(response)
            if attempt == self.max_retries:
                raise GaveUp(f"{problem} (gave up after {attempt + 1} attempts)")
            if wait is None:  # 1, 2, 4, ... times --backoff, each scaled by a random 0.5..1.5
                wait = self.backoff * 2**attempt * (0.5 + random.random())
            self.stats.add(retries=1)
            self.log(f"  {problem}; retry {attempt + 1}/{self.max_retries} in {wait:.3g} s")
            time.sleep(wait)

    def read_reply(self, response):
        try:
            reply = response.json()
            text = reply["choices"][0]["message"]["content"]
            usage = reply.get("usage") or {}
            prompt_tokens, completion_tokens = (
                int(usage.get("prompt_tokens", 0)),
                int(usage.get("completion_tokens", 0)),
            )
        except (ValueError, KeyError, IndexError, TypeError):
            raise Rejected("not a chat completion") from None
        self.stats.add(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        if not isinstance(text, str):
            raise Rejected("not a chat completion")
        return text

    def error_text(self, response):
        """The API's own error message ({"error": {"message": ...}}), else the start of the body."""
        try:
            text = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            text = response.text[:300] or response.reason
        return self.redact(" ".join(text.split()))


def retry_after(response):
    """Seconds the server asks us to wait (Retry-After), or None."""
    try:
        seconds = float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date: fall back to our own backoff
    return min(max(seconds, 0.0), 600.0) if math.isfinite(seconds) else None


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
    except json.JSONDecodeError:
        raise Rejected("not JSON") from None


def normalise(text):
    return " ".join(text.lower().split())


def check_paraphrases(reply, source, n):
    """The n paraphrases of a reply, or Rejected naming what breaks the contract."""
    items = parse_json_reply(reply)
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise Rejected("not a JSON array of strings")
    if len(items) != n:
        raise Rejected("wrong number of paraphrases")
    items = [x.strip() for x in items]
    if not all(items):
        raise Rejected("empty paraphrase")
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


def format_time(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def run_jobs(work, items, workers, unit):
    """Yield (item, work(item)) as the workers finish them, printing the rate and ETA every 5 s.
    Leaving early (an error, Ctrl-C) cancels the jobs not yet started."""
    start, last, done = time.time(), time.time(), 0
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = {pool.submit(work, item): item for item in items}
        for future in as_completed(futures):
            yield futures[future], future.result()
            done += 1
            now = time.time()
            if now - last >= 5 or done == len(items):
                rate = done / max(now - start, 1e-9)
                eta = format_time((len(items) - done) / rate)
                print(f"  {done}/{len(items)} {unit}  {rate:.2f} {unit}/s  ETA {eta}", flush=True)
                last = now
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def record_line(record):
    return json.dumps(record, ensure_ascii=False) + "\n"


def read_journal(path):
    """The records of an append-only JSONL file, after cutting off a last line torn by a kill."""
    path = Path(path)
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    if not text.endswith("\n") and text:
        print(f"{path}: dropping an unfinished last line (the run writing it was interrupted)")
        text = text[: text.rfind("\n") + 1]
        files.write_text(path, text)
    records = []
    for line, record in enumerate(text.splitlines(), start=1):
        try:
            records.append(json.loads(record))
        except json.JSONDecodeError as e:
            raise data.DataError(f"{path}:{line}: not a JSON record ({e.msg})") from None
    return records


# ----------------------------------------------------------------------------
# paraphrase mode


def resume_paraphrases(path, n):
    """Source ids whose n paraphrases are all in the file. Only the last row can be incomplete
    (a kill during its write); its records are removed so that it is asked again."""
    records = read_journal(path)
    if not records:
        return set()
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
        print(f"{path}: removing {counts[last]} paraphrases of the interrupted row {last!r}")
        files.write_text(path, "".join(record_line(r) for r in records if r["source_id"] != last))
        del counts[last]
    return set(counts)


def paraphrase(args, client):
    """Ask for args.n paraphrases of each row; returns the rows that failed."""
    rows = data.read_examples(args.input, "sst", labelled=True)[: args.limit]
    prompts = {ex.id: PARAPHRASE_PROMPT.format(n=args.n, sentence=ex.text_a.strip()) for ex in rows}
    if args.dry_run:
        # paraphrases are about as long as their source, plus quotes and commas
        completion = sum(args.n * (len(ex.text_a) / 4 + 3) for ex in rows)
        return dry_run(args, list(prompts.values()), completion)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = resume_paraphrases(out, args.n)
    todo = [ex for ex in rows if ex.id not in done]
    print(f"{args.input}: {len(rows)} rows; {len(rows) - len(todo)} already in {out}, {len(todo)} to go", flush=True)

    def work(ex):
        check = lambda reply: check_paraphrases(reply, ex.text_a, args.n)
        return ask(client, prompts[ex.id], PARAPHRASE_TEMPERATURE, check)

    failed = []
    for ex, (texts, why) in run_jobs(work, todo, args.workers, "rows"):
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


def read_labels(path):
    """{id: label} of label mode's record of replies, each record checked."""
    labels = {}
    for line, record in enumerate(read_journal(path), start=1):
        if not isinstance(record, dict):
            record = {}
        label = record.get("label")
        if not (isinstance(record.get("id"), str) and type(label) is int and 0 <= label < CLASSES):
            raise data.DataError(f"{path}:{line}: expected a record {{'id': str, 'label': 0-4, ...}}")
        labels[record["id"]] = label
    return labels


def label(args, client):
    """Label the split's sentences, batch_size per request; returns the sentences that failed."""
    path = args.input or Path(args.data_dir) / TASKS["sst"].files[args.split]
    rows = data.read_examples(path, "sst")[: args.limit]
    out = Path(args.out)
    labels = {} if args.dry_run else read_labels(out / f"sst-{args.split}-labels.jsonl")
    todo = [ex for ex in rows if ex.id not in labels]
    batches = [todo[i : i + args.batch_size] for i in range(0, len(todo), args.batch_size)]
    prompt = lambda batch: LABEL_PROMPT.format(
        n=len(batch), sentences=json.dumps([ex.text_a.strip() for ex in batch], ensure_ascii=False)
    )
    if args.dry_run:
        return dry_run(args, [prompt(batch) for batch in batches], 2 * len(todo))  # "3, " is about 2 tokens

    out.mkdir(parents=True, exist_ok=True)
    print(f"{path}: {len(rows)} sentences; {len(rows) - len(todo)} labelled already, {len(todo)} to go", flush=True)
    work = lambda batch: ask(client, prompt(batch), LABEL_TEMPERATURE, lambda reply: check_labels(reply, len(batch)))
    failed = []
    for batch, (got, why) in run_jobs(work, batches, args.workers, "requests"):
        if got is None:
            failed += [f"{ex.id}: {why}" for ex in batch]
            continue
        records = [{"id": ex.id, "label": y, "model": args.model} for ex, y in zip(batch, got)]
        files.append_text(out / f"sst-{args.split}-labels.jsonl", "".join(map(record_line, records)))
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
    metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.exists() else {}
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
        print(f"{args.model} on sst {args.split}: accuracy {accuracy:.4f} ({int((preds == gold).sum())}/{len(rows)})")
        print("confusion matrix (rows: gold class 0-4, columns: predicted class 0-4)")
        for k, row in enumerate(matrix):
            print(f"  {k}: " + " ".join(f"{x:5d}" for x in row))
    files.write_text(metrics_path, json.dumps(metrics, indent=2) + "\n")
    print(f"wrote {out / 'predictions'}/sst-{args.split}-*.csv and {metrics_path}")


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
    print("the first prompt (nothing is sent in a dry run):\n")
    print(prompts[0] if prompts else "(no prompts: nothing to do)")
    # about 4 characters a token in English, plus a few tokens of chat formatting per message
    prompt_tokens = round(sum(len(p) / 4 + 7 for p in prompts))
    completion_tokens = round(completion_tokens)
    print(f"\n{len(prompts)} requests, about {prompt_tokens:,} prompt + {completion_tokens:,} completion tokens")
    print(cost_text(args, prompt_tokens, completion_tokens))
    return []


def summary(stats, args, failed):
    counts = stats.counts
    reasons = ", ".join(f"{why}: {k}" for why, k in stats.reasons.most_common())
    print(
        f"{counts['requests']} requests, {counts['retries']} retries, {counts['rejections']} rejected replies"
        + (f" ({reasons})" if reasons else "")
    )
    tokens = f"{counts['prompt_tokens']:,} prompt + {counts['completion_tokens']:,} completion tokens"
    print(f"{tokens}; {cost_text(args, counts['prompt_tokens'], counts['completion_tokens'])}")
    if failed:
        print(f"{len(failed)} failed (nothing written for them; run the same command again to retry them):")
        for line in failed:
            print(f"  {line}")


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
    minimum = {"n": 1, "batch_size": 1, "limit": 1, "workers": 1, "max_retries": 0, "rpm": 0}
    for name, low in minimum.items():
        if getattr(args, name, None) is not None and getattr(args, name) < low:
            parser.error(f"--{name.replace('_', '-')} must be at least {low}")
    for name in ("timeout", "backoff"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name} must be a positive number of seconds")
    return args


def main(argv=None):
    """Run one mode; returns the exit status (1 if some rows failed)."""
    args = parse_args(argv)
    key = os.environ.get("OPENAI_API_KEY", "")
    if not key and not args.dry_run:
        sys.exit("error: OPENAI_API_KEY is not set (for a local server that ignores keys, set it to any value)")
    base_url = os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
    stats = Stats()
    client = Client(base_url, key, args.model, args.timeout, args.max_retries, args.backoff, args.rpm, stats, print)
    try:
        failed = (paraphrase if args.mode == "paraphrase" else label)(args, client)
    except (data.DataError, APIError, OSError) as e:  # OSError: files.WriteError, an unwritable --out
        summary(stats, args, [])
        sys.exit(f"error: {client.redact(str(e))}")
    except KeyboardInterrupt:
        summary(stats, args, [])
        sys.exit("interrupted: what was written is kept; run the same command again to resume")
    if not args.dry_run:
        summary(stats, args, failed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
