"""Task heads: output shapes, losses checked against the formulas, both pair encodings."""

import math

import pytest
import torch

from heads import MultitaskBert, pool
from minbert import BertConfig, BertModel
from schedules import Schedule, annealed_alpha, task_probabilities


def tiny_bert():
    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=40,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=16,
        )
    )


def seqs(B, T, seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 40, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[0, T // 2 :] = 0
    types = torch.zeros(B, T, dtype=torch.long)
    types[:, T // 2 :] = 1
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types * mask}


@pytest.mark.parametrize("encoding,bi_head", [("cross", "cosine"), ("bi", "cosine"), ("bi", "concat")])
def test_output_shapes_and_losses(encoding, bi_head):
    model = MultitaskBert(tiny_bert(), num_classes=3, pair_encoding=encoding, bi_head=bi_head).eval()
    B = 4
    single = seqs(B, 8, 0)
    pair = {"a": seqs(B, 6, 1), "b": seqs(B, 7, 2)} if encoding == "bi" else seqs(B, 10, 3)

    logits = model("sst", single)
    assert logits.shape == (B, 3)
    labels = torch.tensor([0, 1, 2, 1])
    expected = -logits.log_softmax(-1)[torch.arange(B), labels].mean()
    assert torch.allclose(model.loss("sst", logits, labels), expected)
    preds, probs = model.predict("sst", logits)
    assert torch.equal(preds, logits.argmax(-1)) and torch.allclose(probs.sum(-1), torch.ones(B))

    para = model("para", pair)
    assert para.shape == (B,)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0])
    p = torch.sigmoid(para)
    assert torch.allclose(model.loss("para", para, y), -(y * p.log() + (1 - y) * (1 - p).log()).mean(), atol=1e-6)
    preds, prob = model.predict("para", para)
    assert torch.equal(preds, (p > 0.5).long()) and torch.allclose(prob, p)

    sts = model("sts", pair)
    assert sts.shape == (B,)
    target = torch.tensor([0.0, 2.5, 5.0, 1.0])
    assert torch.allclose(model.loss("sts", sts, target), ((sts - target) ** 2).mean())
    clipped, raw = model.predict("sts", sts * 100)
    assert clipped.min() >= 0 and clipped.max() <= 5 and torch.equal(raw, sts * 100)


def test_bi_cosine_heads_follow_the_cosine():
    model = MultitaskBert(tiny_bert(), pair_encoding="bi", bi_head="cosine").eval()
    batch = {"a": seqs(3, 6, 1), "b": seqs(3, 6, 1)}  # identical sentences: cosine 1
    assert torch.allclose(model("sts", batch), torch.full((3,), 5.0), atol=1e-5)
    assert torch.allclose(model("para", batch), torch.full((3,), 5.0 - 2.5), atol=1e-5)  # scale * 1 + shift


def test_cross_encoding_uses_segment_ids():
    model = MultitaskBert(tiny_bert()).eval()
    batch = seqs(2, 8, 0)
    flipped = {**batch, "token_type_ids": 1 - batch["token_type_ids"]}
    assert not torch.allclose(model("para", batch), model("para", flipped))


def test_mean_pooling_ignores_padding():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(pool(hidden, mask, "mean"), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])


def test_dropout_per_head():
    model = MultitaskBert(tiny_bert(), dropout={"sst": 0.3, "para": 0.1, "sts": 0.0})
    assert [model.heads[t].dropout.p for t in ("sst", "para", "sts")] == [0.3, 0.1, 0.0]


def test_embed_then_encode_equals_forward():
    model = MultitaskBert(tiny_bert(), pair_encoding="bi").eval()
    batch = {"a": seqs(2, 5, 1), "b": seqs(2, 7, 2)}
    embeds = model.embed("sts", batch)
    assert [e.shape for e in embeds] == [(2, 5, 16), (2, 7, 16)]
    assert torch.equal(model.from_embeddings("sts", embeds, batch), model("sts", batch))


# ----------------------------------------------------------------------------
# schedules


def test_annealed_probabilities_follow_the_formula():
    sizes = {"sst": 8544, "para": 13507, "sts": 6040}
    assert annealed_alpha(0, 5) == 1.0 and math.isclose(annealed_alpha(4, 5), 0.2)
    first = task_probabilities("annealed", sizes, 0, 5)
    assert math.isclose(first["para"], 13507 / sum(sizes.values()))
    last = task_probabilities("annealed", sizes, 4, 5)
    total = sum(n**0.2 for n in sizes.values())
    assert all(math.isclose(last[t], n**0.2 / total) for t, n in sizes.items())


def test_sampling_schedule_is_reproducible_and_matches_probabilities():
    sizes = {"sst": 100, "para": 300, "sts": 100}
    s = Schedule("proportional", sizes, epochs=1, steps_per_epoch=6000, seed=3)
    draws = [s.tasks_for_step(0, i)[0] for i in range(6000)]
    assert draws == [Schedule("proportional", sizes, 1, 6000, seed=3).tasks_for_step(0, i)[0] for i in range(6000)]
    assert abs(draws.count("para") / 6000 - 0.6) < 0.03
    assert Schedule("round-robin", sizes, 1, 6, 0).tasks_for_step(0, 4) == ["para"]
    assert Schedule("summed", sizes, 1, 6, 0).tasks_for_step(0, 2) == ["sst", "para", "sts"]
    with pytest.raises(ValueError, match="unknown schedule"):
        Schedule("nope", sizes, 1, 1)
