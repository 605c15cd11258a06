"""pcgrad.py: hand-worked 2-D and 3-D cases, a plain reference, and the training helper on a toy model."""

import pytest
import torch
import torch.nn.functional as F

import pcgrad
from pcgrad import pcgrad as surgery


def vec(*xs):
    return torch.tensor(xs, dtype=torch.float32)


def reference(grads, generator):
    """Algorithm 1 written plainly, drawing one randperm per task from the same generator."""
    total = torch.zeros_like(grads[0])
    for i in range(len(grads)):
        order = torch.randperm(len(grads), generator=generator).tolist()
        g = grads[i].clone()
        for j in order:
            if j != i and torch.dot(g, grads[j]) < 0:
                g = g - torch.dot(g, grads[j]) / torch.dot(grads[j], grads[j]) * grads[j]
        total = total + g
    return total


# ----------------------------------------------------------------------------------------
# pcgrad on vectors


def test_two_conflicting_tasks_by_hand():
    # g1·g2 = -1 < 0.  g1' = (1,0) - (-1/2)(-1,1) = (0.5, 0.5);  g2' = (-1,1) - (-1/1)(1,0) = (0, 1).
    g1, g2 = vec(1, 0), vec(-1, 1)
    torch.testing.assert_close(surgery([g1, g2]), vec(0.5, 1.5))
    torch.testing.assert_close(surgery([g1, g2], reduction="mean"), vec(0.25, 0.75))
    # Each projected gradient no longer conflicts: it is orthogonal to the other task's gradient.
    assert torch.dot(vec(0.5, 0.5), g2) == 0 and torch.dot(vec(0, 1), g1) == 0


def test_agreeing_and_orthogonal_pairs_are_just_added():
    assert torch.equal(surgery([vec(1, 2), vec(2, 1)]), vec(3, 3))  # g1·g2 = 4 > 0
    assert torch.equal(surgery([vec(1, 0), vec(0, 1)]), vec(1, 1))  # g1·g2 = 0: no conflict
    assert torch.equal(surgery([vec(1, -2, 3)]), vec(1, -2, 3))  # one task: nothing to project


def test_three_tasks_order_matters_and_matches_reference():
    # Task 1 conflicts with both others, and the result depends on which it meets first:
    #   via g2 then g3: (1,0,0) -> (0.5,0.5,0) -> (0.5,0.5,0) - (-0.5/2)(-1,0,1) = (0.25,0.5,0.25)
    #   via g3 then g2: (1,0,0) -> (0.5,0,0.5) -> (0.25,0.25,0.5)
    # Tasks 2 and 3 agree with each other (dot = 1) and both project on the original g1 only:
    #   g2' = (-1,1,0) + (1,0,0) = (0,1,0),  g3' = (0,0,1), whatever the order.
    grads = [vec(1, 0, 0), vec(-1, 1, 0), vec(-1, 0, 1)]
    two_then_three, three_then_two = vec(0.25, 1.5, 1.25), vec(0.25, 1.25, 1.5)
    outcomes = set()
    for seed in range(20):
        got = surgery(grads, generator=torch.Generator().manual_seed(seed))
        torch.testing.assert_close(got, reference(grads, torch.Generator().manual_seed(seed)))
        if torch.allclose(got, two_then_three):
            outcomes.add("2 then 3")
        else:
            torch.testing.assert_close(got, three_then_two)
            outcomes.add("3 then 2")
    assert outcomes == {"2 then 3", "3 then 2"}  # the generator really drives the order


def test_random_vectors_match_reference_and_mean_is_sum_over_k():
    g = torch.Generator().manual_seed(0)
    grads = [torch.randn(50, generator=g) for _ in range(4)]
    got = surgery(grads, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(got, reference(grads, torch.Generator().manual_seed(3)))
    assert not torch.allclose(got, sum(grads))  # some pairs conflict, so the surgery did something
    mean = surgery(grads, reduction="mean", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(mean * 4, got)


def test_common_positive_scale_commutes_with_the_surgery():
    # Why a GradScaler's scaled losses are fine: scaling every g by s scales the result by s.
    grads = [vec(1, 0, 0), vec(-1, 1, 0), vec(-1, 0, 1)]
    got = surgery([1024.0 * g for g in grads], generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(got, 1024.0 * surgery(grads, generator=torch.Generator().manual_seed(1)))


def test_zero_gradient_gives_no_nan():
    got = surgery([vec(0, 0), vec(1, -1), vec(-1, 0)], generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(got).all()
    tiny = vec(-1e-30, 0)  # squared norm underflows to 0 in float32, yet g·tiny < 0
    assert torch.dot(tiny, tiny) == 0
    torch.testing.assert_close(surgery([vec(1, 0), tiny]), vec(1, 0) + tiny)


def test_pcgrad_rejects_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        surgery([])
    with pytest.raises(ValueError, match=r"grads\[1\] must be a 1-D tensor"):
        surgery([vec(1, 2), torch.zeros(2, 2)])
    with pytest.raises(ValueError, match=r"grads\[1\] has length 3"):
        surgery([vec(1, 2), vec(1, 2, 3)])
    with pytest.raises(ValueError, match="reduction"):
        surgery([vec(1, 2)], reduction="max")


# ----------------------------------------------------------------------------------------
# backward: the training-loop helper


def toy_setup():
    """A shared trunk, a shared layer only task 1 uses, one no task uses, and two task heads."""
    torch.manual_seed(5)  # a seed where the two tasks' trunk gradients conflict (checked below)
    trunk, extra, unused = torch.nn.Linear(4, 3), torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
    head1, head2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 1)
    g = torch.Generator().manual_seed(1)
    x1, y1 = torch.randn(5, 4, generator=g), torch.randint(0, 2, (5,), generator=g)
    x2, y2 = torch.randn(5, 4, generator=g), torch.randn(5, generator=g)

    def losses():
        loss1 = F.cross_entropy(head1(torch.tanh(extra(torch.tanh(trunk(x1))))), y1)  # (5, 2) logits
        loss2 = F.mse_loss(head2(torch.tanh(trunk(x2))).squeeze(-1), y2)  # (5,) scores
        return [loss1, loss2]

    shared = [*trunk.parameters(), *extra.parameters(), *unused.parameters()]
    return losses, shared, (list(head1.parameters()), list(head2.parameters())), trunk, unused


def flat_grad(loss, params):
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return torch.cat([torch.zeros(p.numel()) if g is None else g.flatten() for p, g in zip(params, grads)])


def test_backward_heads_get_their_own_gradient_and_shared_params_the_surgery():
    losses, shared, heads, trunk, unused = toy_setup()
    per_task = [flat_grad(loss, shared) for loss in losses()]  # each task alone, fresh graphs
    head_grads = [torch.autograd.grad(loss, head) for loss, head in zip(losses(), heads)]
    trunk_size = sum(p.numel() for p in trunk.parameters())
    assert torch.dot(per_task[0][:trunk_size], per_task[1][:trunk_size]) < 0  # the tasks conflict
    expected = surgery(per_task, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(expected, per_task[0] + per_task[1])  # so surgery ≠ plain summing

    pcgrad.backward(losses(), shared, generator=torch.Generator().manual_seed(0))

    for head, grads in zip(heads, head_grads):
        for p, g in zip(head, grads):
            torch.testing.assert_close(p.grad, g)  # exactly its own loss's gradient
    offset = 0
    for p in shared:
        if any(p is q for q in unused.parameters()):
            assert p.grad is None  # no task reached it: left for the optimizer to skip
        else:
            torch.testing.assert_close(p.grad, expected[offset : offset + p.numel()].view_as(p))
        offset += p.numel()


def test_backward_adds_to_an_accumulated_gradient_and_supports_mean():
    losses, shared, _, trunk, _ = toy_setup()
    per_task = [flat_grad(loss, shared) for loss in losses()]
    expected = surgery(per_task, reduction="mean", generator=torch.Generator().manual_seed(0))
    trunk.weight.grad = torch.ones_like(trunk.weight)  # as if from an earlier micro-batch
    pcgrad.backward(losses(), shared, reduction="mean", generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(trunk.weight.grad, 1 + expected[: trunk.weight.numel()].view_as(trunk.weight))


def test_backward_keeps_the_accumulated_gradient_of_a_parameter_no_task_reaches():
    losses, shared, _, _, unused = toy_setup()
    earlier = torch.full_like(unused.weight, 0.5)  # from an earlier micro-batch that did reach it
    unused.weight.grad = earlier.clone()
    pcgrad.backward(losses(), shared, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(unused.weight.grad, earlier)  # neither dropped nor touched
    assert unused.bias.grad is None


def test_gram_fast_path_gives_no_nan_when_a_squared_norm_underflows():
    tiny = vec(-1e-30, 0)  # ||tiny||^2 underflows to 0 in float32, yet g·tiny < 0
    grads = torch.stack([vec(1, 0), tiny])
    G = pcgrad.gram(grads)
    assert G[1, 1] == 0 and G[0, 1] < 0
    weights = pcgrad.pcgrad_weights(G)
    assert torch.isfinite(weights).all()
    torch.testing.assert_close(weights @ grads, surgery([vec(1, 0), tiny]))


def test_backward_rejects_bad_input():
    losses, shared, *_ = toy_setup()
    with pytest.raises(ValueError, match="got none"):
        pcgrad.backward([], shared)
    with pytest.raises(ValueError, match=r"losses\[1\] must be a scalar"):
        pcgrad.backward([losses()[0], torch.tensor(1.0)], shared)
    with pytest.raises(ValueError, match="shared_params is empty"):
        pcgrad.backward(losses(), [])


@pytest.mark.parametrize("K", [2, 3, 5])
def test_gram_fast_path_equals_the_explicit_surgery(K):
    g = torch.Generator().manual_seed(K)
    grads = [torch.randn(1000, generator=g) - 0.3 * k for k in range(K)]  # some pairs conflict, some agree
    explicit = pcgrad.pcgrad(grads, generator=torch.Generator().manual_seed(7))
    G = torch.stack(grads)
    fast = pcgrad.pcgrad_weights(G @ G.T, generator=torch.Generator().manual_seed(7)) @ G
    torch.testing.assert_close(fast, explicit, atol=1e-4, rtol=1e-5)
    assert not torch.allclose(explicit, G.sum(0))  # the surgery did change something


def tf32(x):
    """x with the 13 low mantissa bits of each float32 cleared: the 10-bit mantissa of TF32."""
    return (x.contiguous().view(torch.int32) & -(1 << 13)).view(torch.float32)


def test_backward_keeps_float32_precision_where_a_gpu_would_multiply_matrices_in_tf32(monkeypatch):
    """On a GPU training turns TF32 on (loop.use_tf32): every float32 matrix product (a matmul whose
    second operand is a matrix, so cuBLAS runs a GEMM) then rounds its inputs to 10-bit mantissas.
    That rule emulated here on the CPU, backward must still agree with the explicit surgery, which
    uses dot products only."""
    real_matmul = torch.Tensor.__matmul__

    def gpu_matmul(a, b):
        if b.dim() >= 2 and a.dtype == b.dtype == torch.float32:
            return real_matmul(tf32(a), tf32(b))
        return real_matmul(a, b)

    g = torch.Generator().manual_seed(0)
    rows = torch.randn(3, 4000, generator=g) + torch.tensor([[0.1], [-0.1], [0.0]])  # (K, N)
    rows[2] -= 1.5 * rows[0] * (rows[0] @ rows[2]) / (rows[0] @ rows[0])  # tasks 0 and 2 conflict
    p = torch.zeros(4000, requires_grad=True)
    monkeypatch.setattr(torch.Tensor, "__matmul__", gpu_matmul)
    pcgrad.backward([(r * p).sum() for r in rows], [p], generator=torch.Generator().manual_seed(3))
    explicit = pcgrad.pcgrad(list(rows), generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(p.grad, explicit, atol=1e-5, rtol=1e-5)  # TF32: off by up to 5e-3
    assert not torch.allclose(explicit, rows.sum(0))  # the surgery did change something
