"""Byte-level BPE in the GPT-2 manner: bytes mapped to printable characters, GPT-2's pre-tokenization,
merges applied by rank. Writes a Hugging Face tokenizer.json that tokenizers and transformers.js load."""

import unicodedata
from collections import Counter

from .pair_merges import learn_merges

END_OF_TEXT = "<|endoftext|>"

# Unicode White_Space, the set that \s matches in the tokenizers' regex engines.
_WHITESPACE = set("\t\n\x0b\x0c\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | {
    chr(c) for c in range(0x2000, 0x200B)
}
_CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")


def bytes_to_unicode():
    """The GPT-2 table: printable Latin-1 bytes map to themselves, the rest to code points from 256 up."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\xa1"), ord("\xac") + 1))
        + list(range(ord("\xae"), ord("\xff") + 1))
    )
    table, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            table[byte] = chr(byte)
        else:
            table[byte] = chr(256 + extra)
            extra += 1
    return table


BYTE_TO_CHAR = bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def _kind(char):
    if char in _WHITESPACE:
        return "space"
    category = unicodedata.category(char)
    if category.startswith("L"):
        return "letter"
    if category.startswith("N"):
        return "number"
    return "other"


def pretokenize(text):
    """Splits text exactly as GPT-2's pattern does:
    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"""
    kinds = [_kind(c) for c in text]
    pieces, i, n = [], 0, len(text)
    while i < n:
        if text[i] == "'":
            suffix = next((s for s in _CONTRACTIONS if text.startswith(s, i + 1)), None)
            if suffix is not None:
                pieces.append(text[i : i + 1 + len(suffix)])
                i += 1 + len(suffix)
                continue
        start = i
        if text[i] == " " and i + 1 < n and kinds[i + 1] != "space":
            i += 1  # the optional leading space of the next three alternatives
        if kinds[i] != "space":
            kind = kinds[i]
            while i < n and kinds[i] == kind:
                i += 1
            pieces.append(text[start:i])
            continue
        end = i
        while end < n and kinds[end] == "space":
            end += 1
        if end < n and end - i > 1:
            end -= 1  # \s+(?!\S): leave the last space to lead the next word
        pieces.append(text[i:end])
        i = end
    return pieces


def to_symbols(piece):
    return "".join(BYTE_TO_CHAR[b] for b in piece.encode("utf-8"))


class ByteLevelBpe:
    def __init__(self, merges):
        self.merges = list(merges)
        alphabet = [BYTE_TO_CHAR[b] for b in range(256)]
        self.vocab = {symbol: index for index, symbol in enumerate(alphabet)}
        for left, right in self.merges:
            self.vocab.setdefault(left + right, len(self.vocab))
        self.vocab[END_OF_TEXT] = len(self.vocab)
        self.end_of_text_id = self.vocab[END_OF_TEXT]
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        self._ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self._cache = {}

    @staticmethod
    def train(texts, vocab_size):
        counts = Counter()
        for text in texts:
            counts.update(to_symbols(p) for p in pretokenize(text))
        words = {tuple(word): count for word, count in counts.items()}
        # 256 byte symbols and one special token take the rest of the vocabulary.
        return ByteLevelBpe(learn_merges(words, vocab_size - 256 - 1))

    def _encode_piece(self, symbols):
        cached = self._cache.get(symbols)
        if cached is not None:
            return cached
        word = list(symbols)
        while len(word) > 1:
            ranked = [(self._ranks.get(p, 1 << 30), j) for j, p in enumerate(zip(word, word[1:]))]
            rank, _ = min(ranked)
            if rank == 1 << 30:
                break
            left, right = self.merges[rank]
            merged, j = [], 0
            while j < len(word):
                if j + 1 < len(word) and word[j] == left and word[j + 1] == right:
                    merged.append(left + right)
                    j += 2
                else:
                    merged.append(word[j])
                    j += 1
            word = merged
        ids = [self.vocab[s] for s in word]
        if len(self._cache) < 500_000:
            self._cache[symbols] = ids
        return ids

    def encode(self, text):
        """Token ids for text; the literal string <|endoftext|> becomes the special token."""
        ids = []
        for index, segment in enumerate(text.split(END_OF_TEXT)):
            if index > 0:
                ids.append(self.end_of_text_id)
            for piece in pretokenize(segment):
                ids.extend(self._encode_piece(to_symbols(piece)))
        return ids

    def decode(self, ids):
        data = bytearray()
        for i in ids:
            token = self.id_to_token[i]
            if i == self.end_of_text_id:
                data += token.encode("utf-8")
            else:
                data += bytes(CHAR_TO_BYTE[c] for c in token)
        return data.decode("utf-8", errors="replace")

    def tokenizer_json(self):
        return {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": [
                {
                    "id": self.end_of_text_id,
                    "content": END_OF_TEXT,
                    "single_word": False,
                    "lstrip": False,
                    "rstrip": False,
                    "normalized": True,
                    "special": True,
                }
            ],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE",
                "dropout": None,
                "unk_token": None,
                "continuing_subword_prefix": "",
                "end_of_word_suffix": "",
                "fuse_unk": False,
                "byte_fallback": False,
                "vocab": self.vocab,
                "merges": [f"{left} {right}" for left, right in self.merges],
            },
        }
