"""Held-out WordNet retrieval: from a synset's first lemma, find its gloss (or its second lemma) among
the glosses (second lemmas) of all held-out synsets. Scores come from embeddings or a TF-IDF baseline."""

import math
from collections import Counter

import numpy as np

KS = (1, 10)


def _tasks(held_out):
    with_synonym = [s for s in held_out if len(s.lemmas) >= 2]
    return {
        "lemma_to_gloss": ([s.lemmas[0] for s in held_out], [s.definition for s in held_out]),
        "lemma_to_synonym": ([s.lemmas[0] for s in with_synonym], [s.lemmas[1] for s in with_synonym]),
    }


def recall_at_k(scores, k):
    """Expected recall@k when ties are broken uniformly at random: query i's answer is candidate i."""
    truth = np.diag(scores)[:, None]
    greater = (scores > truth).sum(axis=1)
    tied_others = (scores == truth).sum(axis=1) - 1
    hit = np.clip((k - greater) / (tied_others + 1), 0.0, 1.0)
    return float(hit.mean())


def _tfidf_scores(queries, candidates, tokenize):
    query_words = [Counter(tokenize(q)) for q in queries]
    candidate_words = [Counter(tokenize(c)) for c in candidates]
    document_frequency = Counter(w for words in candidate_words for w in words)
    count = len(candidates)
    vocabulary = {w: i for i, w in enumerate(sorted(set(document_frequency) | {w for q in query_words for w in q}))}

    def matrix(rows):
        out = np.zeros((len(rows), len(vocabulary)), dtype=np.float32)
        for r, words in enumerate(rows):
            for word, tf in words.items():
                out[r, vocabulary[word]] = tf * (math.log((1 + count) / (1 + document_frequency[word])) + 1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    return matrix(query_words) @ matrix(candidate_words).T


def evaluate_retrieval(held_out, embed, tokenize=None):
    """embed(texts) -> L2-normalised [n, d] array; with embed=None, TF-IDF cosine over tokenize(text)."""
    results = {}
    for task, (queries, candidates) in _tasks(held_out).items():
        if embed is None:
            scores = _tfidf_scores(queries, candidates, tokenize)
        else:
            scores = embed(queries) @ embed(candidates).T
        results[task] = {"queries": len(queries), **{f"recall@{k}": recall_at_k(scores, k) for k in KS}}
    return results
