"""Task heads on one shared BERT encoder: sentiment, paraphrase, similarity.

Each task turns a batch into sentence vectors with the shared encoder, then a small head
maps those to outputs, a loss and predictions:

  sst   single sentence -> dropout + linear -> K class logits          cross-entropy (or losses.py)
  para  sentence pair   -> one logit ("is a paraphrase")                binary cross-entropy
  sts   sentence pair   -> one similarity score in [0, 5]               mean squared error
                                                      (--sts-loss mse-pearson: + 1 - Pearson r, losses.py)

Sentence pairs are encoded in one of two ways, chosen per task (report "Tuning Up BERT" §4.2,
Table 1; "BERT and Beyond" Table 1 runs "Mixed": cross for para, bi + cosine for sts):
  cross  both sentences in one sequence "[CLS] a [SEP] b [SEP]" with segment ids 0/1, so every
         layer attends across the pair; the head reads the pair's vector. More accurate.
  bi     each sentence encoded alone into u and v (Sentence-BERT, Reimers & Gurevych 2019);
         the head compares them. Cheaper at inference: a sentence's vector can be cached.

The bi-encoder heads (--bi-head; u, v the two sentence vectors after dropout, W a linear map):
  cosine        cos(u, v), or with --bi-projection cos(Wu, Wv), one W shared by both sentences
                ("Tuning Up BERT" §4.2). sts = (cos + 1) * 2.5; para logit = scale * cos + shift,
                scale and shift learned (ours: sigmoid(cos) alone stays in [0.27, 0.73]).
  cosine-fixed  "Tuning Up BERT" §4.2 as written (with --bi-projection, which §4.2 always applies):
                the same cosine, para logit = cos (so P(paraphrase) = sigmoid(cos), nothing learned
                after the cosine), sts = (cos + 1) * 2.5.
  cosine-layer  cos(f(u), f(v)), f = activation(W x); sts = 5 * sigmoid(scale * cos), para as cosine.
                Ours: BERT++'s Model E (§4.3.5) with a learned scale, which fixes the failure the
                report blames (§5: its scores stayed near 2.5).
  bertpp-e      BERT++'s Model E as the report describes it: the same f, para logit = relu(cos)
                ("a ReLU layer is added to the end", the sigmoid in its loss), sts = 5 * sigmoid(cos).
  concat        a linear layer over [u, v, |u - v|, u * v] (InferSent's features; Sentence-BERT's
                classifier drops u * v).
  concat-plain  a linear layer over [u; v] ("BERT and Beyond" §3.2, its paraphrase bi-encoder).
  sustech-b1    SUSTech §3.1 B1: a linear layer over W1 u * W2 v (W1, W2 one per sentence, as in the
                report's own code), trained with the L1 loss: para |sigmoid(logit) - y|, sts
                |5 * sigmoid(z) - y| (the report: "STS: similar as paraphrase").
  sustech-b2    SUSTech §3.1 B2 (its Tables 1-3): para a linear layer over [u, v, Wu * Wv] with
                binary cross-entropy (ours: the report names no loss for it); sts 5 * cos(Wu, Wv)
                with squared error. One W per task.
where "*" is the element-wise product (the report's "dot product", concatenated as a vector in B2).
SUSTech's dropout layer comes first, before W; like every head here a dropout also precedes the
output layer (B2's code has both, B1's only the first).

--share-pair-heads (BERT++ §5-6): para and sts share every layer before their output layer: the
per-sentence linear maps (W, W1, W2, f) and the fusion layers (--head-layers > 1) that turn the
pair into one vector. Each task keeps its output layer, scale and shift.

The sentence vector (pooling) is the [CLS] token's last hidden state ("cls"), the mean over real
tokens ("mean"), or BERT's pooler output, dense + tanh over [CLS] ("pooler", what the course's
starter code uses). Linear heads can be deeper: head_layers = N puts N - 1 hidden layers
(linear + activation, to H: the first from the head's input, then H -> H) before the output
layer (BERT++ Model A).

--pair-symmetry: a pair's label does not depend on its order, so cross-encoded pairs train on a
random order of the two sentences (train.py) and predict from both, [CLS] a [SEP] b [SEP] and
[CLS] b [SEP] a [SEP] (test-time symmetrization): para averages the two probabilities, as
ensemble.py averages its members' (the mean of the logits would be a geometric mean of the odds,
more confident where the orders agree; the two differ only where they disagree), sts the scores.

The model is split into `embed` (token ids -> embedding-layer output) and `from_embeddings`
(the rest), so SMART can perturb the embeddings in between (smart.py).

    model = MultitaskBert(bert, num_classes=5, config=HeadConfig(sts_encoding="bi", sst_loss="dual"))
"""

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses import DUAL_LOSSES, SST_LOSSES, STS_LOSSES, dual_probabilities, pearson_loss, sentiment_loss
from tasks import TASK_NAMES, TASKS

POOLINGS = ("cls", "mean", "pooler")
ENCODINGS = ("cross", "bi")
COSINE_HEADS = ("cosine", "cosine-fixed", "cosine-layer", "bertpp-e")  # CosineHead
FUSIONS = {"cross": 1, "concat": 4, "concat-plain": 2, "sustech-b1": 1, "sustech-b2": 3}  # LinearPairHead: width / H
BI_HEADS = (*COSINE_HEADS, "concat", "concat-plain", "sustech-b1", "sustech-b2")
LAYER_HEADS = ("cosine-layer", "bertpp-e")  # cos(f(u), f(v)) with f = activation(W x)
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


@dataclass
class HeadConfig:
    """How the heads are built; each field is the train.py flag of the same name (--sts-bi-head, ...)."""

    pooling: str = "cls"  # cls | mean | pooler
    para_encoding: str = "cross"  # cross | bi
    sts_encoding: str = "cross"
    para_bi_head: str = "cosine"  # one of BI_HEADS (bi-encoded pairs only)
    sts_bi_head: str = "cosine"
    bi_projection: bool = False  # a linear map before the cosine head
    head_layers: int = 1  # layers of the linear heads (sst, and the pair heads but the cosine ones)
    head_activation: str = "relu"  # between head layers, and f of cosine-layer and bertpp-e
    dropout: dict = field(default_factory=dict)  # task -> rate before its head; a float is every task's
    sst_loss: str = "ce"  # one of SST_LOSSES (losses.py)
    oll_alpha: float = 1.0
    label_smoothing: float = 0.0  # of sentiment's cross-entropy
    sts_loss: str = "mse"  # one of STS_LOSSES: mse, or mse-pearson (losses.py)
    share_pair_heads: bool = False  # para and sts share their layers before the output (BERT++ §5-6)
    pair_symmetry: bool = False  # cross-encoded pairs: trained in a random order, predicted in both (averaged)

    def __post_init__(self):
        rates = self.dropout if isinstance(self.dropout, dict) else {t: self.dropout for t in TASK_NAMES}
        self.dropout = {t: rates.get(t, 0.1) for t in TASK_NAMES}
        checks = [("pooling", self.pooling, POOLINGS), ("head-activation", self.head_activation, tuple(ACTIVATIONS))]
        checks += [("sst-loss", self.sst_loss, SST_LOSSES), ("sts-loss", self.sts_loss, STS_LOSSES)]
        for task in ("para", "sts"):
            checks.append((f"{task}-encoding", getattr(self, f"{task}_encoding"), ENCODINGS))
            checks.append((f"{task}-bi-head", getattr(self, f"{task}_bi_head"), BI_HEADS))
        for flag, value, choices in checks:
            if value not in choices:
                raise ValueError(f"--{flag} must be one of {', '.join(choices)}, got {value!r}")
        if not 0 <= self.label_smoothing < 1 or (self.label_smoothing and self.sst_loss != "ce"):
            raise ValueError(f"--label-smoothing needs --sst-loss ce and a value in [0, 1), got {self.label_smoothing}")
        if self.sts_loss != "mse" and self.bi_head("sts") == "sustech-b1":
            raise ValueError("--sts-loss: the sustech-b1 head trains with its own L1 loss")
        if self.head_layers < 1:
            raise ValueError(f"--head-layers must be at least 1, got {self.head_layers}")
        if self.bi_projection and not any(self.bi_head(t) in ("cosine", "cosine-fixed") for t in ("para", "sts")):
            raise ValueError("--bi-projection needs a bi-encoded task with the cosine or cosine-fixed head")
        if self.share_pair_heads:
            self.check_sharing()
        if self.pair_symmetry and "cross" not in (self.para_encoding, self.sts_encoding):
            raise ValueError("--pair-symmetry swaps the sentences of a cross-encoded pair; para and sts are bi-encoded")

    def check_sharing(self):
        """--share-pair-heads needs para and sts built alike, with at least one layer before the output."""
        para, sts = (self.encoding("para"), self.bi_head("para")), (self.encoding("sts"), self.bi_head("sts"))
        if para != sts:
            raise ValueError(f"--share-pair-heads needs the same pair head for para and sts, got {para} and {sts}")
        head = para[1]
        projected = head in (*LAYER_HEADS, "sustech-b1", "sustech-b2") or (head in COSINE_HEADS and self.bi_projection)
        fused = head not in COSINE_HEADS and self.head_layers > 1
        if not (projected or fused):
            raise ValueError(
                "--share-pair-heads: these pair heads have no layer before the output to share "
                "(add --head-layers 2, or --bi-projection with a cosine head)"
            )

    def encoding(self, task):
        """How the task's examples are encoded: "single", "cross" or "bi" (data.encode's argument)."""
        return getattr(self, f"{task}_encoding") if TASKS[task].is_pair else "single"

    def bi_head(self, task):
        """The task's bi-encoder head, or None when the task is not bi-encoded."""
        return getattr(self, f"{task}_bi_head") if self.encoding(task) == "bi" else None

    @classmethod
    def from_args(cls, args):
        """From train.py's flags (a dict: vars(args), or the args saved in a checkpoint). A flag the
        run did not have takes its default, so a checkpoint saved before the flag existed loads."""

        def get(key, default):
            return default if args.get(key) is None else args[key]

        pair_encoding, bi_head, dropout = get("pair_encoding", "cross"), get("bi_head", "cosine"), get("dropout", 0.1)
        return cls(
            pooling=get("pooling", "cls"),
            para_encoding=get("para_encoding", pair_encoding),
            sts_encoding=get("sts_encoding", pair_encoding),
            para_bi_head=get("para_bi_head", bi_head),
            sts_bi_head=get("sts_bi_head", bi_head),
            bi_projection=get("bi_projection", False),
            head_layers=get("head_layers", 1),
            head_activation=get("head_activation", "relu"),
            dropout={t: get(f"{t}_dropout", dropout) for t in TASK_NAMES},
            sst_loss=get("sst_loss", "ce"),
            oll_alpha=get("oll_alpha", 1.0),
            label_smoothing=get("label_smoothing", 0.0),
            sts_loss=get("sts_loss", "mse"),
            share_pair_heads=get("share_pair_heads", False),
            pair_symmetry=get("pair_symmetry", False),
        )


def pool(encoded, attention_mask, pooling):
    """Sentence vector (B, H) from the encoder's output {"last_hidden_state" (B, T, H), "pooler_output" (B, H)}."""
    hidden = encoded["last_hidden_state"]
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "pooler":
        return encoded["pooler_output"]
    if pooling == "mean":  # average over real tokens only, as Sentence-BERT models are trained
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {pooling!r}")


# ----------------------------------------------------------------------------
# the heads


class FeedForward(nn.Module):
    """dropout + linear to the outputs, after layers - 1 hidden layers of dropout + linear + activation
    (the first in_dim -> H, the others H -> H)."""

    def __init__(self, in_dim, out_dim, hidden, dropout, layers=1, activation="relu"):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.hidden = nn.ModuleList(nn.Linear(in_dim if i == 0 else hidden, hidden) for i in range(layers - 1))
        self.act = ACTIVATIONS[activation]()
        self.out = nn.Linear(hidden if layers > 1 else in_dim, out_dim)

    def forward(self, x):  # (B, in_dim) -> (B, out_dim)
        for layer in self.hidden:
            x = self.act(layer(self.dropout(x)))  # (B, H)
        return self.out(self.dropout(x))


class SentimentHead(FeedForward):
    def __init__(self, hidden, num_classes, dropout, layers=1, activation="relu", loss="ce", alpha=1.0, smoothing=0.0):
        super().__init__(hidden, num_classes, hidden, dropout, layers, activation)
        self.loss_name, self.alpha, self.smoothing = loss, alpha, smoothing

    def loss(self, logits, labels):  # logits (B, K), labels (B,)
        if self.loss_name != "ce":  # --sst-loss: the reports' ordinal and one-vs-all losses (losses.py)
            return sentiment_loss(self.loss_name, logits, labels, self.alpha)
        return F.cross_entropy(logits.float(), labels, label_smoothing=self.smoothing)

    def predict(self, logits):
        """The class (B,), and the class probabilities (B, K), kept for ensembling."""
        probs = dual_probabilities(logits) if self.loss_name in DUAL_LOSSES else logits.float().softmax(-1)
        return logits.argmax(-1), probs


def pair_loss(kind, out, labels, l1=False, pearson=False):
    """Binary cross-entropy on the paraphrase logit, or mean squared error on the similarity score.
    l1 (SUSTech B1): the mean absolute error instead, of the probability sigmoid(logit) for para.
    pearson (--sts-loss mse-pearson): the squared error plus 1 - r over the batch (losses.py)."""
    out, labels = out.float(), labels.float()
    if pearson:
        return F.mse_loss(out, labels) + pearson_loss(out, labels)
    if l1:
        return F.l1_loss(torch.sigmoid(out) if kind == "binary" else out, labels)
    if kind == "binary":
        return F.binary_cross_entropy_with_logits(out, labels)
    return F.mse_loss(out, labels)


def pair_predict(kind, out):
    out = out.float()
    if kind == "binary":
        prob = torch.sigmoid(out)  # (B,), kept for ensembling
        return (prob > 0.5).long(), prob
    # Clip only when predicting: during training the loss should see the raw score.
    return out.clamp(0.0, 5.0), out


class LinearPairHead(FeedForward):
    """A feed-forward head over one vector per pair: the cross-encoded pair's own, or one fused
    from the two sentence vectors u, v (B, H) of a bi-encoder:

        concat        [u, v, |u - v|, u * v]  (B, 4H)      sustech-b1   W1 u * W2 v     (B, H)
        concat-plain  [u, v]                  (B, 2H)      sustech-b2   [u, v, Wu * Wv] (B, 3H)
    """

    def __init__(self, hidden, kind, fusion, dropout, layers=1, activation="relu", pearson=False):
        super().__init__(FUSIONS[fusion] * hidden, 1, hidden, dropout, layers, activation)
        self.kind, self.fusion, self.pearson = kind, fusion, pearson
        if fusion == "sustech-b1":  # one map per sentence, as in the report's code
            self.proj_a, self.proj_b = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
        if fusion == "sustech-b2":
            self.proj = nn.Linear(hidden, hidden)

    def fuse(self, u, v):
        if self.fusion == "concat":
            return torch.cat([u, v, (u - v).abs(), u * v], dim=-1)
        if self.fusion == "concat-plain":
            return torch.cat([u, v], dim=-1)
        u, v = self.dropout(u), self.dropout(v)  # SUSTech: "first a dropout layer", then the maps
        if self.fusion == "sustech-b1":
            return self.proj_a(u) * self.proj_b(v)
        return torch.cat([u, v, self.proj(u) * self.proj(v)], dim=-1)  # sustech-b2

    def forward(self, u, v=None):  # cross: u (B, H) of the pair; bi: u, v (B, H) of each sentence
        x = u if self.fusion == "cross" else self.fuse(u, v)  # (B, FUSIONS[fusion] * H)
        out = super().forward(x).squeeze(-1)  # (B,)
        if self.fusion == "sustech-b1" and self.kind == "regression":
            out = 5.0 * torch.sigmoid(out)  # B1's score lies in (0, 5)
        return out

    def loss(self, out, labels):
        return pair_loss(self.kind, out, labels, l1=self.fusion == "sustech-b1", pearson=self.pearson)

    def predict(self, out):
        return pair_predict(self.kind, out)


class CosineHead(nn.Module):
    """Cosine similarity of the two sentence vectors, mapped onto a logit or a score; `head` is one
    of COSINE_HEADS, or sustech-b2 for sts (the module docstring has the formulas)."""

    def __init__(self, hidden, kind, dropout, head="cosine", projection=False, activation="relu", pearson=False):
        super().__init__()
        self.kind, self.head, self.pearson = kind, head, pearson
        self.dropout = nn.Dropout(dropout)
        # One linear map shared by both sentences, so u and v stay in one embedding space.
        mapped = projection or head in (*LAYER_HEADS, "sustech-b2")
        self.proj = nn.Linear(hidden, hidden) if mapped else None
        self.act = ACTIVATIONS[activation]() if head in LAYER_HEADS else nn.Identity()
        if kind == "binary" and head in ("cosine", "cosine-layer"):
            # A cosine lies in [-1, 1]; a learned scale and shift turn it into a logit that can
            # express confident probabilities (sigmoid(cos) alone never leaves [0.27, 0.73]).
            self.scale = nn.Parameter(torch.tensor(5.0))
            self.shift = nn.Parameter(torch.tensor(-2.5))
        elif head == "cosine-layer":
            # 5 * sigmoid(cos) alone stays in [1.3, 3.7], centred on 2.5, which the report blames for
            # Model E's failure (§5); a learned scale, starting at 5, lets the score reach 0 and 5.
            self.scale = nn.Parameter(torch.tensor(5.0))

    def forward(self, u, v):  # u, v: (B, H) of each sentence -> (B,)
        u, v = self.dropout(u), self.dropout(v)
        if self.proj is not None:
            u, v = self.act(self.proj(u)), self.act(self.proj(v))  # (B, H)
        cos = F.cosine_similarity(u.float(), v.float(), dim=-1)  # (B,) in [-1, 1]
        if self.kind == "binary":
            if self.head == "cosine-fixed":
                return cos  # P(paraphrase) = sigmoid(cos), as "Tuning Up BERT" §4.2 writes it
            if self.head == "bertpp-e":
                return F.relu(cos)  # so P(paraphrase) = sigmoid(relu(cos)) >= 0.5: the report's head
            return self.scale * cos + self.shift
        if self.head == "cosine-layer":
            return 5.0 * torch.sigmoid(self.scale * cos)
        if self.head == "bertpp-e":
            return 5.0 * torch.sigmoid(cos)
        if self.head == "sustech-b2":
            return 5.0 * cos  # in [-5, 5]; predictions are clipped to [0, 5]
        return (cos + 1.0) * 2.5  # map [-1, 1] onto the similarity scale [0, 5]

    def loss(self, out, labels):
        return pair_loss(self.kind, out, labels, pearson=self.pearson)

    def predict(self, out):
        return pair_predict(self.kind, out)


def build_head(task, hidden, num_classes, config):
    rate, layers, act = config.dropout[task], config.head_layers, config.head_activation
    kind = TASKS[task].kind
    if kind == "multiclass":
        loss = (config.sst_loss, config.oll_alpha, config.label_smoothing)
        return SentimentHead(hidden, num_classes, rate, layers, act, *loss)
    bi_head, pearson = config.bi_head(task), task == "sts" and config.sts_loss == "mse-pearson"
    if bi_head in COSINE_HEADS or (bi_head == "sustech-b2" and kind == "regression"):
        return CosineHead(hidden, kind, rate, bi_head, config.bi_projection, act, pearson)
    return LinearPairHead(hidden, kind, bi_head or "cross", rate, layers, act, pearson)


def share_layers(para, sts):
    """BERT++ §5-6: sts uses para's layers before the output (the same modules, so one set of
    weights gets both tasks' gradients); each keeps its own output layer and dropout."""
    for name in ("proj", "proj_a", "proj_b", "hidden"):
        if getattr(para, name, None) is not None and getattr(sts, name, None) is not None:
            setattr(sts, name, getattr(para, name))


# ----------------------------------------------------------------------------
# the model


class MultitaskBert(nn.Module):
    """The shared encoder plus one head per task.

    BERT's pooler is read by pooling "pooler" only; with "cls" or "mean" it is frozen. It would get
    no gradient anyway, and DistributedDataParallel, which expects a gradient for every trainable
    parameter, would stop at the second step of a single-task run (a multitask run tolerates unused
    parameters, since each step leaves out some heads, at the cost of a search of the graph)."""

    def __init__(self, bert, num_classes=5, config=None, tasks=TASK_NAMES):
        super().__init__()
        self.bert, self.config = bert, config or HeadConfig()
        self.pooling = self.config.pooling
        if self.pooling != "pooler":
            bert.pooler.requires_grad_(False)
        self.encoding = {t: self.config.encoding(t) for t in TASK_NAMES}
        H = bert.config.hidden_size
        self.heads = nn.ModuleDict({task: build_head(task, H, num_classes, self.config) for task in tasks})
        if self.config.share_pair_heads and {"para", "sts"} <= set(tasks):
            share_layers(self.heads["para"], self.heads["sts"])

    def sequences(self, task, batch):
        """The encoder inputs of a batch: one sequence per example, or two for a bi-encoded pair."""
        return [batch["a"], batch["b"]] if self.encoding[task] == "bi" else [batch]

    def embed(self, task, batch):
        """Embedding-layer outputs, one (B, T, H) tensor per sequence of the batch."""
        return [self.bert.embed(s["input_ids"], s["token_type_ids"]) for s in self.sequences(task, batch)]

    def from_embeddings(self, task, embeddings, batch):
        """Run the encoder and the task head from (possibly perturbed) embeddings."""
        cls_only = self.pooling != "mean"  # cls and pooler read only the [CLS] position
        vectors = [
            pool(self.bert.encode(x, s["attention_mask"], cls_only=cls_only), s["attention_mask"], self.pooling)
            for x, s in zip(embeddings, self.sequences(task, batch))
        ]  # 1 or 2 x (B, H)
        return self.heads[task](*vectors)

    def forward(self, task, batch, return_embeddings=False):
        embeddings = self.embed(task, batch)
        out = self.from_embeddings(task, embeddings, batch)
        return (out, embeddings) if return_embeddings else out

    def loss(self, task, out, labels):
        return self.heads[task].loss(out, labels)

    def predict(self, task, out):
        """(predictions, raw): class / 0-1 / clipped score, and probabilities or raw scores."""
        return self.heads[task].predict(out)

    def symmetric(self, task):
        """--pair-symmetry: whether the task's pairs are cross-encoded and predicted in both orders."""
        return self.config.pair_symmetry and self.encoding[task] == "cross"

    def predict_symmetric(self, task, out, out_swapped):
        """predict() from the outputs of both orders of each pair, (a, b) and (b, a): para averages
        the two probabilities (as ensemble.py averages its members'), sts the two scores."""
        if TASKS[task].kind == "binary":
            prob = (torch.sigmoid(out.float()) + torch.sigmoid(out_swapped.float())) / 2  # (B,)
            return (prob > 0.5).long(), prob
        return self.predict(task, (out.float() + out_swapped.float()) / 2)
