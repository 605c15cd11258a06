"""Further pretraining with masked language modelling (MLM) on in-domain text, before fine-tuning.

BERT learns by filling in masked words (Devlin et al. 2019, §3.1 "Task #1: Masked LM"). Two of the
reports continue that pretraining on text like the tasks' own before fine-tuning: SUSTech (§3.4,
§4.4.3) on the shuffled sentences of the three training sets (15% masking, 3 epochs, batch 64, lr
5e-5, AdamW eps 1e-8; +0.027 on the report's plain average with bert-base, Table 3 against
Table 2), BERT++ (§4.3.2) on IMDB, MultiNLI and SICK text cut into 128-token chunks. Masking, per sequence:

    choose k = max(1, round(0.15 n)) of its n ordinary tokens ([CLS], [SEP], padding never)
    of the chosen: 80% -> [MASK], 10% -> a random token, 10% left as they are
    loss = cross-entropy of the model's prediction of the original token, at the chosen positions only

The masks are drawn anew for every batch of every epoch ("dynamic masking", as RoBERTa does), from
a generator seeded by (seed, epoch, step), so a resumed run draws the same masks. The held-out
slice keeps one fixed set of masks, so its loss compares across epochs.

The loop is fine-tuning's (loop.train_epochs: resume, --save-every, Ctrl-C, progress lines), and
the files are read by data.py (train_sentences, text_documents); what this module adds is MLM's
own: the corpus (Corpus, Batches), the masking, the head (BertForMlm), the step's loss
(train_step), the held-out score after each epoch (end_epoch) and its flags.

    python mlm.py --out runs/mlm                          # the task text, packaged MiniLM, SUSTech's settings
    python mlm.py --out runs/mlm --max-steps 1200         # ... on a time budget
    python mlm.py --out runs/imdb --no-task-text --text imdb.txt --text snli.txt
    python mlm.py --resume runs/mlm                       # continue an interrupted run
    python train.py --model runs/mlm/encoder              # then fine-tune from the result

The run folder (--out) holds checkpoint.pt (the latest state, for --resume), encoder/ (the model
with the lowest held-out loss, as a Hugging Face folder: config.json, vocab.txt, model.safetensors
with the encoder and the MLM head under BertForMaskedLM's names) and metrics.json.
"""

import argparse
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import cli
import data
import distributed
import files
import hub
import loop
import recipes
from adamw import AdamW
from loop import autocast, clip_and_step, format_time, get_lr, param_groups, to_device
from minbert import BertModel, normalise_hf_key, to_hf_state_dict
from tasks import TASKS
from tokenizer import build_tokenizer

# ----------------------------------------------------------------------------
# masking


def mask_tokens(input_ids, special_mask, vocab_size, generator, mask_id, prob=0.15):
    """BERT's masking of a padded batch. input_ids (B, T); special_mask (B, T) True at [CLS], [SEP]
    and padding, which are never chosen. Returns (inputs, labels), both (B, T): the inputs with the
    chosen tokens masked, and labels holding the original token where chosen and -100 elsewhere
    (cross-entropy's ignore_index).

    Each sequence gets exactly k = max(1, round(prob * n)) of its n ordinary tokens chosen, as in
    BERT's own data generator, so even a five-word sentence is asked for one."""
    B, T = input_ids.shape
    n = (~special_mask).sum(1)  # (B,) ordinary tokens per sequence
    k = torch.minimum(torch.floor(n * prob + 0.5).clamp(min=1), n)  # (B,)
    # A uniform random score per token, specials pushed past every real one: the k lowest win.
    scores = torch.rand((B, T), generator=generator).masked_fill(special_mask, 2.0)  # (B, T)
    rank = scores.argsort(dim=1).argsort(dim=1)  # (B, T): 0 for the lowest score of the row
    chosen = rank < k[:, None]  # (B, T)
    labels = input_ids.masked_fill(~chosen, -100)

    # 80 / 10 / 10: the model cannot tell which tokens to predict from seeing [MASK] alone, and
    # [MASK] never appears in fine-tuning, so some chosen tokens are left visible or replaced.
    action = torch.rand((B, T), generator=generator)  # (B, T)
    random_tokens = torch.randint(vocab_size, (B, T), generator=generator)  # (B, T)
    inputs = torch.where(chosen & (action < 0.8), mask_id, input_ids)
    inputs = torch.where(chosen & (action >= 0.8) & (action < 0.9), random_tokens, inputs)
    return inputs, labels


def seeded(*numbers):
    """A torch.Generator seeded from a tuple such as (seed, epoch, step); SeedSequence mixes them,
    so (1, 0) and (0, 1) give unrelated streams."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence(list(numbers)).generate_state(1)[0]))


@dataclass
class Masking:
    """What mask_tokens needs to know about a vocabulary, and the masking rate."""

    special_ids: tuple  # [CLS] and [SEP]: never chosen (nor is padding)
    mask_id: int
    vocab_size: int  # random replacements are drawn from ids 0 .. vocab_size - 1
    prob: float = 0.15

    def __call__(self, batch, generator):
        """A padded batch (data.pad's dict) with fresh masks: (batch, labels (B, T))."""
        ids = batch["input_ids"]  # (B, T)
        special = torch.isin(ids, torch.tensor(self.special_ids)) | (batch["attention_mask"] == 0)  # (B, T)
        inputs, labels = mask_tokens(ids, special, self.vocab_size, generator, self.mask_id, self.prob)
        return {**batch, "input_ids": inputs}, labels


# ----------------------------------------------------------------------------
# the model: the encoder plus BERT's MLM head


class MlmHead(nn.Module):
    """BERT's MLM output layer: transform each hidden state (dense, GELU, LayerNorm), then score
    every vocabulary word against it with the input word embeddings (the decoder is tied to them,
    as in BERT: one matrix both reads and writes words), plus a bias per word."""

    def __init__(self, config):
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H)
        self.ln = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        nn.init.normal_(self.dense.weight, std=config.initializer_range)  # BERT's initialisation
        nn.init.zeros_(self.dense.bias)

    def forward(self, hidden, word_embeddings):  # hidden (..., H), word_embeddings (V, H) -> logits (..., V)
        h = self.ln(F.gelu(self.dense(hidden)))  # (..., H)
        return F.linear(h, word_embeddings, self.bias)  # (..., V)


# Hugging Face's names of the head (BertForMaskedLM's `cls.predictions`) on the left, ours on the
# right. Their decoder weight is the word embedding matrix and their decoder bias is
# `cls.predictions.bias`, so neither has a tensor of its own; NSP's `cls.seq_relationship` is unused.
HEAD_KEYS = [
    ("cls.predictions.transform.dense.weight", "dense.weight"),
    ("cls.predictions.transform.dense.bias", "dense.bias"),
    ("cls.predictions.transform.LayerNorm.weight", "ln.weight"),
    ("cls.predictions.transform.LayerNorm.bias", "ln.bias"),
    ("cls.predictions.bias", "bias"),
]


class BertForMlm(nn.Module):
    def __init__(self, bert):
        super().__init__()
        self.bert = bert
        self.head = MlmHead(bert.config)

    def forward(self, input_ids, attention_mask, token_type_ids):
        """Logits over the vocabulary at every position (B, T, V): the plain version, as Hugging
        Face's BertForMaskedLM computes them."""
        hidden = self.bert(input_ids, attention_mask, token_type_ids)["last_hidden_state"]  # (B, T, H)
        return self.head(hidden, self.bert.embeddings.word.weight)  # (B, T, V)

    def loss(self, batch, labels):
        """Mean cross-entropy over the chosen positions, and how many of them the model predicts
        right. The same as cross_entropy(forward(...), labels, ignore_index=-100), but the head
        runs at the chosen rows only: its (H x V) decoder is the largest matmul of a small model,
        and 85% of its rows would be thrown away."""
        hidden = self.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        chosen = labels != -100  # (B, T)
        rows = hidden["last_hidden_state"][chosen]  # (N, H)
        logits = self.head(rows, self.bert.embeddings.word.weight).float()  # (N, V)
        targets = labels[chosen]  # (N,)
        return F.cross_entropy(logits, targets), (logits.argmax(-1) == targets).sum()


def load_model(model_dir, log=print):
    """The encoder of a model folder with its MLM head: loaded when the checkpoint has one
    (bert-base-uncased does), BERT's random initialisation when it has none (the packaged
    MiniLM, a sentence-embedding model, was trained without it)."""
    bert = BertModel.from_pretrained(model_dir)
    model = BertForMlm(bert)
    source = hub.weights_file(bert.source_dir)
    weights = {normalise_hf_key(k): v for k, v in hub.load_weights(bert.source_dir).items()}
    if "cls.predictions.bias" not in weights and "cls.predictions.decoder.bias" in weights:
        weights["cls.predictions.bias"] = weights["cls.predictions.decoder.bias"]  # the same tensor, tied
    found = {ours: weights[theirs] for theirs, ours in HEAD_KEYS if theirs in weights}
    if not found:
        log(f"{source}: no MLM head (no cls.predictions.* weights); it starts from BERT's random initialisation")
        return model
    missing = [theirs for theirs, ours in HEAD_KEYS if ours not in found]
    wrong = [f"{k}: {tuple(v.shape)}" for k, v in found.items() if v.shape != model.head.state_dict()[k].shape]
    if missing or wrong:
        raise hub.ModelFileError(f"{source}: incomplete MLM head: missing {missing or 'none'}, wrong shapes {wrong}")
    model.head.load_state_dict({k: v.float() for k, v in found.items()})
    log(f"{source}: loaded its MLM head (cls.predictions.*)")
    return model


def save_encoder(model, folder, tokenizer_dir):
    """A Hugging Face folder in BertForMaskedLM's layout: `bert.`-prefixed encoder weights and the
    `cls.predictions.*` head, which train.py --model, minbert and transformers all load."""
    folder = files.make_folder(folder)  # a planted link there is replaced, not written through
    weights = {f"bert.{k}": v for k, v in to_hf_state_dict(model.bert.state_dict()).items()}
    head = model.head.state_dict()
    weights.update({theirs: head[ours] for theirs, ours in HEAD_KEYS})
    hub.save_safetensors(weights, folder / "model.safetensors")
    config = {**model.bert.config.to_dict(), "architectures": ["BertForMaskedLM"]}
    files.write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    for name in ("vocab.txt", "tokenizer_config.json"):
        if (Path(tokenizer_dir) / name).is_file():
            files.copy_file(Path(tokenizer_dir) / name, folder / name)


# ----------------------------------------------------------------------------
# the text


@dataclass
class Corpus:
    """Token sequences "[CLS] ... [SEP]" of at most --max-length tokens, one segment each."""

    ids: list  # np.int32 arrays
    types: list  # np.int8 arrays of zeros (one segment)
    lengths: np.ndarray  # (N,)

    def __len__(self):
        return len(self.ids)


SPAN = 20_000  # characters of a long text handed to the tokenizer at once (see spans)


def spans(text, size=SPAN):
    """`text` cut at whitespace into pieces of about `size` characters. The tokenizer's time grows
    faster than linearly with the length of one string (a 10 MB line took minutes); BERT's
    pre-tokenizer splits at whitespace anyway, so the pieces give the same tokens as the whole."""
    pieces, start = [], 0
    while start < len(text):
        cut = WHITESPACE.search(text, start + size)
        end = cut.start() if cut else len(text)
        pieces.append(text[start:end])
        start = end
    return pieces


WHITESPACE = re.compile(r"\s")


def tokenize(tokenizer, texts, max_length, span=SPAN):
    """Each text as "[CLS] ... [SEP]" sequences of at most max_length tokens: a longer text is cut
    into consecutive chunks, so none of it is lost (BERT++ instead packs all its texts together
    into 128-token chunks). Linear in the
    length of the text: the tokenizer sees pieces of `span` characters, and each piece's ids
    are read once (Encoding.ids builds a new list at every use)."""
    cls, sep, room = tokenizer.cls_id, tokenizer.sep_id, max_length - 2
    pieces = [spans(text, span) for text in texts]
    encodings = iter(tokenizer.wordpiece.encode_batch([p for ps in pieces for p in ps], add_special_tokens=False))
    ids = []
    for n in map(len, pieces):
        tokens = np.concatenate([np.array(next(encodings).ids, dtype=np.int32) for _ in range(n)] or [[]])
        for start in range(0, len(tokens), room):
            ids.append(np.concatenate([[cls], tokens[start : start + room], [sep]]).astype(np.int32))
    types = [np.zeros(len(x), dtype=np.int8) for x in ids]
    return Corpus(ids, types, np.array([len(x) for x in ids], dtype=np.int64))


def load_text(args, tokenizer, log=print):
    """The training and held-out corpora: the texts deduplicated, shuffled by --seed, and a
    --holdout share of them set aside (whole texts, so no chunk of a held-out text is trained on)."""
    texts, paths = [], []
    if args.task_text:
        sentences, paths = data.train_sentences(args)
        texts += sentences
        log(f"task text: {len(sentences)} sentences from {', '.join(paths)}")
    for path in args.text or []:
        documents = data.text_documents(path)
        texts += documents
        paths.append(path)
        log(f"{path}: {len(documents)} documents")
    unique = list(dict.fromkeys(t.strip() for t in texts if t.strip()))
    order = np.random.default_rng(args.seed).permutation(len(unique))
    n_held = math.ceil(args.holdout * len(unique))
    if len(unique) - n_held < 1 or n_held < 1:
        raise data.DataError(f"{len(unique)} distinct texts: too few to hold out {args.holdout:g} of them and train")
    held = tokenize(tokenizer, [unique[i] for i in order[:n_held]], args.max_length)
    train = tokenize(tokenizer, [unique[i] for i in order[n_held:]], args.max_length)
    log(
        f"{len(unique)} distinct texts ({len(texts) - len(unique)} duplicates or blank dropped): "
        f"train {len(train)} sequences ({int(train.lengths.sum())} tokens), held out {len(held)} ({n_held} texts)"
    )
    for name, corpus in (("training", train), ("held-out", held)):  # texts the tokenizer empties (U+200B)
        if len(corpus) == 0:
            raise data.DataError(f"the {name} texts hold no tokens ({len(unique)} texts in all): add text")
    return train, held, paths


# ----------------------------------------------------------------------------
# setup


@dataclass(kw_only=True)
class Pretraining(loop.Run):
    """An MLM run: what the loop reads (loop.Run; its tasks: "mlm" alone), and MLM's own pieces."""

    tokenizer_dir: Path  # where vocab.txt comes from
    masking: Masking
    train: Corpus
    held: Corpus
    held_masked: tuple  # (inputs, labels) of the held-out sequences, masked once for the whole run


class Batches:
    """Which batch of the corpus each step of each epoch trains on: a fresh length-bucketed shuffle
    per epoch, seeded by (seed, epoch), so a resumed run reads the same. It answers the loop's
    questions (steps_in_epoch, global_step, total_steps, describe) as schedules.Schedule does for
    fine-tuning; --max-steps may end the run mid-epoch."""

    def __init__(self, corpus, batch_size, seed, epochs, max_steps):
        self.corpus, self.batch_size, self.seed = corpus, batch_size, seed
        self.epochs, self.max_steps = epochs, max_steps
        self.cached = None  # (epoch, its batches): one shuffle per epoch, not one per step
        self.per_epoch = len(self.batches(0))  # the same for every epoch

    def batches(self, epoch):
        if self.cached is None or self.cached[0] != epoch:
            order = data.batch_order(self.corpus.lengths, self.batch_size, seeded(self.seed, epoch))
            self.cached = (epoch, order)
        return self.cached[1]

    def total_steps(self):
        full = self.epochs * self.per_epoch
        return min(full, self.max_steps) if self.max_steps else full

    def steps_in_epoch(self, epoch):
        return max(0, min(self.per_epoch, self.total_steps() - epoch * self.per_epoch))

    def global_step(self, epoch, step):
        return epoch * self.per_epoch + step

    def describe(self, epoch):
        return f"{self.steps_in_epoch(epoch)} steps of {self.batch_size} sequences"


def mask_corpus(corpus, masking, generator):
    """Every sequence of `corpus` masked once: (inputs, labels), two lists of arrays."""
    batch, labels = masking(data.pad(corpus.ids, corpus.types, range(len(corpus))), generator)
    inputs = [x[:n].numpy() for x, n in zip(batch["input_ids"], corpus.lengths)]
    return inputs, [y[:n].numpy() for y, n in zip(labels, corpus.lengths)]


def setup(args, log=print):
    t_start = time.time()
    device = loop.start(args, PRODUCTS)
    model_dir = hub.resolve_model_dir(args.model)
    model = load_model(model_dir, log).to(device)
    positions = model.bert.config.max_position_embeddings
    if args.max_length > positions:  # a longer chunk would index past the position embeddings
        log(f"--max-length {args.max_length}: {args.model} has {positions} positions, so chunks of {positions}")
        args.max_length = positions
    tokenizer = build_tokenizer(model_dir, args.max_length)
    mask_id = tokenizer.wordpiece.token_to_id("[MASK]")
    if mask_id is None:
        raise data.DataError(f"{model_dir / 'vocab.txt'}: no [MASK] token, which masked language modelling needs")
    train, held, paths = load_text(args, tokenizer, log)
    vocab_size = min(tokenizer.wordpiece.get_vocab_size(), model.bert.config.vocab_size)
    masking = Masking((tokenizer.cls_id, tokenizer.sep_id), mask_id, vocab_size, args.mask_prob)
    held_masked = mask_corpus(held, masking, seeded(args.seed, 2**31 - 1))
    optimizer = AdamW(param_groups(model, args.weight_decay), lr=args.lr, eps=args.eps)
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp == "fp16")  # fp16 needs loss scaling; bf16 does not
    schedule = Batches(train, args.batch_size, args.seed, args.epochs, args.max_steps)
    state = loop.new_state(data.file_hashes(paths), start=None)
    loop_parts = dict(args=args, out=Path(args.out), device=device, log=log, model=model, optimizer=optimizer)
    loop_parts.update(scaler=scaler, schedule=schedule, tasks=["mlm"], state=state, t_start=t_start)
    run = Pretraining(
        **loop_parts, tokenizer_dir=model_dir, masking=masking, train=train, held=held, held_masked=held_masked
    )
    if args.resume:
        loop.resume(run)
        if isinstance(run.state.get("epoch_loss"), list):  # a checkpoint from mlm.py's own loop
            run.state["epoch_loss"] = {"mlm": run.state["epoch_loss"]}
    return run


# ----------------------------------------------------------------------------
# evaluation and training


@torch.no_grad()
def evaluate(run):
    """Held-out MLM loss (mean over masked tokens), masked-token accuracy and perplexity exp(loss)."""
    run.model.eval()
    inputs, labels = run.held_masked
    total, right, count = 0.0, 0, 0
    for indices in data.eval_order(run.held.lengths, run.args.eval_batch_size):
        batch = data.pad(inputs, run.held.types, indices)
        target = data.pad(labels, run.held.types, indices)["input_ids"]  # (B, T)
        target = target.masked_fill(batch["attention_mask"] == 0, -100).to(run.device)
        with autocast(run.device, run.args.amp):
            loss, correct = run.model.loss(to_device(batch, run.device), target)
        n = int((target != -100).sum())
        total, right, count = total + loss.item() * n, right + int(correct), count + n
    run.model.train()
    loss = total / count
    return {"loss": loss, "accuracy": right / count, "perplexity": math.exp(min(loss, 700.0)), "tokens": count}


def held_out_line(metrics):
    """evaluate()'s metrics as one line for the log."""
    m = metrics
    return f"loss {m['loss']:.4f}  masked-token accuracy {m['accuracy']:.4f}  perplexity {m['perplexity']:.2f}"


def train_step(run, epoch, step):
    """One optimizer step on the step's batch, masked afresh; returns {"mlm": (loss, hits)} as
    train.train_step does, with no hits: MLM's accuracy is the held-out one (evaluate)."""
    args, schedule = run.args, run.schedule
    lr = get_lr(schedule.global_step(epoch, step), schedule.total_steps(), args.lr, args.warmup)
    loop.set_lr(run.optimizer, lr)
    batch = data.pad(run.train.ids, run.train.types, schedule.batches(epoch)[step])
    batch, labels = run.masking(batch, seeded(args.seed, epoch, step))  # new masks every epoch
    batch, labels = to_device(batch, run.device), labels.to(run.device)

    # forward and backward
    with autocast(run.device, args.amp):
        loss, _ = run.model.loss(batch, labels)
    run.scaler.scale(loss).backward()
    clip_and_step(run.model, run.optimizer, run.scaler, args.clip)
    return {"mlm": (loss.detach().float(), torch.zeros(2, device=run.device))}


def end_epoch(run, epoch):
    """Score the held-out text, and write encoder/ if this is the best model so far (loop.train_epochs
    then checkpoints). MLM never stops early: returns False."""
    state, t_eval = run.state, time.time()
    metrics = evaluate(run)
    run.log(f"epoch {epoch + 1} held-out: {held_out_line(metrics)} ({format_time(time.time() - t_eval)})", flush=True)
    losses = state["epoch_loss"]["mlm"]
    train_loss = float(np.mean(losses)) if losses else None
    state["history"].append({"epoch": epoch + 1, "steps": state["global_step"], "train_loss": train_loss, **metrics})
    if state["best"] is None or metrics["loss"] < state["best"]["loss"]:
        state["best"] = {"epoch": epoch + 1, **metrics}
        save_encoder(run.model, run.out / "encoder", run.tokenizer_dir)
        run.log(f"  lowest held-out loss so far: wrote {run.out / 'encoder'}/")
    return False


def finish(run):
    state = run.state
    wall = run.elapsed
    metrics = {
        "heldout_start": state["start"],
        "heldout_best": state["best"],
        "best_epoch": state["best"]["epoch"],
        "epochs": state["history"],
        "steps": state["global_step"],
        "sequences": {"train": len(run.train), "heldout": len(run.held)},
        "train_tokens": int(run.train.lengths.sum()),
        "wall_time_s": round(wall, 1),
        "config": vars(run.args),
    }
    files.write_text(run.out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    start, best = state["start"]["loss"], state["best"]["loss"]
    run.log(f"done in {format_time(wall)}; held-out loss {start:.4f} -> {best:.4f} (epoch {state['best']['epoch']})")
    run.log(f"fine-tune from it with: python train.py --model {run.out / 'encoder'}")
    return metrics


def pretrain(args, log=print):
    """The whole run: set up, score the held-out text once before training, train epoch by epoch
    (scoring after each), then write metrics.json. Returns the metrics, or None when stopped early.
    The run folder is locked meanwhile: a second mlm.py or train.py on it refuses (cli.run_folder_locked)."""
    with cli.run_folder_locked(args.out):
        return pretrain_run(args, log)


def pretrain_run(args, log=print):
    run = setup(args, log)
    n_params = sum(p.numel() for p in run.model.parameters())
    log(
        f"model {args.model}: {n_params / 1e6:.1f}M parameters on {run.device} (amp {args.amp}); "
        f"{run.schedule.per_epoch} steps per epoch, {run.schedule.total_steps()} steps in all"
    )
    if run.state["start"] is None:
        run.state["start"] = evaluate(run)
        log(f"before training, held-out: {held_out_line(run.state['start'])}")
    if not loop.train_epochs(run, train_step, end_epoch, "mlm.py"):
        return None  # stopped by Ctrl-C, checkpoint saved
    return finish(run)


# ----------------------------------------------------------------------------
# command line


def get_parser():
    p = cli.new_parser(__doc__)
    a = p.add_argument
    recipes.add_config_flag(p)
    a("--out", default=None, help="run folder (required unless --resume)")
    cli.add_run_folder_flags(p)
    a(
        "--model",
        default="all-MiniLM-L6-v2",
        help="encoder to start from: packaged default, a model folder, or a hub id",
    )
    g = p.add_argument_group("text")
    g.add_argument(
        "--task-text",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="train on the sentences of the three task training files",
    )
    g.add_argument(
        "--text", action="append", metavar="FILE", help="plain-text file, one document per line (repeatable)"
    )
    g.add_argument("--data-dir", default="data", help="folder with the course files (make data)")
    for t in TASKS:
        g.add_argument(
            f"--{t}-train", default=None, help=f"{t} training file (default <data-dir>/{TASKS[t].files['train']})"
        )
    g.add_argument("--max-length", type=int, default=128, help="tokens per sequence; longer texts are cut into chunks")
    g.add_argument("--holdout", type=float, default=0.05, help="share of the texts held out to pick the best epoch")
    g.add_argument("--mask-prob", type=float, default=0.15, help="share of each sequence's tokens to predict")
    g = p.add_argument_group("optimisation (defaults: SUSTech §4.4.3)")
    g.add_argument("--epochs", type=int, default=3, help="passes over the training text")
    g.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in all (0 = no limit)")
    g.add_argument("--batch-size", type=int, default=64, help="sequences per batch")
    g.add_argument("--lr", type=float, default=5e-5, help="peak learning rate")
    g.add_argument("--eps", type=float, default=1e-8, help="AdamW epsilon")
    g.add_argument("--warmup", type=float, default=0.0, help="fraction of all steps spent warming the lr up")
    g.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decoupled weight decay (matrices only)")
    g.add_argument("--clip", type=float, default=1.0, help="clip the gradient norm to this (0 = off)")
    g.add_argument("--seed", type=int, default=0, help="random seed: the split, the order and the masks")
    cli.add_running_flags(p.add_argument_group("running"))
    return p


# Flags that may change when a run is resumed: they do not alter what has been trained so far.
RESUMABLE = {"resume", "epochs", "log_every", "save_every", "eval_batch_size", "device"}
PRODUCTS = ("checkpoint.pt", "encoder", "metrics.json")  # what a run writes into --out


def check_args(parser, args):
    """Every flag checked before any work starts."""
    at_least = {"epochs": 1, "batch_size": 1, "max_length": 8, "max_steps": 0, "eval_batch_size": 1}
    at_least.update({"log_every": 1, "save_every": 0})
    cli.check_numbers(parser, args, at_least, non_negative=["lr", "eps", "weight_decay", "clip"])
    for name in ("holdout", "mask_prob"):
        if not 0 < getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} is a share, in (0, 1); got {getattr(args, name)}")
    if not args.task_text and not args.text:
        parser.error("no text to train on: --no-task-text needs at least one --text FILE")
    for path in args.text or []:
        if not Path(path).is_file():
            parser.error(f"--text {path}: no such file")
    if distributed.launched_world() > 1:  # it never joins a process group: N copies, one folder
        parser.error("mlm.py runs in one process; start it with python, not torchrun")


def parse_args(argv=None):
    parser = get_parser()
    args, state = cli.parse_run_args(parser, argv, RESUMABLE, own_flag="mask_prob")
    cli.refuse_finished(args, state, args.max_steps)
    if not args.out:
        parser.error("--out RUN_DIR is required (or --resume RUN_DIR)")
    check_args(parser, args)
    return args


def main():
    cli.run_command(lambda: pretrain(parse_args()))


if __name__ == "__main__":
    main()
