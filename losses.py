"""Sentiment losses for the ordered SST-5 classes (report "BERT and Beyond" §3.3, Figure 2).

Cross-entropy treats the five classes (negative .. positive) as unordered: calling a "positive"
review "negative" costs as much as calling it "somewhat positive". The alternatives here
train the same K logits; predictions stay the argmax of the logits either way.

  ce    -log p_y,  p = softmax(logits)                               (heads.py uses F.cross_entropy)
        with label smoothing eps (Szegedy et al. 2016, "Rethinking the Inception Architecture"
        §7; train.py --label-smoothing): the target is (1 - eps) onehot(y) + eps / K, so
            L = -(1 - eps) log p_y - eps / K sum_k log p_k
        and the model is not pushed to ever more confident logits on SST's noisy labels.

  oll   ordinal log-loss (Castagnos, Mihelich & Dognin, COLING 2022):
            L = -sum_i log(1 - p_i) * |i - y|^alpha,   p = softmax(logits)
        every wrong class i is pushed down in proportion to its distance from the true class,
        so far-off mistakes cost more than near ones; alpha (default 1) sets how much more.
        The true class has distance 0 and is raised only through the softmax.

  dual  the report's "Dual-Objective Cross-Entropy", a one-vs-all loss: each logit x_j is its
        own binary classifier of "is the class j", trained with binary cross-entropy against
        the one-hot target, as the report's equation (§3.3) writes it: summed over the K
        classes, averaged over the N examples,
            L = -1/N sum_i sum_j [y_ij log s(x_ij) + (1 - y_ij) log(1 - s(x_ij))]
        with s the sigmoid. The report's final model (Table 3, "SFT + SMART + Dual") trains SST
        with this loss alone, not summed with cross-entropy. Probabilities for ensembling are
        the sigmoids normalised to sum to 1.

  dual-mean  the same terms averaged over examples and classes (1/(N K)), K = 5 times smaller:
        what --sst-loss dual meant here before it followed the equation (the report's text says
        the class losses are "averaged"; its equation sums them). Kept so that older runs and
        their figures in docs/ can be redone; it weighs SST K times less against the other tasks
        and against SMART.

Two regularizers for training (train.py), beside the losses of the heads:

  R-Drop (Liang et al. 2021, "R-Drop: Regularized Dropout for Neural Networks", eq. 1-3): each
        example passes the model twice, under two dropout masks, giving distributions P1 and P2;
        the paper's loss is L1 + L2 + alpha (KL(P1 || P2) + KL(P2 || P1)) / 2. We take half of it,
            L = (L1 + L2) / 2 + alpha / 2 * (KL(P1 || P2) + KL(P2 || P1)) / 2
        so the task loss keeps the scale of one pass (its weight against the other tasks does not
        change) and alpha is the paper's. L1, L2 are the head's loss; P the softmax of the logits.

  Pearson (for STS, whose metric is Pearson's r; train.py --sts-loss mse-pearson):
            L = MSE + (1 - r),   r the correlation of the predicted and gold scores over the batch
        r alone ignores the scale and offset of the scores, so MSE keeps them on 0..5.

    loss = sentiment_loss("oll", logits, labels, alpha=1.0)   # logits (B, K), labels (B,) long
"""

import torch
import torch.nn.functional as F

SST_LOSSES = ("ce", "oll", "dual", "dual-mean")
DUAL_LOSSES = ("dual", "dual-mean")
STS_LOSSES = ("mse", "mse-pearson")


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


def dual_objective_loss(logits, labels, per_class="sum"):
    """Binary cross-entropy of every logit against the one-hot target, summed over the classes
    (the report's equation) or averaged ("mean", dual-mean), then averaged over the batch.
    logits (B, K), labels (B,)."""
    target = F.one_hot(labels, logits.shape[-1]).float()  # (B, K)
    terms = F.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")  # (B, K)
    return (terms.sum(-1) if per_class == "sum" else terms.mean(-1)).mean()


def sentiment_loss(name, logits, labels, alpha=1.0):
    """--sst-loss NAME beside plain cross-entropy, which heads.SentimentHead computes itself."""
    if name == "oll":
        return ordinal_log_loss(logits, labels, alpha)
    if name == "dual":
        return dual_objective_loss(logits, labels)
    if name == "dual-mean":
        return dual_objective_loss(logits, labels, per_class="mean")
    raise ValueError(f"unknown sentiment loss {name!r}; choose from {', '.join(SST_LOSSES)}")


def dual_probabilities(logits):
    """Class probabilities (B, K) under the dual losses, for ensembling: each class's sigmoid,
    normalised to sum to 1 (their logits are K independent yes/no scores, not a softmax's)."""
    s = torch.sigmoid(logits.float())  # (B, K), each in (0, 1) on its own
    return s / s.sum(-1, keepdim=True)


def rdrop_kl(logits_a, logits_b):
    """R-Drop's consistency term: (KL(P_a || P_b) + KL(P_b || P_a)) / 2 of the softmax distributions,
    averaged over the batch, with the gradient through both sides. logits (B, K). (smart.symmetric_kl,
    SMART's l_s, is the sum of the two KLs, with the distribution inside each expectation detached.)"""
    log_a, log_b = logits_a.float().log_softmax(-1), logits_b.float().log_softmax(-1)  # (B, K)
    kl_ab = (log_a.exp() * (log_a - log_b)).sum(-1)  # (B,)
    kl_ba = (log_b.exp() * (log_b - log_a)).sum(-1)
    return ((kl_ab + kl_ba) / 2).mean()


def rdrop_loss(loss_a, loss_b, logits_a, logits_b, alpha):
    """R-Drop's loss, halved (the module docstring): the mean of the two passes' losses plus
    alpha / 2 times rdrop_kl of their logits."""
    return (loss_a + loss_b) / 2 + alpha / 2 * rdrop_kl(logits_a, logits_b)


def pearson_loss(scores, labels, eps=1e-12):
    """1 - r, r Pearson's correlation of the scores and the labels over the batch (B,).
    A batch of one, or one whose scores or labels are all equal, has no correlation: r = 0 there
    (the clamp keeps the division finite, not NaN). The gradient is then 0 for a batch of one or
    equal labels; for equal scores and varying labels it is about (y - mean y) / sqrt(eps), large,
    as r's own gradient grows without bound as the scores approach a constant (--clip bounds it)."""
    x = scores.float() - scores.float().mean()  # (B,)
    y = labels.float() - labels.float().mean()
    r = (x * y).sum() / ((x * x).sum() * (y * y).sum()).clamp(min=eps).sqrt()
    return 1 - r
