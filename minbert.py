"""minBERT: the BERT encoder (Devlin et al. 2019), written out.

Reads top to bottom: config -> attention -> embeddings -> self-attention layer ->
transformer layer -> model; then the speed pieces the model uses (a cheaper CPU dropout mask,
padding removal), and the checkpoint names shared with Hugging Face. Where a piece has a faster
version, the plain one comes first and the fast one right after it, with the same values
(SelfAttention.forward, then forward_rows; BertModel.encode, then encode_fast, which runs by
default). Shapes use one notation throughout: B batch, T tokens, H hidden size, nh attention
heads, hs = H // nh head size, and M the rows of the token matrix encode_fast's layers work on:
B * T, or N < B * T when padding is removed.

    model = BertModel.from_pretrained("all-MiniLM-L6-v2")   # or a folder, or "bert-base-uncased"
    tokenizer = build_tokenizer(model.source_dir)          # tokenizer.py
    out = model(input_ids, attention_mask, token_type_ids)  # {"last_hidden_state", "pooler_output"}

The weights are compatible with Hugging Face's BertModel both ways: `from_pretrained`
reads their checkpoints, `save_pretrained` writes a folder their `from_pretrained` reads.
"""

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

import files
import hub


@dataclass
class BertConfig:
    # Field names are Hugging Face's, so a model folder's config.json loads as is.
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    initializer_range: float = 0.02

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads {self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (only BERT's exact 'gelu')")

    @classmethod
    def from_dict(cls, d):
        """Build from a config.json dict; fields of other architectures' configs are ignored."""
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"position_embedding_type {d['position_embedding_type']!r} is not supported")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_dict(self):
        return {"architectures": ["BertModel"], "model_type": "bert", **asdict(self)}


# ----------------------------------------------------------------------------
# the encoder


def attention(q, k, v, mask=None, dropout_p=0.0, training=False):
    """Scaled dot-product attention, softmax(q k^T / sqrt(hs) + mask) v (Vaswani et al. 2017, eq. 1).

    q: (B, nh, Tq, hs) queries; k, v: (B, nh, T, hs) keys and values; mask: additive (B, 1, 1, T),
    0 for real tokens and very negative for padding, or None. Returns (B, nh, Tq, hs)."""
    # Scale by 1/sqrt(hs) so the logits keep unit variance and softmax does not saturate.
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))  # (B, nh, Tq, T)
    if mask is not None:
        att = att + mask  # padded keys get ~-inf, so softmax gives them zero weight
    att = dropout(F.softmax(att, dim=-1), dropout_p, training)  # dropout: see "speed" below
    return att @ v  # (B, nh, Tq, hs): each query's weighted mix of the values


def additive_mask(attention_mask):
    """(B, T) of 1 (real token) / 0 (padding) -> additive (B, 1, 1, T), broadcast over heads and
    query positions: 0 for real tokens, the most negative float32 for padding."""
    return (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


class Embeddings(nn.Module):
    """Token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        # The segment embedding tells sentence A from sentence B in a cross-encoded pair.
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.ln = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.p = config.hidden_dropout_prob

    def forward(self, input_ids, token_type_ids):
        T = input_ids.size(1)
        positions = torch.arange(T, device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)  # (B, T, H)
        return dropout(self.ln(x), self.p, self.training)


class SelfAttention(nn.Module):
    """Multi-head scaled dot-product self-attention (Vaswani et al. 2017, eq. 1)."""

    def __init__(self, config, impl="sdpa"):
        super().__init__()
        self.nh = config.num_attention_heads
        self.hs = config.hidden_size // config.num_attention_heads
        # One (H -> 3H) matmul for queries, keys and values instead of three: same math,
        # fewer kernel launches and a larger, more efficient matrix multiply.
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_dropout = config.attention_probs_dropout_prob
        self.impl = impl  # forward_rows: "sdpa" (fused kernel) or "explicit" (attention()); same result

    def forward(self, x, mask, layout=None, cls_only=False):
        # x: (B, T, H); mask: additive (B, 1, 1, T), 0 for real tokens and very negative for
        # padding, or None. Given a layout, x is token rows instead: forward_rows below.
        if layout is not None:
            return self.forward_rows(x, mask, layout, cls_only)
        B, T, H = x.shape
        q, k, v = self.qkv(x).split(H, dim=2)  # 3 x (B, T, H)
        q, k, v = (t.view(B, T, self.nh, self.hs).transpose(1, 2) for t in (q, k, v))  # 3 x (B, nh, T, hs)
        y = attention(q, k, v, mask, self.attn_dropout, self.training)  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, H)  # re-assemble the heads side by side
        return self.proj(y)  # (B, T, H)

    def forward_rows(self, x, mask, layout, cls_only=False):
        """forward, faster and with the same values (encode_fast runs it): on the token rows of a
        Layout, through PyTorch's fused attention kernel, and for the [CLS] positions alone when
        cls_only. x: (M, H) token rows; returns (M, H), or (B, H) for cls_only."""
        B, T, H = layout.B, layout.T, x.size(-1)
        if cls_only:
            # One query per sequence, but keys and values of every token: slice the fused weight.
            q = F.linear(x.index_select(0, layout.first), self.qkv.weight[:H], self.qkv.bias[:H])  # (B, H)
            q = q.view(B, 1, H)
            k, v = layout.to_batch(F.linear(x, self.qkv.weight[H:], self.qkv.bias[H:])).split(H, dim=2)  # 2 x (B, T, H)
        else:
            q, k, v = layout.to_batch(self.qkv(x)).split(H, dim=2)  # 3 x (B, T, H)
        Tq = q.size(1)  # T, or 1 for cls_only
        q = q.view(B, Tq, self.nh, self.hs).transpose(1, 2)  # (B, nh, Tq, hs)
        k, v = (t.view(B, T, self.nh, self.hs).transpose(1, 2) for t in (k, v))  # 2 x (B, nh, T, hs)
        p = self.attn_dropout if self.training else 0.0
        if mask is not None:
            mask = mask.to(q.dtype)  # under autocast q is bf16/fp16 and the kernel wants matching dtypes
        # "sdpa" is PyTorch's fused kernel, the same values as attention(). On the CPU with
        # dropout it would run the written-out math anyway, so attention() runs then instead,
        # with its cheaper dropout mask; "explicit" always runs attention().
        if self.impl == "sdpa" and (p == 0.0 or x.is_cuda):
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B, nh, Tq, hs)
        else:
            y = attention(q, k, v, mask, p, self.training)  # (B, nh, Tq, hs)
        y = y.transpose(1, 2).reshape(B, Tq, H)  # re-assemble the heads side by side
        y = y.view(B, H) if cls_only else layout.from_batch(y)  # (B, H) or (M, H)
        return self.proj(y)


class Layer(nn.Module):
    """One transformer block, post-LN as in the original BERT: x = LN(x + sublayer(x))."""

    def __init__(self, config, impl="sdpa"):
        super().__init__()
        self.attn = SelfAttention(config, impl)
        self.ln1 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_out = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ln2 = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.p = config.hidden_dropout_prob

    def forward(self, x, mask, layout=None, cls_only=False):
        # x: (B, T, H); on encode_fast's path, token rows (M, H) of a layout (see SelfAttention)
        a = self.attn(x, mask, layout, cls_only)  # like x, or (B, H) for cls_only
        if cls_only:
            x = x.index_select(0, layout.first)  # (B, H): the residual stream at [CLS]
        x = self.ln1(x + dropout(a, self.p, self.training))
        h = F.gelu(self.ffn_in(x))  # (..., 4H); exact erf GELU, as BERT was trained with
        return self.ln2(x + dropout(self.ffn_out(h), self.p, self.training))


class BertModel(nn.Module):
    def __init__(self, config, attn_impl="sdpa", unpad=True, fast=True):
        super().__init__()
        if attn_impl not in ("sdpa", "explicit"):
            raise ValueError(f"attn_impl must be 'sdpa' or 'explicit', not {attn_impl!r}")
        self.config = config
        self.fast = fast  # encode_fast (the default) or the plain encode; same values
        self.unpad = unpad  # encode_fast: skip padded positions in all but attention (Layout)
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config, attn_impl) for _ in range(config.num_hidden_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size)
        self.source_dir = None  # the folder the weights came from (for its vocab.txt)
        self.apply(self._init_weights)

    def _init_weights(self, module):
        # BERT's initialisation, used for a model trained from scratch (tests, tiny configs).
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        if isinstance(module, nn.Linear):
            nn.init.zeros_(module.bias)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            nn.init.zeros_(module.weight[module.padding_idx])

    @property
    def attn_impl(self):
        return self.layers[0].attn.impl if len(self.layers) else "sdpa"

    @attn_impl.setter
    def attn_impl(self, impl):
        for layer in self.layers:
            layer.attn.impl = impl

    def compile_layers(self, backend="inductor"):
        """torch.compile each transformer layer, for shapes that vary from batch to batch. Only
        the layers: encode's data-dependent choices (mask or not, padding removal or not) would
        break a whole-model graph, and they cost nothing in eager Python.

        Every layer runs the one Layer.forward, so they share one cache of compiled graphs, with
        a graph per variant: mask or none, padding removed or not, the [CLS]-only last layer or
        not, training (grad and dropout) or evaluation, and batches of one row (which torch
        specialises): 2^5 = 32. torch keeps 8 per function by default and runs the rest eagerly,
        which the first evaluation after training would reach, so the limit is raised to that count."""
        config = torch._dynamo.config
        name = "recompile_limit" if hasattr(config, "recompile_limit") else "cache_size_limit"  # torch < 2.7
        setattr(config, name, max(getattr(config, name), COMPILED_VARIANTS))
        for layer in self.layers:
            layer.compile(dynamic=True, backend=backend)

    def embed(self, input_ids, token_type_ids=None):
        """The embedding-layer output (B, T, H): where SMART adds its perturbation."""
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        return self.embeddings(input_ids, token_type_ids)

    def encode(self, x, attention_mask, cls_only=False):
        """Run the transformer layers and pooler from embedding-layer output x (B, T, H).

        With self.fast (the default), encode_fast below runs instead: the same values, faster.
        cls_only=True says the caller reads only the [CLS] vector, which encode_fast uses to skip
        most of the last layer's work; this plain version computes every position anyway."""
        if self.fast:
            return self.encode_fast(x, attention_mask, cls_only)
        mask = None if attention_mask is None else additive_mask(attention_mask)  # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, mask)  # (B, T, H)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, H): a dense layer over the [CLS] token
        return {"last_hidden_state": x, "pooler_output": pooled}

    def encode_fast(self, x, attention_mask, cls_only=False):
        """encode with the speed pieces below, the same values: no mask when nothing is padded
        (SDPA then takes its fastest kernel), padding removal (Layout), and with cls_only the
        last layer computed at [CLS] alone (its keys and values still come from every token),
        last_hidden_state then (B, 1, H). Hidden states at padded positions mean nothing; they
        are zeros when padding was removed."""
        B, T, H = x.shape
        mask, keep = None, None
        # The choices below read the mask on the host. On a GPU each question asked of a GPU
        # tensor makes the host wait for all queued work; one copy of the mask waits once.
        host = None if attention_mask is None else attention_mask.cpu()  # (B, T); free on a CPU
        # With no padding in the batch, no mask is needed, and SDPA can take its fastest kernel.
        if host is not None and not bool(host.all()):
            mask = additive_mask(attention_mask)  # (B, 1, 1, T)
            real = host.flatten().bool()  # (B * T,)
            # Padding at the end of each row (so [CLS] is real), and enough of it to pay off.
            if self.unpad and bool(host[:, 0].all()) and 1 - real.float().mean() >= UNPAD_MIN:
                keep = real.nonzero().squeeze(1).to(x.device, non_blocking=True)  # (N,)
        layout = Layout(B, T, keep, x.device)
        rows = layout.from_batch(x)  # (M, H)
        for i, layer in enumerate(self.layers):
            rows = layer(rows, mask, layout, cls_only and i == len(self.layers) - 1)
        hidden = rows.view(B, 1, H) if cls_only else layout.to_batch(rows)  # (B, 1, H) or (B, T, H)
        pooled = torch.tanh(self.pooler(hidden[:, 0]))  # (B, H): a dense layer over the [CLS] token
        return {"last_hidden_state": hidden, "pooler_output": pooled}

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.encode(self.embed(input_ids, token_type_ids), attention_mask)

    @classmethod
    def from_pretrained(
        cls, name_or_path=hub.DEFAULT_MODEL, attn_impl="sdpa", cache_dir=None, base_url=None, **overrides
    ):
        """Load a model folder, the packaged default, or a hub id. `overrides` replace config
        fields, e.g. hidden_dropout_prob=0.3."""
        folder = hub.resolve_model_dir(name_or_path, cache_dir=cache_dir, base_url=base_url)
        try:
            config = BertConfig.from_dict({**hub.read_config(folder / "config.json"), **overrides})
        except (TypeError, ValueError) as e:
            raise hub.ModelFileError(f"{folder / 'config.json'}: {e}") from None
        model = cls(config, attn_impl)
        expected = {k: v.shape for k, v in model.state_dict().items()}
        weights = hub.load_weights(folder)
        model.load_state_dict(from_hf_state_dict(weights, expected, hub.weights_file(folder), model.state_dict()))
        model.source_dir = folder
        return model

    def save_pretrained(self, folder, vocab_file=None):
        """Write config.json, model.safetensors and vocab.txt in Hugging Face's layout."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        files.write_text(folder / "config.json", json.dumps(self.config.to_dict(), indent=2) + "\n")
        hub.save_safetensors(to_hf_state_dict(self.state_dict()), folder / "model.safetensors")
        vocab_file = Path(vocab_file) if vocab_file else self.source_dir and self.source_dir / "vocab.txt"
        if vocab_file is None or not Path(vocab_file).is_file():
            raise ValueError("save_pretrained needs a vocab.txt: pass vocab_file= (model has no source folder)")
        if Path(vocab_file).resolve() != (folder / "vocab.txt").resolve():
            files.copy_file(vocab_file, folder / "vocab.txt")
        for name in ("tokenizer_config.json",):  # keeps the lower-casing choice with the model
            if self.source_dir and (self.source_dir / name).is_file() and self.source_dir.resolve() != folder.resolve():
                files.copy_file(self.source_dir / name, folder / name)


# ----------------------------------------------------------------------------
# speed: the pieces the model above uses to run faster, each giving the same values as the
# plain version (tests/test_minbert.py checks that they agree)


def dropout(x, p, training):
    """Inverted dropout (Srivastava et al. 2014): zero each entry with probability p, scale the
    rest by 1 / (1 - p) so the expected value is unchanged.

    On the CPU, drawing the random mask is a large share of a training step (the attention
    probabilities alone are B * nh * T * T entries per layer), and torch draws one random number
    per entry. Here one 64-bit draw gives four 16-bit random integers, four entries' worth, which
    is much faster (docs/performance.md); p is rounded to a multiple of 1/65536. GPUs have a fused kernel.
    tests/test_minbert.py checks its keep rate (1 - p), its 1 / (1 - p) scale and its four lanes."""
    if not training or p == 0.0:
        return x
    if x.is_cuda:
        return F.dropout(x, p, training=True)
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_(-(2**63), 2**63 - 1)
    bits = words.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    keep = bits >= round(p * 65536) - 32768  # true with probability 1 - p
    return torch.where(keep, x * (1.0 / (1.0 - p)), 0.0)


class Layout:
    """Which token positions of a (B, T) batch the layers compute, as rows of an (M, H) matrix.

    Padding removal: every layer but attention treats tokens independently (the linear
    layers, GELU, LayerNorm, dropout), so it can run on the N real tokens alone and skip the
    padding, as FasterTransformer's and ByteTransformer's "remove padding" do. Only attention
    needs the (B, T) layout, to know which tokens share a sequence: `to_batch` scatters the
    rows into it (zeros at padded positions) and `from_batch` gathers them back. With keep
    None, the rows are all B * T positions and both are free reshapes."""

    def __init__(self, B, T, keep, device):
        self.B, self.T, self.keep = B, T, keep  # keep: (N,) flat indices b * T + t of the real tokens, or None
        starts = torch.arange(B, device=device) * T  # (B,)
        # the row of each sequence's first token ([CLS]): b * T, or its place among the kept rows
        self.first = starts if keep is None else torch.searchsorted(keep, starts)  # (B,)

    def to_batch(self, rows):  # (M, C) -> (B, T, C)
        if self.keep is None:
            return rows.view(self.B, self.T, -1)
        full = rows.new_zeros(self.B * self.T, rows.size(-1))
        return full.index_copy(0, self.keep, rows).view(self.B, self.T, -1)

    def from_batch(self, x):  # (B, T, C) -> (M, C)
        x = x.reshape(self.B * self.T, -1)
        return x if self.keep is None else x.index_select(0, self.keep)


# Compiled graphs of Layer.forward a run may need (BertModel.compile_layers says which).
COMPILED_VARIANTS = 32

# Padding removal costs a scatter and a gather per layer, so it is used only when at least
# this fraction of the batch is padding. Measured when it was set (MiniLM, CPU, batches 32 x 64
# and 16 x 128): no gain at 3-6% padding, about even at 10%, 1.2-1.3x at 25%. Length-bucketed
# training batches have little padding; random-order ones have much.
UNPAD_MIN = 0.1


# ----------------------------------------------------------------------------
# checkpoint names: Hugging Face's on the left, ours on the right

KEY_MAP = [  # name prefixes; {i} stands for the layer number
    ("embeddings.word_embeddings.", "embeddings.word."),
    ("embeddings.position_embeddings.", "embeddings.position."),
    ("embeddings.token_type_embeddings.", "embeddings.token_type."),
    ("embeddings.LayerNorm.", "embeddings.ln."),
    ("encoder.layer.{i}.attention.self.query.", "layers.{i}.attn.query."),  # the three are fused
    ("encoder.layer.{i}.attention.self.key.", "layers.{i}.attn.key."),  # into layers.{i}.attn.qkv
    ("encoder.layer.{i}.attention.self.value.", "layers.{i}.attn.value."),  # (see below)
    ("encoder.layer.{i}.attention.output.dense.", "layers.{i}.attn.proj."),
    ("encoder.layer.{i}.attention.output.LayerNorm.", "layers.{i}.ln1."),
    ("encoder.layer.{i}.intermediate.dense.", "layers.{i}.ffn_in."),
    ("encoder.layer.{i}.output.dense.", "layers.{i}.ffn_out."),
    ("encoder.layer.{i}.output.LayerNorm.", "layers.{i}.ln2."),
    ("pooler.dense.", "pooler."),
]


def _rename(name, pairs):
    """Rename by the first matching (from, to) prefix pair, or None if none matches."""
    for src, dst in pairs:
        match = re.match(re.escape(src).replace(r"\{i\}", r"(\d+)"), name)
        if match:
            return dst.replace("{i}", match.group(1) if match.groups() else "") + name[match.end() :]
    return None


# Keys a checkpoint may carry that this encoder has no use for: the pre-training heads
# (masked LM, next sentence prediction), reported when skipped, and the position-id buffer
# of older Hugging Face versions, which only ever holds 0, 1, 2, ... (we compute it).
PRETRAINING_HEADS = re.compile(r"^(cls|classifier)\.")  # BertForPreTraining's, BertFor*Classification's
POSITION_IDS = "embeddings.position_ids"


def normalise_hf_key(key):
    """Normalise a checkpoint key: drop a model prefix, rename TF-era gamma/beta (bert-base-uncased's
    pytorch_model.bin calls LayerNorm's weight and bias gamma and beta). mlm.py reads the cls.* head
    keys through it too."""
    key = re.sub(r"^(bert|model)\.", "", key)
    return re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))


def from_hf_state_dict(state, expected, source="checkpoint", fresh=None):
    """Map a Hugging Face BERT state dict onto our names, checking every key and shape
    against `expected` (our name -> shape) and listing every mismatch in the error. A checkpoint
    without the pooler (BertForMaskedLM has none) takes `fresh`'s, the new model's own, as
    Hugging Face's from_pretrained does: it is read only by --pooling pooler."""
    ours, unexpected, ignored = {}, [], 0
    for key, tensor in state.items():
        name = normalise_hf_key(key)
        if name == POSITION_IDS:
            continue
        if PRETRAINING_HEADS.match(name):
            ignored += 1
            continue
        renamed = _rename(name, KEY_MAP)
        if renamed is None:
            unexpected.append(key)
        else:
            ours[renamed] = tensor
    # Fuse each layer's separate query/key/value projections into one qkv projection.
    for qkv_name in [k for k in expected if ".attn.qkv." in k]:
        parts = [qkv_name.replace(".qkv.", f".{n}.") for n in ("query", "key", "value")]
        if all(p in ours for p in parts):
            ours[qkv_name] = torch.cat([ours.pop(p) for p in parts], dim=0)
    missing = sorted(set(expected) - set(ours))
    if fresh is not None and missing and all(k.startswith("pooler.") for k in missing):
        print(f"{source}: no pooler (a masked-LM checkpoint?): it starts untrained, and only --pooling pooler reads it")
        ours.update({k: fresh[k] for k in missing})
        missing = []
    unexpected += sorted(set(ours) - set(expected))
    wrong = [
        f"{k}: checkpoint {tuple(ours[k].shape)}, model {tuple(expected[k])}"
        for k in expected
        if k in ours and ours[k].shape != expected[k]
    ]
    problems = [
        f"{len(keys)} {what} ({'; '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})"
        for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("wrong shapes", wrong))
        if keys
    ]
    if problems:  # one line, the first few of each kind: a wrong hidden size makes every shape wrong
        raise hub.ModelFileError(f"{source}: does not match config.json: " + ", ".join(problems))
    if ignored:
        print(f"{source}: skipped {ignored} head tensors (cls.*, classifier.*), which the encoder does not use")
    return {k: v.float() if v.is_floating_point() else v for k, v in ours.items()}


def to_hf_state_dict(state):
    """Inverse of from_hf_state_dict: our names -> Hugging Face BertModel names."""
    inverse = [(ours, theirs) for theirs, ours in KEY_MAP]
    out = {}
    for key, tensor in state.items():
        if ".attn.qkv." in key:  # split the fused projection back into query, key and value
            for name, part in zip(("query", "key", "value"), tensor.chunk(3, dim=0)):
                out[_rename(key.replace(".qkv.", f".{name}."), inverse)] = part
            continue
        renamed = _rename(key, inverse)
        if renamed is None:
            raise KeyError(f"no Hugging Face name for parameter {key}")
        out[renamed] = tensor
    return out
