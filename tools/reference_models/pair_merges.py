"""Learns a sequence of symbol-pair merges from word counts: the core of both BPE and WordPiece training.
Counts are updated incrementally, so each merge only revisits the words that contain the merged pair."""

import heapq
from collections import defaultdict


def learn_merges(word_counts, max_merges, join=lambda a, b: a + b, min_count=2):
    """word_counts: {tuple of symbols: count}. Returns [(left, right)] in merge order.

    The most frequent pair wins; ties go to the lexicographically smallest pair, so the result is
    a deterministic function of the counts."""
    words = [list(w) for w in word_counts]
    counts = list(word_counts.values())
    pair_counts = defaultdict(int)
    pair_words = defaultdict(set)
    for index, (word, count) in enumerate(zip(words, counts)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += count
            pair_words[pair].add(index)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(merges) < max_merges:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale heap entry; the current count was pushed separately
        if -negative_count < min_count:
            break
        merges.append(pair)
        left, right = pair
        merged = join(left, right)
        touched = set()
        for index in sorted(pair_words.pop(pair)):
            word, count = words[index], counts[index]
            for old in zip(word, word[1:]):
                pair_counts[old] -= count
                touched.add(old)
            new_word, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
                    new_word.append(merged)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            words[index] = new_word
            for new in zip(new_word, new_word[1:]):
                pair_counts[new] += count
                pair_words[new].add(index)
                touched.add(new)
        pair_counts.pop(pair, None)
        for changed in touched:
            current = pair_counts.get(changed, 0)
            if current > 0 and changed != pair:
                heapq.heappush(heap, (-current, changed))
            elif changed in pair_counts and current <= 0:
                del pair_counts[changed]
    return merges
