"""Sentiment losses for the ordered SST-5 classes (report "BERT and Beyond" §3.3, Figure 2).

Cross-entropy treats the five classes (negative .. positive) as unordered: calling a "positive"
review "negative" costs as much as calling it "somewhat positive". The two alternatives here
train the same K logits; predictions stay the argmax of the logits either way.

  ce    -log p_y,  p = softmax(logits)                               (heads.py uses F.cross_entropy)

  oll   ordinal log-loss (Castagnos, Mihelich & Dognin, COLING 2022):
            L = -sum_i log(1 - p_i) * |i - y|^alpha,   p = softmax(logits)
        every wrong class i is pushed down in proportion to its distance from the true class,
        so far-off mistakes cost more than near ones; alpha (default 1) sets how much more.
        The true class has distance 0 and is raised only through the softmax.

  dual  the report's "Dual-Objective Cross-Entropy", a one-vs-all loss: each logit x_j is its
        own binary classifier of "is the class j", trained with binary cross-entropy against
        the one-hot target:
            L = mean over examples and classes of -[y_j log s(x_j) + (1 - y_j) log(1 - s(x_j))]
        with s the sigmoid. The report's final model (Table 3, "SFT + SMART + Dual") trains SST
        with this loss alone, not summed with cross-entropy. Its written equation sums over the
        classes where the text says the class losses are averaged; the sum is K times the mean,
        which --sst-weight K reproduces. Probabilities for ensembling are the sigmoids
        normalised to sum to 1.

    loss = sentiment_loss("oll", logits, labels, alpha=1.0)   # logits (B, K), labels (B,) long
"""

import torch
import torch.nn.functional as F

SST_LOSSES = ("ce", "oll", "dual")


def ordinal_log_loss(logits, labels, alpha=1.0):
    """-sum_i log(1 - p_i) |i - y|^alpha, averaged over the batch. logits (B, K), labels (B,)."""
    logits = logits.float()
    K = logits.shape[-1]
    classes = torch.arange(K, device=logits.device)
    distance = (classes[None, :] - labels[:, None]).abs().float() ** alpha  # (B, K), 0 at the true class
    # log(1 - p_i) = log(sum_{j != i} exp x_j) - log(sum_j exp x_j), which stays finite when p_i
    # rounds to 1 (log1p(-p) would give -inf there and a NaN gradient).
    same = torch.eye(K, dtype=torch.bool, device=logits.device)  # (K, K)
    others = torch.where(same, -torch.inf, logits[:, None, :])  # (B, K, K): row i holds every logit but x_i
    log_not = others.logsumexp(-1) - logits.logsumexp(-1, keepdim=True)  # (B, K)
    return -(log_not * distance).sum(-1).mean()


def dual_objective_loss(logits, labels):
    """Mean binary cross-entropy of every logit against the one-hot target. logits (B, K), labels (B,)."""
    target = F.one_hot(labels, logits.shape[-1]).float()  # (B, K)
    return F.binary_cross_entropy_with_logits(logits.float(), target)


def sentiment_loss(name, logits, labels, alpha=1.0):
    if name == "ce":
        return F.cross_entropy(logits.float(), labels)
    if name == "oll":
        return ordinal_log_loss(logits, labels, alpha)
    if name == "dual":
        return dual_objective_loss(logits, labels)
    raise ValueError(f"unknown sentiment loss {name!r}; choose from {', '.join(SST_LOSSES)}")


def sentiment_probabilities(name, logits):
    """Class probabilities (B, K) for ensembling: the softmax, or for "dual" the normalised sigmoids."""
    if name == "dual":
        s = torch.sigmoid(logits.float())  # (B, K), each in (0, 1) on its own
        return s / s.sum(-1, keepdim=True)
    return logits.float().softmax(-1)
