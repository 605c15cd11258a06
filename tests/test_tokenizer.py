"""tokenizer.py: the same ids as Hugging Face's pure-Python BertTokenizer, and lower-casing
decided by the vocabulary and its tokenizer_config.json."""

import json

from conftest import FIXTURES

import hub
from tokenizer import build_tokenizer


def test_tokenizer_matches_hugging_face_bert_tokenizer():
    ref = json.loads((FIXTURES / "tokenizer_ref.json").read_text())
    folder = hub.packaged_model_dir()
    tokenizers = {}
    for case in ref["cases"]:
        n = case["max_length"]
        tok = tokenizers.setdefault(n, build_tokenizer(folder, max_length=n))
        enc = tok.encode(case["text"], case["text_pair"]) if case["text_pair"] is not None else tok.encode(case["text"])
        assert enc.ids == case["input_ids"], case["text"][:80]
        assert enc.type_ids == case["token_type_ids"], case["text"][:80]
    assert any(len(c["input_ids"]) == c["max_length"] for c in ref["cases"]), "fixture should exercise truncation"


def test_tokenizer_lowercasing_follows_the_vocabulary(tmp_path):
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "Hello", "world"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    assert build_tokenizer(tmp_path).encode("Hello world").ids == [2, 6, 7, 3]  # cased vocabulary: kept
    (tmp_path / "tokenizer_config.json").write_text('{"do_lower_case": true}')
    assert build_tokenizer(tmp_path).encode("Hello world").ids == [2, 5, 7, 3]  # config says lower-case


def test_accents_and_cjk_follow_tokenizer_config(tmp_path):
    # strip_accents and tokenize_chinese_chars were read as always on (Hugging Face's names, and
    # its rule: strip_accents unsaid follows do_lower_case).
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "cafe", "café", "東", "京", "東京"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")

    def tokens(config, text):
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
        ids = build_tokenizer(tmp_path).encode(text).ids[1:-1]
        return [words[i] for i in ids]

    assert tokens({"do_lower_case": True}, "Café") == ["cafe"]  # uncased: lower-cased and stripped
    assert tokens({"do_lower_case": True, "strip_accents": False}, "Café") == ["café"]
    assert tokens({"do_lower_case": False, "strip_accents": True}, "cafe café") == ["cafe", "cafe"]
    assert tokens({"do_lower_case": True}, "東京") == ["東", "京"]  # each CJK character a word
    assert tokens({"do_lower_case": True, "tokenize_chinese_chars": False}, "東京") == ["東京"]
