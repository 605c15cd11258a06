"""Sentiment losses (losses.py): hand-computed values, the ordinal gradient, the dual objective."""

import math

import pytest
import torch
import torch.nn.functional as F

from losses import dual_objective_loss, dual_probabilities, ordinal_log_loss, pearson_loss, sentiment_loss


def test_ordinal_log_loss_by_hand():
    # Equal logits over 3 classes: p = 1/3 each, log(1 - p) = log(2/3) for every class.
    # y = 0: distances (0, 1, 2), so L = -(1 + 2) log(2/3) = 3 log 1.5; with alpha 2, (1 + 4) log 1.5.
    zeros, y0 = torch.zeros(1, 3), torch.tensor([0])
    assert math.isclose(ordinal_log_loss(zeros, y0).item(), 3 * math.log(1.5), rel_tol=1e-6)
    assert math.isclose(ordinal_log_loss(zeros, y0, alpha=2.0).item(), 5 * math.log(1.5), rel_tol=1e-6)
    # logits (0, ln 2, 0): p = (1/4, 1/2, 1/4); y = 1: L = -(1 * log 3/4 + 1 * log 3/4)
    logits = torch.tensor([[0.0, math.log(2.0), 0.0]])
    assert math.isclose(ordinal_log_loss(logits, torch.tensor([1])).item(), -2 * math.log(0.75), rel_tol=1e-6)


def test_losses_of_bfloat16_logits_are_computed_in_float32():
    # Under bf16 autocast the heads give bf16 logits; the losses still compute in float32 (bf16 keeps
    # 8 bits of mantissa: log(2/3) there is off by about 1e-3). Zeros are exact in bf16.
    zeros = torch.zeros(1, 3, dtype=torch.bfloat16)
    oll = ordinal_log_loss(zeros, torch.tensor([0]))
    assert oll.dtype == torch.float32 and math.isclose(oll.item(), 3 * math.log(1.5), rel_tol=1e-6)
    dual = dual_objective_loss(zeros, torch.tensor([0]))
    assert dual.dtype == torch.float32 and math.isclose(dual.item(), 3 * math.log(2), rel_tol=1e-6)


def test_ordinal_log_loss_is_the_formula_and_stays_finite():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 5) * 3, torch.tensor([0, 1, 2, 3, 4, 2])
    p = logits.softmax(-1)
    d = (torch.arange(5)[None, :] - labels[:, None]).abs().float() ** 1.5
    plain = -(torch.log(1 - p) * d).sum(-1).mean()
    assert torch.allclose(ordinal_log_loss(logits, labels, alpha=1.5), plain, rtol=1e-5)
    # A wrong class with p = 1 in float32: log(1 - p) would be -inf; the loss stays finite.
    confident = torch.tensor([[0.0, 0.0, 200.0]], requires_grad=True)
    loss = ordinal_log_loss(confident, torch.tensor([0]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 100 and torch.isfinite(confident.grad).all()


def test_ordinal_gradient_pushes_far_classes_down_more_than_near_ones():
    # Equal logits over 5 classes, true class 1: dL/dx_j = d_j p/(1-p) - p sum_i d_i p/(1-p), p = 1/5,
    # so with d = (1, 0, 1, 2, 3): -grad = (d_j - 7/5) / -4 = (0.1, 0.35, 0.1, -0.15, -0.4).
    logits = torch.zeros(1, 5, requires_grad=True)
    ordinal_log_loss(logits, torch.tensor([1])).backward()
    down = -logits.grad[0]
    assert torch.allclose(down, torch.tensor([0.1, 0.35, 0.1, -0.15, -0.4]), atol=1e-6)
    assert down[1] > down[2] > down[3] > down[4]  # the true class up most, the farthest down most
    # Cross-entropy, for contrast, pushes every wrong class down alike.
    ce = torch.zeros(1, 5, requires_grad=True)
    F.cross_entropy(ce, torch.tensor([1])).backward()
    assert torch.allclose(-ce.grad[0, [0, 2, 3, 4]], torch.full((4,), -0.2))


def test_dual_objective_by_hand():
    # "BERT and Beyond" §3.3's equation: -1/N sum_i sum_j [...], summed over the C classes.
    # Zero logits: every term is log 2, so 5 classes give 5 log 2 (dual-mean: log 2, 5x lower).
    zeros, y = torch.zeros(2, 5), torch.tensor([0, 3])
    assert math.isclose(dual_objective_loss(zeros, y).item(), 5 * math.log(2), rel_tol=1e-6)
    assert math.isclose(sentiment_loss("dual", zeros, y).item(), 5 * math.log(2), rel_tol=1e-6)
    assert math.isclose(sentiment_loss("dual-mean", zeros, y).item(), math.log(2), rel_tol=1e-6)
    # logits (2, -1, 0), y = 0: terms -log s(2), -log(1 - s(-1)) = -log s(1), -log(1 - s(0)) = log 2
    s = lambda x: 1 / (1 + math.exp(-x))
    terms = -math.log(s(2)) - math.log(s(1)) + math.log(2)
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    assert math.isclose(dual_objective_loss(logits, torch.tensor([0])).item(), terms, rel_tol=1e-6)
    assert math.isclose(sentiment_loss("dual-mean", logits, torch.tensor([0])).item(), terms / 3, rel_tol=1e-6)
    # two examples: the sum over classes is averaged over the examples (N = 2), not summed
    two = torch.tensor([[2.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    expected = (terms + 3 * math.log(2)) / 2
    assert math.isclose(dual_objective_loss(two, torch.tensor([0, 1])).item(), expected, rel_tol=1e-6)


def test_dual_objective_is_near_zero_when_confident_and_right():
    right = torch.tensor([[-20.0, -20.0, 20.0, -20.0, -20.0]])
    assert dual_objective_loss(right, torch.tensor([2])).item() < 1e-6
    assert dual_objective_loss(right, torch.tensor([0])).item() > 5  # confident and wrong: large


def test_sentiment_loss_by_name():
    torch.manual_seed(1)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 4, 2, 1])
    assert torch.equal(sentiment_loss("oll", logits, labels, alpha=2.0), ordinal_log_loss(logits, labels, 2.0))
    assert torch.equal(sentiment_loss("dual", logits, labels), dual_objective_loss(logits, labels))
    assert torch.allclose(sentiment_loss("dual", logits, labels), 5 * sentiment_loss("dual-mean", logits, labels))
    values = {name: sentiment_loss(name, logits, labels).item() for name in ("oll", "dual", "dual-mean")}
    values["ce"] = F.cross_entropy(logits, labels).item()
    assert len(set(values.values())) == 4
    with pytest.raises(ValueError, match="unknown sentiment loss"):
        sentiment_loss("hinge", logits, labels)


def test_dual_probabilities_are_normalised_sigmoids():
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    probs = dual_probabilities(logits)
    s = torch.sigmoid(logits)
    assert torch.allclose(probs, s / s.sum(-1, keepdim=True))
    assert torch.allclose(probs.sum(-1), torch.ones(2)) and not torch.allclose(probs, logits.softmax(-1))
    # s(x) + s(-x) = 1, so logits (0.5, -0.5) give the sigmoids themselves: (s(0.5), s(-0.5))
    half = 1 / (1 + math.exp(-0.5))  # 0.6225
    assert torch.allclose(dual_probabilities(torch.tensor([[0.5, -0.5]])), torch.tensor([[half, 1 - half]]))


def test_pearson_loss_of_fractional_scores_by_hand():
    # scores (0.5, 1.5, 3.5), labels (0.25, 2.25, 2.25): centred x = (-4, -1, 5) / 3, y = (-4, 2, 2) / 3,
    # r = 24 / sqrt(42 * 24) = sqrt(4 / 7); the fractions count (no rounding to whole scores)
    scores, labels = torch.tensor([0.5, 1.5, 3.5]), torch.tensor([0.25, 2.25, 2.25])
    assert pearson_loss(scores, labels).item() == pytest.approx(1 - math.sqrt(4 / 7))
    assert pearson_loss(labels, scores).item() == pytest.approx(1 - math.sqrt(4 / 7))
