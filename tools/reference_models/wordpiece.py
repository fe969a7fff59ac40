"""Uncased BERT-style WordPiece: BertNormalizer, BertPreTokenizer, greedy longest-match WordPiece.
Training learns frequency-ranked merges over '##'-continued characters, as the tokenizers library does."""

import re
import unicodedata
from collections import Counter

from .pair_merges import learn_merges

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PREFIX = "##"
MAX_CHARS_PER_WORD = 100
_SPECIAL_PATTERN = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


def _is_control(char):
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def _is_whitespace(char):
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_punctuation(char):
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_chinese(code):
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2B73F
        or 0x2B740 <= code <= 0x2B81F
        or 0x2B820 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )


def normalize(text):
    """BertNormalizer(clean_text, handle_chinese_chars, strip_accents, lowercase)."""
    out = []
    for char in text:
        code = ord(char)
        if code == 0 or code == 0xFFFD or _is_control(char):
            continue
        if _is_whitespace(char):
            out.append(" ")
        elif _is_chinese(code):
            out.append(f" {char} ")
        else:
            out.append(char)
    text = unicodedata.normalize("NFD", "".join(out))
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return text.lower()


def pretokenize(text):
    """BertPreTokenizer: split on whitespace, and every punctuation character is its own word."""
    words = []
    for chunk in text.split():
        current = []
        for char in chunk:
            if _is_punctuation(char):
                if current:
                    words.append("".join(current))
                    current = []
                words.append(char)
            else:
                current.append(char)
        if current:
            words.append("".join(current))
    return words


def _join(left, right):
    return left + (right[len(PREFIX):] if right.startswith(PREFIX) else right)


class WordPiece:
    def __init__(self, vocab_tokens):
        self.vocab = {token: index for index, token in enumerate(vocab_tokens)}
        self.id_to_token = list(vocab_tokens)
        self.unk_id = self.vocab["[UNK]"]
        self.cls_id = self.vocab["[CLS]"]
        self.sep_id = self.vocab["[SEP]"]
        self.pad_id = self.vocab["[PAD]"]
        self._cache = {}

    @staticmethod
    def train(texts, vocab_size, min_char_count=5):
        counts = Counter()
        for text in texts:
            counts.update(pretokenize(normalize(text)))
        char_counts = Counter()
        words = {}
        for word, count in counts.items():
            if len(word) > MAX_CHARS_PER_WORD:
                continue
            symbols = tuple([word[0]] + [PREFIX + c for c in word[1:]])
            words[symbols] = count
            for symbol in symbols:
                char_counts[symbol] += count
        alphabet = sorted(s for s, c in char_counts.items() if c >= min_char_count)
        kept = set(alphabet)
        # Words with a rare character would only ever be [UNK]; they do not vote on merges.
        words = {w: c for w, c in words.items() if all(s in kept for s in w)}
        budget = vocab_size - len(SPECIAL_TOKENS) - len(alphabet)
        tokens = list(SPECIAL_TOKENS) + alphabet
        seen = set(tokens)
        for left, right in learn_merges(words, budget * 2, join=_join):
            merged = _join(left, right)
            if merged not in seen:
                seen.add(merged)
                tokens.append(merged)
            if len(tokens) >= vocab_size:
                break
        return WordPiece(tokens)

    def _encode_word(self, word):
        cached = self._cache.get(word)
        if cached is not None:
            return cached
        if len(word) > MAX_CHARS_PER_WORD:
            return [self.unk_id]
        ids, start = [], 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else PREFIX + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                ids = [self.unk_id]
                break
            ids.append(found)
            start = end
        self._cache[word] = ids
        return ids

    def encode(self, text, max_length=None):
        """[CLS] pieces [SEP], truncated to max_length tokens in total."""
        ids = []
        # Special tokens written in the text are matched first, on the raw text, as tokenizers does.
        for part in _SPECIAL_PATTERN.split(text):
            if part in self.vocab and part in SPECIAL_TOKENS:
                ids.append(self.vocab[part])
                continue
            for word in pretokenize(normalize(part)):
                ids.extend(self._encode_word(word))
        if max_length is not None:
            ids = ids[: max_length - 2]
        return [self.cls_id] + ids + [self.sep_id]

    def vocab_txt(self):
        return "".join(token + "\n" for token in self.id_to_token)

    def tokenizer_json(self, max_length):
        special = [
            {
                "id": self.vocab[token],
                "content": token,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for token in SPECIAL_TOKENS
        ]
        cls, sep = ("[CLS]", self.cls_id), ("[SEP]", self.sep_id)
        return {
            "version": "1.0",
            "truncation": {"direction": "Right", "max_length": max_length, "strategy": "LongestFirst", "stride": 0},
            "padding": None,
            "added_tokens": special,
            "normalizer": {
                "type": "BertNormalizer",
                "clean_text": True,
                "handle_chinese_chars": True,
                "strip_accents": None,
                "lowercase": True,
            },
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": "[CLS]", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                    {"SpecialToken": {"id": "[SEP]", "type_id": 1}},
                ],
                "special_tokens": {
                    name: {"id": name, "ids": [token_id], "tokens": [name]} for name, token_id in (cls, sep)
                },
            },
            "decoder": {"type": "WordPiece", "prefix": PREFIX, "cleanup": True},
            "model": {
                "type": "WordPiece",
                "unk_token": "[UNK]",
                "continuing_subword_prefix": PREFIX,
                "max_input_chars_per_word": MAX_CHARS_PER_WORD,
                "vocab": self.vocab,
            },
        }
