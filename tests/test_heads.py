"""Task heads: output shapes, losses checked against the formulas, per-task pair encodings, every
head option by hand, and predict.load_trained rebuilding any of them (and an older run's best.pt)."""

import math
import shutil
from pathlib import Path

import pytest
import torch

import predict
from heads import CosineHead, HeadConfig, LinearPairHead, MultitaskBert, pool
from losses import dual_objective_loss, ordinal_log_loss
from minbert import BertConfig, BertModel

TINY = Path(__file__).resolve().parent / "fixtures" / "tiny_bert"


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


def both(encoding, bi_head="cosine", **options):
    """A HeadConfig with the same encoding and bi-encoder head for para and sts."""
    return HeadConfig(
        para_encoding=encoding, sts_encoding=encoding, para_bi_head=bi_head, sts_bi_head=bi_head, **options
    )


def pair_batch(encoding, B=4):
    return {"a": seqs(B, 6, 1), "b": seqs(B, 7, 2)} if encoding == "bi" else seqs(B, 10, 3)


@pytest.mark.parametrize("encoding,bi_head", [("cross", "cosine"), ("bi", "cosine"), ("bi", "concat")])
def test_output_shapes_and_losses(encoding, bi_head):
    model = MultitaskBert(tiny_bert(), num_classes=3, config=both(encoding, bi_head)).eval()
    B = 4
    single, pair = seqs(B, 8, 0), pair_batch(encoding, B)

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
    model = MultitaskBert(tiny_bert(), config=both("bi")).eval()
    batch = {"a": seqs(3, 6, 1), "b": seqs(3, 6, 1)}  # identical sentences: cosine 1
    assert torch.allclose(model("sts", batch), torch.full((3,), 5.0), atol=1e-5)
    assert torch.allclose(model("para", batch), torch.full((3,), 5.0 - 2.5), atol=1e-5)  # scale * 1 + shift


def test_cross_encoding_uses_segment_ids():
    model = MultitaskBert(tiny_bert()).eval()
    batch = seqs(2, 8, 0)
    flipped = {**batch, "token_type_ids": 1 - batch["token_type_ids"]}
    assert not torch.allclose(model("para", batch), model("para", flipped))


def test_mixed_encoding_per_task():
    # "BERT and Beyond" Table 1, Mixed: cross for para, bi + cosine for sts.
    model = MultitaskBert(tiny_bert(), config=HeadConfig(para_encoding="cross", sts_encoding="bi")).eval()
    assert model.encoding == {"sst": "single", "para": "cross", "sts": "bi"}
    assert model("para", pair_batch("cross")).shape == (4,)
    assert model("sts", pair_batch("bi")).shape == (4,)
    assert isinstance(model.heads["sts"], CosineHead) and not isinstance(model.heads["para"], CosineHead)
    with pytest.raises(KeyError):  # a cross-encoded batch has no "a"/"b": sts really is bi-encoded
        model("sts", pair_batch("cross"))
    # and the bi-encoder head per task: concat for para, cosine for sts
    per_task = HeadConfig(para_encoding="bi", sts_encoding="bi", para_bi_head="concat", sts_bi_head="cosine")
    model = MultitaskBert(tiny_bert(), config=per_task)
    assert model.heads["para"].out.in_features == 4 * 16 and isinstance(model.heads["sts"], CosineHead)


def test_pooling():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float).view(2, 3, 2)
    encoded = {"last_hidden_state": hidden, "pooler_output": torch.ones(2, 2)}
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert torch.equal(pool(encoded, mask, "mean"), torch.tensor([[1.0, 2.0], [8.0, 9.0]]))  # padding ignored
    assert torch.equal(pool(encoded, mask, "cls"), hidden[:, 0])
    assert torch.equal(pool(encoded, mask, "pooler"), torch.ones(2, 2))


def test_pooler_pooling_reads_bert_pooler():
    model = MultitaskBert(tiny_bert(), config=HeadConfig(pooling="pooler")).eval()
    batch = seqs(3, 8, 0)
    cls = model.bert(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])["last_hidden_state"][:, 0]
    expected = model.heads["sst"](torch.tanh(model.bert.pooler(cls)))  # dense + tanh over [CLS]
    assert torch.allclose(model("sst", batch), expected, atol=1e-6)
    plain = MultitaskBert(tiny_bert(), config=HeadConfig(pooling="cls")).eval()
    assert not torch.allclose(plain("sst", batch), model("sst", batch))


def test_dropout_per_head():
    model = MultitaskBert(tiny_bert(), config=HeadConfig(dropout={"sst": 0.3, "para": 0.1, "sts": 0.0}))
    assert [model.heads[t].dropout.p for t in ("sst", "para", "sts")] == [0.3, 0.1, 0.0]
    model = MultitaskBert(tiny_bert(), config=HeadConfig(dropout=0.4))  # one rate for every head
    assert [model.heads[t].dropout.p for t in ("sst", "para", "sts")] == [0.4] * 3


def test_bi_projection_by_hand():
    # "Tuning Up BERT" §4.2: cos(Wu + b, Wv + b), W shared. With W swapping the two coordinates and
    # b = (1, 0): u = (1, 0) -> (1, 1), v = (0, 1) -> (2, 0), cos = 1/sqrt(2); without it cos(u, v) = 0.
    head = CosineHead(2, "regression", dropout=0.0, projection=True)
    with torch.no_grad():
        head.proj.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        head.proj.bias.copy_(torch.tensor([1.0, 0.0]))
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert torch.allclose(head(u, v), torch.tensor([(1 / math.sqrt(2) + 1) * 2.5]))
    assert torch.allclose(CosineHead(2, "regression", 0.0)(u, v), torch.tensor([2.5]))
    with pytest.raises(ValueError, match="--bi-projection"):
        HeadConfig(bi_projection=True)  # both pair tasks cross-encoded: nothing to project


def test_cosine_layer_head_by_hand():
    # BERT++ Model E: 5 * sigmoid(scale * cos(relu(Wu + b), relu(Wv + b))), here W = I, b = 0, scale 5:
    # u = (1, -1) -> (1, 0), v = (1, 1) -> (1, 1), cos = 1/sqrt(2). The plain cosine head gives (0 + 1) * 2.5.
    head = CosineHead(2, "regression", dropout=0.0, head="cosine-layer", activation="relu")
    with torch.no_grad():
        head.proj.weight.copy_(torch.eye(2))
        head.proj.bias.zero_()
    u, v = torch.tensor([[1.0, -1.0]]), torch.tensor([[1.0, 1.0]])
    assert torch.allclose(head(u, v), 5 * torch.sigmoid(torch.tensor([5 / math.sqrt(2)])))
    tanh = CosineHead(2, "regression", dropout=0.0, head="cosine-layer", activation="tanh")
    tanh.load_state_dict(head.state_dict())
    assert not torch.allclose(tanh(u, v), head(u, v))  # the activation is used
    model = MultitaskBert(tiny_bert(), config=HeadConfig(sts_encoding="bi", sts_bi_head="cosine-layer"))
    assert model.heads["sts"].head == "cosine-layer" and model.heads["sts"].proj is not None


def test_head_layers_by_hand():
    model = MultitaskBert(tiny_bert(), num_classes=3, config=HeadConfig(head_layers=3, head_activation="tanh")).eval()
    head = model.heads["sst"]
    assert [layer.weight.shape for layer in head.hidden] == [(16, 16), (16, 16)] and head.out.in_features == 16
    x = torch.randn(4, 16)
    expected = head.out(torch.tanh(head.hidden[1](torch.tanh(head.hidden[0](x)))))
    assert torch.allclose(head(x), expected)
    assert len(model.heads["para"].hidden) == 2  # the cross-encoded pair heads too
    one = MultitaskBert(tiny_bert(), num_classes=3).heads["sst"]
    assert len(one.hidden) == 0 and [k for k in one.state_dict()] == ["out.weight", "out.bias"]


def test_sst_loss_option():
    torch.manual_seed(0)
    logits, labels = torch.randn(4, 5), torch.tensor([0, 4, 2, 1])
    oll = MultitaskBert(tiny_bert(), config=HeadConfig(sst_loss="oll", oll_alpha=2.0))
    assert torch.equal(oll.loss("sst", logits, labels), ordinal_log_loss(logits, labels, alpha=2.0))
    dual = MultitaskBert(tiny_bert(), config=HeadConfig(sst_loss="dual"))
    assert torch.equal(dual.loss("sst", logits, labels), dual_objective_loss(logits, labels))
    preds, probs = dual.predict("sst", logits)
    s = torch.sigmoid(logits)
    assert torch.equal(preds, logits.argmax(-1)) and torch.allclose(probs, s / s.sum(-1, keepdim=True))
    # dual-mean trains the same sigmoids (its loss a fifth of dual's): the same probabilities
    dual_mean = MultitaskBert(tiny_bert(), config=HeadConfig(sst_loss="dual-mean"))
    assert torch.allclose(dual_mean.loss("sst", logits, labels), dual_objective_loss(logits, labels) / 5)
    assert torch.allclose(dual_mean.predict("sst", logits)[1], s / s.sum(-1, keepdim=True))
    assert not torch.allclose(s / s.sum(-1, keepdim=True), logits.softmax(-1))  # so softmax would differ


@pytest.mark.parametrize(
    "config",
    [
        HeadConfig(),
        both("bi", "cosine", bi_projection=True),
        both("bi", "cosine-layer"),
        both("bi", "concat", head_layers=2),
        HeadConfig(pooling="pooler", sts_encoding="bi"),
        HeadConfig(pooling="mean", head_layers=2, head_activation="gelu"),
    ],
)
def test_embed_then_encode_equals_the_encoder_and_head_run_directly(config):
    """The path SMART takes (embed, then from_embeddings, which forward runs too) against the
    plain one written out here: the whole encoder on each sequence, pooled, into the head."""
    model = MultitaskBert(tiny_bert(), config=config).eval()
    for task in ("sst", "para", "sts"):
        batch = seqs(2, 5, 1) if task == "sst" else pair_batch(model.encoding[task], 2)
        sequences = [batch["a"], batch["b"]] if model.encoding[task] == "bi" else [batch]
        vectors = [pool(model.bert(**s), s["attention_mask"], model.pooling) for s in sequences]
        expected = model.heads[task](*vectors)
        embeds = model.embed(task, batch)
        torch.testing.assert_close(model.from_embeddings(task, embeds, batch), expected, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(model(task, batch), expected, atol=1e-6, rtol=1e-5)


def test_config_from_args():
    # The args a run saved before the per-task flags existed: every new option takes its default.
    old = {"pair_encoding": "bi", "bi_head": "concat", "dropout": 0.2, "pooling": "mean", "sst_dropout": None}
    config = HeadConfig.from_args(old)
    assert (config.para_encoding, config.sts_encoding) == ("bi", "bi")
    assert (config.para_bi_head, config.sts_bi_head) == ("concat", "concat")
    assert config.dropout == {"sst": 0.2, "para": 0.2, "sts": 0.2} and config.pooling == "mean"
    assert (config.head_layers, config.sst_loss, config.bi_projection) == (1, "ce", False)
    new = {**old, "sts_encoding": "cross", "para_bi_head": "cosine", "sst_dropout": 0.0, "sst_loss": "oll"}
    new |= {"oll_alpha": 2.0, "head_layers": 2, "head_activation": "gelu", "bi_projection": True}
    config = HeadConfig.from_args(new)
    assert (config.para_encoding, config.sts_encoding, config.para_bi_head) == ("bi", "cross", "cosine")
    assert config.dropout["sst"] == 0.0  # an explicit 0 is not "unset"
    assert (config.sst_loss, config.oll_alpha, config.head_layers, config.head_activation) == ("oll", 2.0, 2, "gelu")
    assert config.bi_projection
    with pytest.raises(ValueError, match="--sts-encoding"):
        HeadConfig.from_args({"sts_encoding": "both"})


# ----------------------------------------------------------------------------
# predict.load_trained


def write_run(folder, model, args):
    (folder / "tokenizer").mkdir(parents=True)
    shutil.copy(TINY / "vocab.txt", folder / "tokenizer" / "vocab.txt")
    ckpt = {
        "model": model.state_dict() if isinstance(model, torch.nn.Module) else model,
        "encoder_config": BertModel.from_pretrained(TINY).config.to_dict(),
        "num_classes": 5,
        "tasks": ["sst", "para", "sts"],
        "args": {"max_length": 32, **args},
        "epoch": 1,
    }
    torch.save(ckpt, folder / "best.pt")


def test_load_run_reads_a_best_pt_saved_before_the_head_options(tmp_path):
    # The weight names and args an older train.py saved (cross-encoding, one linear layer per head),
    # written out here so that renaming a head's parameters fails this test.
    bert = BertModel.from_pretrained(TINY)
    H = bert.config.hidden_size
    torch.manual_seed(1)
    heads = {"sst": (5, H), "para": (1, H), "sts": (1, H)}
    state = {f"bert.{k}": v for k, v in bert.state_dict().items()}
    for task, shape in heads.items():
        state |= {f"heads.{task}.out.weight": torch.randn(shape), f"heads.{task}.out.bias": torch.randn(shape[0])}
    old_args = {"pair_encoding": "cross", "bi_head": "cosine", "dropout": 0.1, "pooling": "cls"}
    write_run(tmp_path, state, old_args)
    model, _, _ = predict.load_trained(tmp_path)  # load_state_dict is strict: every key and shape matches
    assert torch.equal(model.heads["sst"].out.weight, state["heads.sst.out.weight"])
    assert model.config.sst_loss == "ce" and model.config.head_layers == 1


def test_load_run_rebuilds_every_head_option(tmp_path):
    args = {
        "pair_encoding": "cross",
        "bi_head": "cosine",
        "dropout": 0.1,
        "pooling": "pooler",
        "para_encoding": "bi",
        "para_bi_head": "concat",
        "sts_encoding": "bi",
        "sts_bi_head": "cosine",
        "bi_projection": True,
        "head_layers": 2,
        "head_activation": "tanh",
        "sst_loss": "dual",
    }
    torch.manual_seed(2)
    trained = MultitaskBert(BertModel.from_pretrained(TINY), 5, HeadConfig.from_args(args)).eval()
    write_run(tmp_path, trained, args)
    model, _, _ = predict.load_trained(tmp_path)
    assert model.config == trained.config
    for task in ("sst", "para", "sts"):
        batch = seqs(3, 6, 0) if task == "sst" else pair_batch("bi", 3)
        assert torch.equal(model(task, batch), trained(task, batch))


# ----------------------------------------------------------------------------
# the reports' own heads (issue 28): each by hand, and each really selected by its flag


def set_linear(layer, weight, bias):
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))


def test_cosine_fixed_head_by_hand():
    # "Tuning Up BERT" §4.2: para logit = cos itself (P = sigmoid(cos)), sts = (cos + 1) * 2.5, nothing learned.
    # u = (1, 0), v = (1, 1): cos = 1/sqrt(2).
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    para = CosineHead(2, "binary", dropout=0.0, head="cosine-fixed")
    c = 1 / math.sqrt(2)
    assert torch.allclose(para(u, v), torch.tensor([c])) and list(para.parameters()) == []
    assert torch.allclose(para.predict(para(u, v))[1], torch.sigmoid(torch.tensor([c])))
    sts = CosineHead(2, "regression", dropout=0.0, head="cosine-fixed")
    assert torch.allclose(sts(u, v), torch.tensor([(c + 1) * 2.5]))
    # through the model: identical sentences give logit 1 (the learned cosine head gives 5 - 2.5)
    model = MultitaskBert(tiny_bert(), config=both("bi", "cosine-fixed", bi_projection=True)).eval()
    batch = {"a": seqs(3, 6, 1), "b": seqs(3, 6, 1)}
    assert torch.allclose(model("para", batch), torch.ones(3), atol=1e-5)
    assert model.heads["para"].proj is not None  # --bi-projection applies to it too


def test_concat_plain_head_by_hand():
    # "BERT and Beyond" §3.2: w . [u; v] + b with w = (1, 2, 3, 4), b = 0.5; u = (1, 0), v = (0, 1): 1 + 4 + 0.5.
    head = LinearPairHead(2, "binary", "concat-plain", dropout=0.0)
    set_linear(head.out, [[1.0, 2.0, 3.0, 4.0]], [0.5])
    assert torch.allclose(head(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])), torch.tensor([5.5]))
    model = MultitaskBert(tiny_bert(), config=both("bi", "concat-plain"))
    assert model.heads["para"].out.in_features == 2 * 16 and model.heads["sts"].out.in_features == 2 * 16


def test_sustech_b1_head_by_hand():
    # B1: w . (W1 u * W2 v) + b, W1 = I, W2 = diag(2, 3), w = (0.5, -0.5), b = 0; u = (1, 2), v = (1, 1):
    # W1 u = (1, 2), W2 v = (2, 3), product (2, 6), logit 1 - 3 = -2.
    u, v = torch.tensor([[1.0, 2.0]]), torch.tensor([[1.0, 1.0]])
    heads = {kind: LinearPairHead(2, kind, "sustech-b1", dropout=0.0) for kind in ("binary", "regression")}
    for head in heads.values():
        set_linear(head.proj_a, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
        set_linear(head.proj_b, [[2.0, 0.0], [0.0, 3.0]], [0.0, 0.0])
        set_linear(head.out, [[0.5, -0.5]], [0.0])
    s = lambda x: 1 / (1 + math.exp(-x))
    para = heads["binary"](u, v)
    assert torch.allclose(para, torch.tensor([-2.0]))
    # L1 loss on the probability: |sigmoid(-2) - 1| = 1 - s(-2); not binary cross-entropy (-log s(-2))
    assert math.isclose(heads["binary"].loss(para, torch.tensor([1.0])).item(), 1 - s(-2), rel_tol=1e-6)
    sts = heads["regression"](u, v)  # 5 * sigmoid(-2), L1 against 1.0
    assert torch.allclose(sts, torch.tensor([5 * s(-2)]))
    assert math.isclose(heads["regression"].loss(sts, torch.tensor([1.0])).item(), 1 - 5 * s(-2), rel_tol=1e-6)
    model = MultitaskBert(tiny_bert(), config=both("bi", "sustech-b1")).eval()
    out, y = model("para", pair_batch("bi")), torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.allclose(model.loss("para", out, y), (torch.sigmoid(out) - y).abs().mean())


def test_sustech_b2_heads_by_hand():
    # para: w . [u, v, Wu * Wv], W = 2I; u = (1, 0), v = (1, 1): Wu * Wv = (4, 0),
    # features (1, 0, 1, 1, 4, 0), w = (1, 0, 0, 1, 0.5, 0): 1 + 1 + 2 = 4; binary cross-entropy.
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    para = LinearPairHead(2, "binary", "sustech-b2", dropout=0.0)
    set_linear(para.proj, [[2.0, 0.0], [0.0, 2.0]], [0.0, 0.0])
    set_linear(para.out, [[1.0, 0.0, 0.0, 1.0, 0.5, 0.0]], [0.0])
    assert torch.allclose(para(u, v), torch.tensor([4.0]))
    assert math.isclose(para.loss(para(u, v), torch.tensor([1.0])).item(), math.log(1 + math.exp(-4)), rel_tol=1e-5)
    # sts: 5 * cos(Wu, Wv), W = I: 5 / sqrt(2); opposite vectors give -5, clipped to 0 only when predicting
    sts = CosineHead(2, "regression", dropout=0.0, head="sustech-b2")
    set_linear(sts.proj, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    assert torch.allclose(sts(u, v), torch.tensor([5 / math.sqrt(2)]))
    opposite = sts(u, -u)
    assert torch.allclose(opposite, torch.tensor([-5.0])) and sts.predict(opposite)[0].item() == 0.0
    model = MultitaskBert(tiny_bert(), config=both("bi", "sustech-b2"))
    assert model.heads["para"].out.in_features == 3 * 16
    assert isinstance(model.heads["sts"], CosineHead) and model.heads["sts"].head == "sustech-b2"


def test_bertpp_e_head_by_hand():
    # BERT++ Model E as the report has it: f = tanh(W x), W = I; u = (1, 0), v = (-1, 0): cos = -1.
    # para: relu(cos) = 0 (so P(paraphrase) = 0.5 at least); sts: 5 * sigmoid(cos), no learned scale.
    u, v = torch.tensor([[1.0, 0.0]]), torch.tensor([[-1.0, 0.0]])
    para = CosineHead(2, "binary", dropout=0.0, head="bertpp-e", activation="tanh")
    sts = CosineHead(2, "regression", dropout=0.0, head="bertpp-e", activation="tanh")
    for head in (para, sts):
        set_linear(head.proj, [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    assert torch.equal(para(u, v), torch.tensor([0.0])) and torch.equal(para(u, u), torch.tensor([1.0]))
    assert torch.allclose(sts(u, v), 5 * torch.sigmoid(torch.tensor([-1.0])))
    assert not hasattr(para, "scale") and not hasattr(sts, "scale")  # ours (cosine-layer) learns a scale
    ours = CosineHead(2, "regression", dropout=0.0, head="cosine-layer", activation="tanh")
    ours.proj.load_state_dict(sts.proj.state_dict())
    assert torch.allclose(ours(u, v), 5 * torch.sigmoid(torch.tensor([-5.0])))


def test_share_pair_heads_by_hand():
    # BERT++ §5-6: sts runs para's layers before its own output layer. Cross-encoded, 2 layers:
    # the shared hidden layer relu(I x) turns x = (1, -2) into (1, 0); sts's output w = (1, 1) gives 1.
    config = HeadConfig(head_layers=2, share_pair_heads=True)
    model = MultitaskBert(tiny_bert(), config=config)
    para, sts = model.heads["para"], model.heads["sts"]
    assert para.hidden is sts.hidden and para.out is not sts.out
    alone = MultitaskBert(tiny_bert(), config=HeadConfig(head_layers=2))
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(alone) - n(model) == 16 * 16 + 16  # one hidden layer fewer
    small_para = LinearPairHead(2, "binary", "cross", dropout=0.0, layers=2)
    small_sts = LinearPairHead(2, "regression", "cross", dropout=0.0, layers=2)
    from heads import share_layers

    share_layers(small_para, small_sts)
    set_linear(small_para.hidden[0], [[1.0, 0.0], [0.0, 1.0]], [0.0, 0.0])
    set_linear(small_sts.out, [[1.0, 1.0]], [0.0])
    assert torch.allclose(small_sts(torch.tensor([[1.0, -2.0]])), torch.tensor([1.0]))
    # bi-encoded: the per-sentence maps are shared (sustech-b2: para's W is sts's W)
    b2 = MultitaskBert(tiny_bert(), config=both("bi", "sustech-b2", share_pair_heads=True))
    assert b2.heads["para"].proj is b2.heads["sts"].proj
    with pytest.raises(ValueError, match="--share-pair-heads needs the same pair head"):
        HeadConfig(sts_encoding="bi", share_pair_heads=True)
    with pytest.raises(ValueError, match="no layer before the output"):
        HeadConfig(share_pair_heads=True)  # cross-encoded with one layer: only the output layers


@pytest.mark.parametrize(
    "args",
    [
        {"pair_encoding": "bi", "bi_head": "cosine-fixed", "bi_projection": True},
        {"pair_encoding": "bi", "bi_head": "concat-plain", "head_layers": 2},
        {"pair_encoding": "bi", "bi_head": "sustech-b1", "share_pair_heads": True},
        {"pair_encoding": "bi", "bi_head": "sustech-b2", "share_pair_heads": True, "sst_loss": "dual-mean"},
        {"pair_encoding": "bi", "bi_head": "bertpp-e", "share_pair_heads": True},
        {"pair_encoding": "cross", "head_layers": 2, "share_pair_heads": True},
    ],
)
def test_load_run_rebuilds_the_reports_heads(tmp_path, args):
    torch.manual_seed(3)
    trained = MultitaskBert(BertModel.from_pretrained(TINY), 5, HeadConfig.from_args(args)).eval()
    write_run(tmp_path, trained, args)
    model, _, _ = predict.load_trained(tmp_path)
    assert model.config == trained.config
    if args.get("share_pair_heads"):  # still one set of layers after the reload
        para, sts = model.heads["para"], model.heads["sts"]
        assert any(getattr(para, name, None) is getattr(sts, name, 0) for name in ("proj", "proj_a", "hidden"))
    for task in ("sst", "para", "sts"):
        batch = seqs(3, 6, 0) if task == "sst" else pair_batch(model.encoding[task], 3)
        assert torch.equal(model(task, batch), trained(task, batch))


def test_train_flags_select_the_reports_heads(capsys):
    import train

    flags = ["--pair-encoding", "bi", "--para-bi-head", "sustech-b2", "--sts-bi-head", "sustech-b2"]
    args = train.parse_args([*flags, "--share-pair-heads", "--sst-loss", "dual-mean"])
    config = HeadConfig.from_args(vars(args))
    assert (config.para_bi_head, config.sts_bi_head, config.share_pair_heads) == ("sustech-b2", "sustech-b2", True)
    assert config.sst_loss == "dual-mean"
    for head in ("cosine-fixed", "concat-plain", "sustech-b1", "bertpp-e"):
        assert (
            HeadConfig.from_args(vars(train.parse_args(["--pair-encoding", "bi", "--bi-head", head]))).sts_bi_head
            == head
        )
    with pytest.raises(SystemExit):
        train.parse_args(["--share-pair-heads"])  # cross-encoded, one layer: nothing to share
    assert "--share-pair-heads" in capsys.readouterr().err
