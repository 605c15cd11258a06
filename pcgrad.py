"""PCGrad: project conflicting task gradients before adding them up.

Yu et al., "Gradient Surgery for Multi-Task Learning" (NeurIPS 2020), Algorithm 1.
With one gradient g_1 ... g_K of the shared parameters per task:

    for each task i:
        g_i' = g_i
        for each other task j, in random order:
            if g_i' · g_j < 0:                          the two tasks conflict
                g_i' = g_i' - (g_i' · g_j / ||g_j||²) g_j    drop g_i's component along g_j
    g = Σ_i g_i'          ("sum", the paper; or "mean", Σ_i g_i' / K)

The projection always uses the original g_j, never its projected version. Only the shared
parameters (the encoder) go through the surgery; each task head's gradient comes from its
own loss alone and is left as it is.

`pcgrad` works on flat vectors and reads as the algorithm; `pcgrad_weights` is the same surgery
done on the K x K matrix of dot products (what `backward` uses, since with K gradients of the
whole encoder the explicit version spends its time copying vectors); `backward` is the
training-loop helper that gets the gradients:

    losses = [sst_loss, para_loss, sts_loss]            each from its own batch and forward pass
    pcgrad.backward(losses, encoder.parameters())      fills every parameter's .grad
    optimizer.step(); optimizer.zero_grad(set_to_none=True)

Mixed precision: with a torch.amp.GradScaler pass the scaled losses, [scaler.scale(l) for l
in losses]. Every task's gradient then carries the same factor s > 0, and the surgery
commutes with it: the conflict test only looks at the sign of g_i' · g_j, and each projection
is linear in g_i' and unchanged by rescaling g_j, so the result is s times the unscaled one.
Then, as usual, scaler.unscale_(optimizer) before clipping, scaler.step, scaler.update. An
overflowed (inf) gradient turns into inf/NaN in the combination, which the scaler detects
and skips the step for, as it would without PCGrad.

Tests: .venv/bin/python -m pytest -q tests/test_pcgrad.py
"""

import torch

REDUCTIONS = ("sum", "mean")


def pcgrad(grads, reduction="sum", generator=None):
    """Combine per-task gradients with gradient surgery. grads: K flat tensors of length N.

    For task i the other tasks are visited in the order of torch.randperm(K, generator=generator)
    with i left out: one randperm per task, drawn for i = 0, 1, ..., K - 1 in turn.
    Returns one tensor (N,), the sum (or mean) of the K projected gradients.
    """
    if not isinstance(grads, (list, tuple)) or len(grads) == 0:
        raise ValueError("pcgrad: grads must be a non-empty list of 1-D tensors, one per task")
    for k, g in enumerate(grads):
        if not torch.is_tensor(g) or g.dim() != 1:
            what = tuple(g.shape) if torch.is_tensor(g) else type(g).__name__
            raise ValueError(f"pcgrad: grads[{k}] must be a 1-D tensor, got {what}")
        if g.shape != grads[0].shape:
            raise ValueError(f"pcgrad: grads[{k}] has length {g.numel()}, grads[0] has {grads[0].numel()}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"pcgrad: reduction must be one of {REDUCTIONS}, got {reduction!r}")

    K = len(grads)
    projected = []
    for i in range(K):
        g_i = grads[i].clone()
        for j in torch.randperm(K, generator=generator).tolist():
            if j == i:
                continue
            dot = torch.dot(g_i, grads[j])
            squared_norm = torch.dot(grads[j], grads[j])
            # dot < 0 already rules out g_j = 0; squared_norm > 0 also guards against it
            # underflowing to 0 for a tiny but nonzero g_j, so no division by zero and no NaN.
            if dot < 0 and squared_norm > 0:
                g_i = g_i - (dot / squared_norm) * grads[j]
        projected.append(g_i)
    combined = torch.stack(projected).sum(dim=0)  # (K, N) -> (N,)
    return combined / K if reduction == "mean" else combined


def pcgrad_weights(gram, generator=None):
    """The same surgery from the Gram matrix alone: weights w (K,) with sum_i g_i' = sum_j w_j g_j.

    Each projection subtracts a multiple of an original g_j, so every g_i' stays a combination
    sum_j A_ij g_j of the original gradients, and the dot products the algorithm needs are
    g_i' . g_j = sum_k A_ik G_kj with G_kj = g_k . g_j. The whole surgery is then K x K
    arithmetic; the N-long vectors are read only twice, once for G and once to combine them.
    Draws the same random orders as `pcgrad` for the same generator.
    """
    K = gram.shape[0]
    A = torch.eye(K, dtype=gram.dtype, device=gram.device)  # row i: g_i' in terms of g_1 .. g_K
    for i in range(K):
        for j in torch.randperm(K, generator=generator).tolist():
            if j == i:
                continue
            dot = A[i] @ gram[:, j]  # g_i' . g_j
            if dot < 0 and gram[j, j] > 0:
                A[i, j] -= dot / gram[j, j]
    return A.sum(dim=0)  # (K,)


def check_inputs(losses, shared, reduction):
    """backward's arguments, each refused with its name when it cannot work."""
    if len(losses) == 0:
        raise ValueError("pcgrad.backward: losses must hold one scalar loss per task, got none")
    for k, loss in enumerate(losses):
        if not torch.is_tensor(loss) or loss.numel() != 1 or not loss.requires_grad:
            raise ValueError(f"pcgrad.backward: losses[{k}] must be a scalar tensor that requires grad")
    if len(shared) == 0:
        raise ValueError("pcgrad.backward: shared_params is empty")
    if reduction not in REDUCTIONS:
        raise ValueError(f"pcgrad.backward: reduction must be one of {REDUCTIONS}, got {reduction!r}")


def task_gradients(losses, shared, reduce=None):
    """Each task's gradient of the shared parameters, flat, one row per task: (K, N), N their
    elements in all; and for each parameter whether any task reached it. Backpropagates each loss
    in turn and leaves the shared .grad None; `reduce` (backward's) is applied to every row."""
    N = sum(p.numel() for p in shared)
    grads = torch.zeros(len(losses), N, dtype=shared[0].dtype, device=shared[0].device)  # (K, N)
    touched = [False] * len(shared)
    for k, loss in enumerate(losses):
        loss.backward()
        offset = 0
        for n, p in enumerate(shared):
            if p.grad is not None:
                grads[k, offset : offset + p.numel()] = p.grad.flatten()
                touched[n] = True
                p.grad = None  # the next task starts from nothing
            offset += p.numel()
        if reduce is not None:
            reduce(grads[k])
    return grads, touched


def gram(grads):
    """The K x K matrix of dot products G_ij = g_i . g_j of the rows of grads (K, N).

    Each entry is a dot product, not one matmul grads @ grads.T: on a GPU, training turns TF32 on
    (loop.use_tf32), and a float32 matmul then multiplies with 10-bit mantissas, about 1e-3
    relative error, enough to flip the sign test of nearly orthogonal gradients. A dot product
    keeps float32's precision, as `pcgrad` has it; K is small, so K^2 of them cost little."""
    K = len(grads)
    return torch.stack([torch.dot(g_i, g_j) for g_i in grads for g_j in grads]).view(K, K)


def backward(losses, shared_params, reduction="sum", generator=None, reduce=None):
    """Backpropagate each task's loss and put PCGrad's combination into the shared params' .grad.

    losses: one scalar per task, each from its own forward pass (they are backpropagated one
        at a time, so their graphs must not overlap).
    shared_params: the parameters every task uses (the encoder), an iterable of tensors.

    Head parameters are filled by the ordinary backward of their own loss and not touched
    again. A shared parameter that gets no gradient from a task counts as zeros for that task;
    one that gets none from any task keeps .grad None, so the optimizer skips it as usual.
    Like loss.backward() this adds to .grad: a shared gradient already there (accumulation
    over micro-batches) is kept and the surgery's result added to it.
    reduce: an optional in-place function applied to each task's flat shared gradient before
        the surgery, e.g. an average over data-parallel processes, so that the surgery sees
        the gradients of the global batch (distributed.py).
    Memory: K flat copies of the shared gradient, K * 4 bytes per parameter in float32.
    """
    losses, shared = list(losses), list(shared_params)
    check_inputs(losses, shared, reduction)
    # Park any gradient already accumulated, so each task's row holds that task's alone.
    previous = [p.grad for p in shared]
    for p in shared:
        p.grad = None
    grads, touched = task_gradients(losses, shared, reduce)  # (K, N)

    # The fast path of `pcgrad`: surgery on the K x K Gram matrix, then one weighted sum of rows.
    # The K x K arithmetic asks K(K-1) yes/no questions: on the host, so a GPU is waited for once.
    weights = pcgrad_weights(gram(grads).cpu(), generator).to(grads.device)  # (K,)
    if reduction == "mean":
        weights = weights / len(losses)
    # Row by row, not `weights @ grads`: see gram on TF32.
    combined = sum(w * g for w, g in zip(weights, grads))  # (N,)
    offset = 0
    for n, p in enumerate(shared):
        grad = combined[offset : offset + p.numel()].view_as(p)  # a view: no copy
        offset += p.numel()
        if not touched[n]:
            p.grad = previous[n]
        elif previous[n] is None:
            p.grad = grad
        else:
            p.grad = previous[n] + grad
