"""Task heads on one shared BERT encoder: sentiment, paraphrase, similarity.

Each task turns a batch into sentence vectors with the shared encoder, then a small head
maps those to outputs, a loss and predictions:

  sst   single sentence -> dropout + linear -> K class logits          cross-entropy
  para  sentence pair   -> one logit ("is a paraphrase")                binary cross-entropy
  sts   sentence pair   -> one similarity score in [0, 5]               mean squared error

Sentence pairs are encoded in one of two ways (report "Tuning Up BERT" §4.2, Table 1):
  cross  both sentences in one sequence "[CLS] a [SEP] b [SEP]" with segment ids 0/1, so every
         layer attends across the pair; the head reads the [CLS] vector. More accurate.
  bi     each sentence encoded alone into u and v (Sentence-BERT, Reimers & Gurevych 2019);
         the head compares them: cosine similarity, or a linear layer over [u, v, |u-v|, u*v].
         Cheaper at inference: a sentence's vector can be cached and compared with many others.

The model is split into `embed` (token ids -> embedding-layer output) and `from_embeddings`
(the rest), so SMART can perturb the embeddings in between (smart.py).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from tasks import TASK_NAMES, TASKS


def pool(hidden, attention_mask, pooling):
    """Sentence vector (B, H) from the last hidden states (B, T, H)."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":  # average over real tokens only, as Sentence-BERT models are trained
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    raise ValueError(f"unknown pooling {pooling!r}")


class SentimentHead(nn.Module):
    def __init__(self, hidden, num_classes, dropout):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, u):  # u: (B, H) -> (B, K) logits
        return self.out(self.dropout(u))

    def loss(self, logits, labels):
        return F.cross_entropy(logits.float(), labels)

    def predict(self, logits):
        probs = logits.float().softmax(-1)  # (B, K), kept for ensembling
        return probs.argmax(-1), probs


class PairHead(nn.Module):
    """Paraphrase ("binary") or similarity ("regression") from a cross- or bi-encoded pair."""

    def __init__(self, hidden, kind, encoding, bi_head, dropout):
        super().__init__()
        self.kind, self.encoding, self.bi_head = kind, encoding, bi_head
        self.dropout = nn.Dropout(dropout)
        if encoding == "cross":
            self.out = nn.Linear(hidden, 1)
        elif bi_head == "concat":
            self.out = nn.Linear(4 * hidden, 1)
        elif bi_head == "cosine" and kind == "binary":
            # A cosine lies in [-1, 1]; a learned scale and shift turn it into a logit that can
            # express confident probabilities (sigmoid(cos) alone never leaves [0.27, 0.73]).
            self.scale = nn.Parameter(torch.tensor(5.0))
            self.shift = nn.Parameter(torch.tensor(-2.5))
        elif bi_head != "cosine":
            raise ValueError(f"unknown bi-encoder head {bi_head!r} (cosine or concat)")

    def forward(self, u, v=None):  # cross: u (B, H) of the pair; bi: u, v (B, H) of each sentence
        if self.encoding == "cross":
            return self.out(self.dropout(u)).squeeze(-1)  # (B,)
        u, v = self.dropout(u), self.dropout(v)
        if self.bi_head == "concat":
            return self.out(torch.cat([u, v, (u - v).abs(), u * v], dim=-1)).squeeze(-1)  # (B,)
        cos = F.cosine_similarity(u.float(), v.float(), dim=-1)  # (B,) in [-1, 1]
        if self.kind == "binary":
            return self.scale * cos + self.shift
        return (cos + 1.0) * 2.5  # map [-1, 1] onto the similarity scale [0, 5]

    def loss(self, out, labels):
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(out.float(), labels.float())
        return F.mse_loss(out.float(), labels.float())

    def predict(self, out):
        out = out.float()
        if self.kind == "binary":
            prob = torch.sigmoid(out)  # (B,), kept for ensembling
            return (prob > 0.5).long(), prob
        # Clip only when predicting: during training the loss should see the raw score.
        return out.clamp(0.0, 5.0), out


class MultitaskBert(nn.Module):
    """The shared encoder plus one head per task."""

    def __init__(
        self, bert, num_classes=5, pair_encoding="cross", bi_head="cosine", dropout=0.1, pooling="cls", tasks=TASK_NAMES
    ):
        super().__init__()
        H = bert.config.hidden_size
        self.bert, self.pooling = bert, pooling
        self.encoding = {t: pair_encoding if TASKS[t].is_pair else "single" for t in TASK_NAMES}
        self.heads = nn.ModuleDict()
        # dropout: one rate for every head, or a dict task -> rate
        rates = dropout if isinstance(dropout, dict) else {t: dropout for t in tasks}
        for task in tasks:
            if TASKS[task].kind == "multiclass":
                self.heads[task] = SentimentHead(H, num_classes, rates[task])
            else:
                self.heads[task] = PairHead(H, TASKS[task].kind, pair_encoding, bi_head, rates[task])

    def sequences(self, task, batch):
        """The encoder inputs of a batch: one sequence per example, or two for a bi-encoded pair."""
        return [batch["a"], batch["b"]] if self.encoding[task] == "bi" else [batch]

    def embed(self, task, batch):
        """Embedding-layer outputs, one (B, T, H) tensor per sequence of the batch."""
        return [self.bert.embed(s["input_ids"], s["token_type_ids"]) for s in self.sequences(task, batch)]

    def from_embeddings(self, task, embeddings, batch):
        """Run the encoder and the task head from (possibly perturbed) embeddings."""
        vectors = [
            pool(
                self.bert.encode(x, s["attention_mask"], cls_only=self.pooling == "cls")["last_hidden_state"],
                s["attention_mask"],
                self.pooling,
            )
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
