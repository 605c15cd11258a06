"""BERT's tokenizer: WordPiece from the `tokenizers` package, with BERT's special tokens and
pair truncation written out here so they match the original BERT exactly.

    tokenizer = build_tokenizer(model_folder, max_length=128)   # reads the folder's vocab.txt
    enc = tokenizer.encode("a sentence", "and its pair")
    enc.ids        # [CLS] a sentence [SEP] and its pair [SEP], as vocabulary ids
    enc.type_ids   # 0 for the first sentence and its [SEP]s, 1 for the second

It never pads: data.collate pads each batch to its own longest sequence.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[UNK]", "[PAD]")  # what every vocabulary must hold (hub.check_vocab)


def _normalizer_options(folder):
    """BertNormalizer's options as tokenizer_config.json gives them (Hugging Face's names):
    lower-casing (unsaid: guessed from the vocabulary, as cased ones hold capitalised words),
    accent stripping (unsaid: as lower-casing) and spacing out CJK characters (unsaid: on)."""
    config_file = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_file.read_text()) if config_file.is_file() else {}
    lower = config.get("do_lower_case")
    if lower is None:
        vocab = (Path(folder) / "vocab.txt").read_text(encoding="utf-8").split("\n")
        lower = not any(w[:1].isupper() and not w.startswith("[") for w in vocab)
    chinese = config.get("tokenize_chinese_chars")
    return {
        "lowercase": bool(lower),
        "strip_accents": config.get("strip_accents"),
        "handle_chinese_chars": chinese is not False,
    }


@dataclass
class Encoding:
    ids: list  # token ids, "[CLS] a [SEP]" or "[CLS] a [SEP] b [SEP]"
    type_ids: list  # 0 for [CLS], a and its [SEP]; 1 for b and its [SEP]


class BertTokenizer:
    """WordPiece tokenization from the `tokenizers` package, then BERT's special tokens and
    pair truncation, written out here so they match the original BERT exactly."""

    def __init__(self, folder, max_length=128):
        folder = Path(folder)
        if max_length < 3:
            raise ValueError(f"max_length must be at least 3 ([CLS] a [SEP] b [SEP] needs room), got {max_length}")
        vocab = models.WordPiece.read_file(str(folder / "vocab.txt"))
        for special in SPECIAL_TOKENS:
            if special not in vocab:
                raise ValueError(f"{folder / 'vocab.txt'}: missing special token {special}")
        self.wordpiece = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        # BERT's normaliser: drop control chars, space out CJK characters, and if the vocabulary is
        # uncased, lower-case and strip accents. Then split on whitespace and punctuation.
        self.wordpiece.normalizer = normalizers.BertNormalizer(clean_text=True, **_normalizer_options(folder))
        self.wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self.wordpiece.decoder = decoders.WordPiece()
        self.cls_id, self.sep_id, self.max_length = vocab["[CLS]"], vocab["[SEP]"], max_length

    def encode(self, text, pair=None):
        return self.encode_batch([text if pair is None else (text, pair)])[0]

    def encode_batch(self, inputs):
        """Encode a list of sentences or (sentence_a, sentence_b) pairs."""
        texts = [t for x in inputs for t in ((x,) if isinstance(x, str) else x)]
        pieces = iter(e.ids for e in self.wordpiece.encode_batch(texts, add_special_tokens=False))
        return [
            self._assemble(next(pieces)) if isinstance(x, str) else self._assemble(next(pieces), next(pieces))
            for x in inputs
        ]

    def _assemble(self, a, b=None):
        if b is None:
            a = a[: self.max_length - 2]
            return Encoding([self.cls_id, *a, self.sep_id], [0] * (len(a) + 2))
        # Longest first, as in the original BERT: drop the last token of the longer sentence
        # (of b on a tie) until the pair fits; in closed form, the longer one is cut first, then both evenly.
        budget, extra = self.max_length - 3, len(a) + len(b) - (self.max_length - 3)
        if extra > 0:
            cut_long = min(extra, abs(len(a) - len(b)))
            rest = extra - cut_long
            keep_a = len(a) - (cut_long if len(a) > len(b) else 0) - rest // 2
            a, b = a[:keep_a], b[: budget - keep_a]
        return Encoding([self.cls_id, *a, self.sep_id, *b, self.sep_id], [0] * (len(a) + 2) + [1] * (len(b) + 1))

    def decode(self, ids):
        return self.wordpiece.decode(ids)


def build_tokenizer(folder, max_length=128):
    """The tokenizer of a model folder (its vocab.txt), truncating to max_length tokens."""
    return BertTokenizer(folder, max_length)
