"""The encoder against Hugging Face's BertModel, the attention fast path against the math,
checkpoint loading and saving. Reference values come from tests/make_fixtures.py."""

import itertools
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import DEVICE, FIXTURES, TOL, small_config

import hub
import minbert
from adamw import AdamW
from minbert import BertConfig, BertModel


@pytest.fixture(scope="module")
def minilm():
    return BertModel.from_pretrained().eval().to(DEVICE)


def run(model, ref, prefix=""):
    model = model.to(DEVICE)  # in place: a model loaded here starts on the CPU
    ids, mask, types = (torch.from_numpy(ref[prefix + k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
    with torch.no_grad():
        out = model(ids.to(DEVICE), mask.to(DEVICE), types.to(DEVICE))
    return {k: v.cpu() for k, v in out.items()}


def max_diff(out, ref, prefix=""):
    """Max abs difference over the pooled output and the hidden states of real tokens. Padded
    positions are excluded: their outputs are never used and are not defined the same way
    anywhere (Hugging Face's own eager and SDPA paths differ there by 1e-5)."""
    real = torch.from_numpy(ref[prefix + "attention_mask"]).bool()  # (B, T)
    hidden = (out["last_hidden_state"] - torch.from_numpy(ref[prefix + "last_hidden_state"]))[real]
    pooled = out["pooler_output"] - torch.from_numpy(ref[prefix + "pooler_output"])
    return max(hidden.abs().max().item(), pooled.abs().max().item())


ENCODERS = [  # (fast, attn_impl, unpad): the plain encode, and encode_fast's variants
    (False, "sdpa", True),
    *[(True, impl, unpad) for impl in ("sdpa", "explicit") for unpad in (True, False)],
]


@pytest.mark.parametrize("batch", ["single", "pair"])
@pytest.mark.parametrize("fast, impl, unpad", ENCODERS)
def test_packaged_model_matches_hugging_face(minilm, batch, fast, impl, unpad, monkeypatch):
    ref = np.load(FIXTURES / "encoder_ref.npz", allow_pickle=False)
    assert ref[f"{batch}_attention_mask"].min() == 0, "the fixture batch must contain padding"
    if batch == "pair":
        assert ref["pair_token_type_ids"].max() == 1
    monkeypatch.setattr(minbert, "UNPAD_MIN", 0.0)  # remove padding whenever there is any
    minilm.fast, minilm.attn_impl, minilm.unpad = fast, impl, unpad
    try:
        out = run(minilm, ref, f"{batch}_")
    finally:
        minilm.fast, minilm.attn_impl, minilm.unpad = True, "sdpa", True
    assert max_diff(out, ref, f"{batch}_") < TOL


def test_token_types_matter(minilm):
    # The CS224N starter silently ignored segment ids; make sure ours do change the output.
    ref = np.load(FIXTURES / "encoder_ref.npz", allow_pickle=False)
    ids, mask = (
        torch.from_numpy(ref["pair_input_ids"]).to(DEVICE),
        torch.from_numpy(ref["pair_attention_mask"]).to(DEVICE),
    )
    with torch.no_grad():
        a = minilm(ids, mask, torch.from_numpy(ref["pair_token_type_ids"]).to(DEVICE))["last_hidden_state"]
        b = minilm(ids, mask, torch.zeros_like(ids))["last_hidden_state"]
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("folder", ["tiny_bert", "tiny_bert_bin"])
def test_tiny_checkpoint_matches_hugging_face(folder):
    model = BertModel.from_pretrained(str(FIXTURES / folder)).eval().to(DEVICE)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    ref = np.load(FIXTURES / "tiny_ref.npz", allow_pickle=False)
    assert max_diff(run(model, ref), ref) < TOL


def test_explicit_attention_equals_sdpa_in_training_without_dropout():
    torch.manual_seed(0)
    config = small_config()
    model = BertModel(config).train()
    ids = torch.randint(1, 50, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    mask[2, 3:] = 0
    outs, grads = {}, {}
    for impl in ("sdpa", "explicit"):
        model.attn_impl = impl
        model.zero_grad()
        out = model(ids, mask)
        out["last_hidden_state"][mask.bool()].sum().backward()
        outs[impl] = out["last_hidden_state"].detach()
        grads[impl] = model.layers[0].attn.qkv.weight.grad.clone()
    torch.testing.assert_close(outs["sdpa"], outs["explicit"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grads["sdpa"], grads["explicit"], atol=1e-5, rtol=1e-5)


def test_dropout_off_in_eval_on_in_train(minilm):
    ids = torch.tensor([[101, 7592, 2088, 102]], device=DEVICE)
    with torch.no_grad():
        a, b = minilm(ids)["pooler_output"], minilm(ids)["pooler_output"]
        assert torch.equal(a, b)
        minilm.train()
        try:
            c = minilm(ids)["pooler_output"]
        finally:
            minilm.eval()
    assert not torch.allclose(a, c)


def test_save_pretrained_round_trip(minilm, tmp_path):
    minilm.save_pretrained(tmp_path / "saved")
    names = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert {"config.json", "model.safetensors", "vocab.txt"} <= set(names)
    # The saved keys are Hugging Face's names, so transformers' BertModel.from_pretrained reads them.
    saved = hub.load_safetensors(tmp_path / "saved" / "model.safetensors")
    assert "encoder.layer.0.attention.self.query.weight" in saved and "pooler.dense.bias" in saved
    original = hub.load_safetensors(hub.packaged_model_dir() / "model.safetensors")
    assert set(saved) == set(original) - {"embeddings.position_ids"}
    for k, v in saved.items():
        assert torch.equal(v, original[k]), k
    again = BertModel.from_pretrained(str(tmp_path / "saved")).eval()
    ref = np.load(FIXTURES / "encoder_ref.npz", allow_pickle=False)
    a, b = run(minilm, ref, "pair_"), run(again, ref, "pair_")
    assert torch.equal(a["last_hidden_state"], b["last_hidden_state"])
    assert torch.equal(a["pooler_output"], b["pooler_output"])


# ----------------------------------------------------------------------------
# loader errors: each names the problem


def tiny_copy(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(FIXTURES / "tiny_bert", folder)
    return folder


def test_truncated_safetensors(tmp_path):
    folder = tiny_copy(tmp_path)
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[: len(raw) - 100])
    with pytest.raises(hub.ModelFileError, match="truncated or corrupt"):
        BertModel.from_pretrained(str(folder))
    (folder / "model.safetensors").write_bytes(raw[:5])
    with pytest.raises(hub.ModelFileError, match="truncated safetensors file"):
        BertModel.from_pretrained(str(folder))


def rewrite(folder, change):
    tensors = dict(hub.load_safetensors(folder / "model.safetensors"))
    change(tensors)
    hub.save_safetensors(tensors, folder / "model.safetensors")


def test_wrong_shape_is_named(tmp_path):
    folder = tiny_copy(tmp_path)
    rewrite(folder, lambda t: t.update({"pooler.dense.weight": torch.zeros(32, 31)}))
    with pytest.raises(
        hub.ModelFileError, match=r"1 wrong shapes \(pooler.weight: checkpoint \(32, 31\), model \(32, 32\)\)"
    ):
        BertModel.from_pretrained(str(folder))


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    folder = tiny_copy(tmp_path)
    rewrite(
        folder,
        lambda t: (t.pop("encoder.layer.1.output.dense.bias"), t.update({"encoder.extra.weight": torch.zeros(2)})),
    )
    with pytest.raises(hub.ModelFileError) as e:
        BertModel.from_pretrained(str(folder))
    assert "1 missing keys (layers.1.ffn_out.bias)" in str(e.value)
    assert "1 unexpected keys (encoder.extra.weight)" in str(e.value)


def test_unknown_dtype(tmp_path):
    folder = tiny_copy(tmp_path)
    path = folder / "model.safetensors"
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + n].replace(b'"F32"', b'"F33"', 1)
    path.write_bytes(raw[:8] + header + raw[8 + n :])
    with pytest.raises(hub.ModelFileError, match="unknown dtype 'F33'"):
        BertModel.from_pretrained(str(folder))


def test_prefixed_and_legacy_names_load(tmp_path):
    # bert-base-uncased on the hub is a pre-training checkpoint: "bert." prefix, gamma/beta, cls.* heads.
    folder = tiny_copy(tmp_path)

    def legacy(t):
        for k in list(t):
            t[
                "bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            ] = t.pop(k)
        t["cls.predictions.bias"] = torch.zeros(100)

    rewrite(folder, legacy)
    model = BertModel.from_pretrained(str(folder)).eval()
    ref = np.load(FIXTURES / "tiny_ref.npz", allow_pickle=False)
    assert max_diff(run(model, ref), ref) < 1e-5


def test_masked_lm_and_classifier_checkpoints_load_their_encoder(tmp_path, capsys):
    # BertForMaskedLM has no pooler, BertForSequenceClassification a classifier: both were refused
    # ("does not match config.json"); Hugging Face loads their encoders, as here.
    folder = tiny_copy(tmp_path)
    ref = np.load(FIXTURES / "tiny_ref.npz", allow_pickle=False)
    full = BertModel.from_pretrained(str(folder)).eval()

    def masked_lm(t):
        for k in list(t):
            t["bert." + k] = t.pop(k)
        del t["bert.pooler.dense.weight"], t["bert.pooler.dense.bias"]
        t["cls.predictions.bias"] = torch.zeros(100)
        t["classifier.weight"], t["classifier.bias"] = torch.zeros(2, 32), torch.zeros(2)

    rewrite(folder, masked_lm)
    model = BertModel.from_pretrained(str(folder)).eval()
    assert "no pooler (a masked-LM checkpoint?)" in capsys.readouterr().out
    x = model(torch.tensor(ref["input_ids"]), torch.tensor(ref["attention_mask"]), torch.tensor(ref["token_type_ids"]))
    y = full(torch.tensor(ref["input_ids"]), torch.tensor(ref["attention_mask"]), torch.tensor(ref["token_type_ids"]))
    assert torch.equal(x["last_hidden_state"], y["last_hidden_state"])  # the encoder, whole
    rewrite(folder, lambda t: t.pop("bert.encoder.layer.0.output.dense.bias"))
    with pytest.raises(hub.ModelFileError, match=r"3 missing keys \(layers.0.ffn_out.bias; pooler"):  # still refused
        BertModel.from_pretrained(str(folder))


def test_config_ignores_foreign_fields_and_rejects_unsupported():
    config = BertConfig.from_dict(json.loads((FIXTURES / "tiny_bert" / "config.json").read_text()))
    assert config.hidden_size == 32 and config.vocab_size == 100
    with pytest.raises(ValueError, match="hidden_act 'relu'"):
        BertConfig.from_dict({"hidden_act": "relu"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertConfig.from_dict({"position_embedding_type": "relative_key"})


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(hub.ModelFileError, match="model folder not found"):
        hub.resolve_model_dir(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(hub.ModelFileError, match="missing config.json"):
        hub.resolve_model_dir(str(tmp_path / "empty"))


def test_dropout_keeps_one_minus_p_and_rescales():
    from minbert import dropout

    torch.manual_seed(0)
    x = torch.ones(400, 1000)
    for p in (0.1, 0.3):
        y = dropout(x, p, training=True)
        kept = y != 0
        assert abs(kept.float().mean().item() - (1 - p)) < 0.005  # 400k draws: std of the rate ~ 5e-4
        assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / (1 - p)))
        # the mask is not periodic in the four 16-bit lanes of a 64-bit draw
        lanes = kept.view(-1, 4).float().mean(0)
        assert (lanes - (1 - p)).abs().max() < 0.01
    assert dropout(x, 0.3, training=False) is x
    assert not torch.equal(dropout(x, 0.1, True), dropout(x, 0.1, True))  # fresh mask each call
    x.requires_grad_()
    y = dropout(x, 0.5, True)
    y.sum().backward()
    assert torch.equal(x.grad, (y != 0).float() * 2.0)


def test_cls_only_equals_the_full_encoder_at_cls():
    torch.manual_seed(0)
    config = small_config()
    ids = torch.randint(1, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    for impl in ("sdpa", "explicit"):
        model = BertModel(config, attn_impl=impl).train()
        full = model(ids, mask)["last_hidden_state"][:, 0]
        (grad_full,) = torch.autograd.grad(full.sum(), model.layers[1].ffn_in.weight)
        short = model.encode(model.embed(ids), mask, cls_only=True)["last_hidden_state"]
        assert short.shape == (3, 1, 32)
        (grad_short,) = torch.autograd.grad(short[:, 0].sum(), model.layers[1].ffn_in.weight)
        torch.testing.assert_close(short[:, 0], full, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(grad_short, grad_full, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
@pytest.mark.parametrize("cls_only", [False, True])
def test_the_fast_encoder_gives_the_plain_ones_values_and_gradients(impl, cls_only):
    """encode_fast, with layers on the real tokens only (minbert.Layout) or on every position,
    and the plain encode: the same hidden states at real positions, the same gradients for every
    parameter."""
    torch.manual_seed(0)
    config = small_config()
    model = BertModel(config, attn_impl=impl).train()
    ids = torch.randint(1, 50, (4, 11))
    mask = torch.ones_like(ids)
    mask[0, 4:], mask[2, 7:], mask[3, 1:] = 0, 0, 0  # 16 of 44 positions are padding; row 3 is [CLS] alone
    direction = torch.randn(32)  # a readout whose gradient is not zero through LayerNorm, as a squared norm's is
    outs, grads = {}, {}
    for way in ("unpad", "padded", "plain"):
        model.fast, model.unpad = way != "plain", way == "unpad"
        model.zero_grad()
        out = model.encode(model.embed(ids), mask, cls_only=cls_only)
        hidden = out["last_hidden_state"]
        real = hidden[:, 0] if cls_only else hidden[mask.bool()]  # (B, H) or (N, H)
        ((real * direction).sum() + out["pooler_output"].sum()).backward()
        outs[way] = real.detach()
        grads[way] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        if way == "unpad" and not cls_only:
            assert (hidden[~mask.bool()] == 0).all()  # padded positions were never computed
        assert hidden.shape[1] == (1 if cls_only and way != "plain" else 11)  # plain computes every position
    assert len(grads["plain"]) == len(list(model.parameters()))
    for way in ("unpad", "padded"):
        torch.testing.assert_close(outs[way], outs["plain"], atol=1e-5, rtol=1e-5)
        assert grads[way].keys() == grads["plain"].keys()
        for name in grads[way]:
            torch.testing.assert_close(grads[way][name], grads["plain"][name], atol=1e-5, rtol=1e-4, msg=name)


def test_padding_removal_only_when_it_pays_and_rows_start_real(monkeypatch):
    """Below minbert.UNPAD_MIN padding, or with a row whose first position is padding (left
    padding), every position is computed; else only the real tokens."""
    config = small_config(num_hidden_layers=1)
    model = BertModel(config).eval()
    seen, original = [], minbert.Layout
    monkeypatch.setattr(minbert, "Layout", lambda B, T, keep, device: seen.append(keep) or original(B, T, keep, device))
    ids = torch.randint(1, 50, (2, 10))
    for row_mask, packed in (
        ([1] * 10, False),
        ([1] * 9 + [0], False),
        ([1] * 6 + [0] * 4, True),
        ([0] * 4 + [1] * 6, False),
    ):
        mask = torch.tensor([[1] * 10, row_mask])
        seen.clear()
        with torch.no_grad():
            model(ids, mask)
        assert (seen[0] is not None) == packed, row_mask


def test_layout_rows_live_on_the_batch_device():
    """Layout's [CLS] rows index the token matrix, so they must be on its device (a CUDA batch
    with CPU indices fails in index_select). The meta device stands in for a GPU here."""
    meta = torch.device("meta")
    for keep in (None, torch.tensor([0, 1, 2, 5, 6], device=meta)):
        layout = minbert.Layout(2, 5, keep, meta)
        assert layout.first.device == meta
    rows = torch.arange(5)
    assert minbert.Layout(2, 5, torch.tensor([0, 1, 2, 5, 6]), rows.device).first.tolist() == [0, 3]
    assert minbert.Layout(2, 5, None, rows.device).first.tolist() == [0, 5]


@pytest.mark.filterwarnings("ignore::DeprecationWarning:torch.jit")  # torch's own, raised inside torch.compile
def test_compiled_layers_equal_eager():
    """`train.py --compile` (BertModel.compile_layers): torch.compile's generated kernels give the
    eager values and gradients, on two batch shapes, with and without padding removal."""
    import torch._dynamo

    torch.manual_seed(0)
    config = small_config()
    eager = BertModel(config).train()
    compiled = BertModel(config).train()
    compiled.load_state_dict(eager.state_dict())
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    compiled.compile_layers()
    # A fixed random readout, not hidden.pow(2).sum(): after LayerNorm (weight 1, bias 0 at
    # init) that sum is the constant H per token, and every gradient below would be rounding noise.
    direction = torch.randn(32)
    for B, T, pad in ((3, 9, 4), (2, 13, 0)):  # 4 of 27 positions padded: padding removal; then none
        ids = torch.randint(1, 50, (B, T))
        mask = torch.ones_like(ids)
        mask[0, T - pad :] = 0
        outs = []
        for model in (eager, compiled):
            model.zero_grad()
            hidden = model(ids, mask)["last_hidden_state"][mask.bool()]
            (hidden * direction).sum().backward()
            outs.append((hidden.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None}))
        torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-5)
        assert outs[1][1].keys() == outs[0][1].keys()
        assert len(outs[0][1]) == len(list(eager.parameters())) - 2  # every parameter but the pooler's two
        for name, g_eager in outs[0][1].items():
            torch.testing.assert_close(outs[1][1][name], g_eager, atol=1e-5, rtol=1e-4, msg=name)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # compiled, not silently eager


def test_compiled_layers_keep_a_graph_for_every_variant_a_run_meets():
    """Training and then evaluating meet a dozen and more variants of the one Layer.forward
    (train/eval x no mask / mask / mask and padding removal x full or [CLS]-only last layer):
    all compiled, none left to eager by torch's default limit of 8. The eager backend: only the
    caching is tested here."""
    import torch._dynamo

    model = BertModel(small_config(num_hidden_layers=3))
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    model.compile_layers(backend="eager")
    ids = torch.randint(5, 50, (4, 12))
    full = torch.ones_like(ids)
    padded = full.clone()
    padded[1:, 6:] = 0  # 3 x 6 of 48 positions: padding removal
    little = full.clone()
    little[3, 11:] = 0  # 1 of 48: a mask, rows kept
    for training in (True, False):
        model.train(training)
        for mask, cls_only in itertools.product((full, padded, little), (False, True)):
            with torch.set_grad_enabled(training):
                hidden = model.encode(model.embed(ids), mask, cls_only=cls_only)["last_hidden_state"]
            if training:
                hidden.sum().backward()
    frames = torch._dynamo.utils.counters["frames"]
    assert frames["total"] == frames["ok"]  # every call compiled: none hit the limit and fell back
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 8  # more than torch's default keeps


def test_attention_by_hand_and_against_sdpa():
    # One head, two keys: scores q.k / sqrt(2) = (0, 1) -> softmax weights (1, e) / (1 + e).
    q = torch.tensor([[[[1.0, 1.0]]]])  # (B=1, nh=1, Tq=1, hs=2)
    k = torch.tensor([[[[0.0, 0.0], [2**-0.5, 2**-0.5]]]])  # (1, 1, T=2, 2)
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    e = torch.e
    torch.testing.assert_close(minbert.attention(q, k, v), torch.tensor([[[[1 / (1 + e), e / (1 + e)]]]]))
    mask = torch.tensor([[[[0.0, torch.finfo(torch.float32).min]]]])  # the second key is padding
    torch.testing.assert_close(minbert.attention(q, k, v, mask), torch.tensor([[[[1.0, 0.0]]]]))

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 4, 5, 8, generator=g) for _ in range(3))
    mask = torch.zeros(3, 1, 1, 5)
    mask[1, ..., 3:] = torch.finfo(torch.float32).min
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(minbert.attention(q, k, v, mask), ref, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("impl", ["sdpa", "explicit"])
def test_one_training_step_equals_hugging_face(impl):
    """llm.c's check: same weights, same batch -> same loss, same gradient for every parameter,
    and the same weights after one AdamW step (reference: transformers + torch.optim.AdamW)."""
    ref = np.load(FIXTURES / "train_step_ref.npz", allow_pickle=False)
    tiny = np.load(FIXTURES / "tiny_ref.npz", allow_pickle=False)
    no_dropout = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = BertModel.from_pretrained(FIXTURES / "tiny_bert", attn_impl=impl, **no_dropout).train().to(DEVICE)
    ids, mask, types = (torch.from_numpy(tiny[k]).to(DEVICE) for k in ("input_ids", "attention_mask", "token_type_ids"))
    head_weight, head_bias = (torch.from_numpy(ref[k]).to(DEVICE) for k in ("head_weight", "head_bias"))
    logits = model(ids, mask, types)["pooler_output"] @ head_weight.T + head_bias
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ref["labels"]).to(DEVICE))
    loss.backward()
    torch.testing.assert_close(loss.detach().cpu(), torch.from_numpy(ref["loss"]), atol=TOL / 10, rtol=1e-6)

    grads = minbert.to_hf_state_dict({n: p.grad.cpu() for n, p in model.named_parameters()})
    assert set(grads) == {k[len("grad/") :] for k in ref.files if k.startswith("grad/")}
    for name, grad in grads.items():
        torch.testing.assert_close(grad, torch.from_numpy(ref[f"grad/{name}"]), atol=TOL / 10, rtol=1e-4, msg=name)
        if name.endswith("attention.self.key.bias"):
            assert grad.abs().max() < 1e-6  # no true gradient (see below)

    AdamW(model.parameters(), lr=float(ref["lr"]), weight_decay=float(ref["weight_decay"])).step()
    after = minbert.to_hf_state_dict({n: p.detach().cpu() for n, p in model.named_parameters()})
    for name, value in after.items():
        # Softmax ignores a constant added to every score, so the key bias has no true gradient:
        # both sides hold rounding noise (< 1e-6, checked above), which Adam's g / sqrt(v) turns
        # into a step of +-lr either way. Its update is only checked to be at most one such step.
        atol = 2 * float(ref["lr"]) if name.endswith("attention.self.key.bias") else TOL / 10
        torch.testing.assert_close(value, torch.from_numpy(ref[f"after/{name}"]), atol=atol, rtol=1e-5, msg=name)
