"""The learned tier's features: hashed character n-grams, words and word pairs.

Shared by the training script and by inference, so both hash exactly alike. A text's
feature vector is the count of each hash bucket divided by the number of features plus
:data:`SHRINK` (a shrunk mean), which lets a long text be scored window by window with
cumulative sums.
"""

from __future__ import annotations

import numpy as np

BITS = 18
CHAR_ORDERS = (2, 3, 4, 5)
WINDOW = 512  # characters per scored window; longer texts are scored window by window
STRIDE = 256
# Pseudo-count added to a window's number of features: a short text's mean weight is
# shrunk towards the bias, so three or four n-grams cannot make "List 10" an attack.
SHRINK = 2000.0
_P = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_WHITESPACE = str.maketrans(dict.fromkeys("\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029", " "))


def prepare(text: str) -> str:
    """Lower case with every whitespace character a space; as long as ``text``."""
    low = text.lower()
    if len(low) != len(text):  # a few characters lower-case to two ("İ")
        low = "".join(c.lower()[:1] or c for c in text)
    return low.translate(_WHITESPACE)


def _mix(h: np.ndarray, salt: int, bits: int) -> np.ndarray:
    x = h + np.uint64(salt) * _MIX2
    x ^= x >> np.uint64(31)
    x *= _MIX1
    x ^= x >> np.uint64(29)
    return x >> np.uint64(64 - bits)


_P_INV = np.uint64(pow(int(_P), -1, 1 << 64))
# Word characters for word features: ASCII letters, digits and "_", and any non-ASCII
# character except the usual Unicode spaces and punctuation blocks.
_ASCII_WORD = np.zeros(128, dtype=bool)
for _c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_":
    _ASCII_WORD[ord(_c)] = True
_PUNCT_BLOCKS = ((0x2000, 0x206F), (0x3000, 0x303F), (0xFF00, 0xFF0F), (0xFF1A, 0xFF20))


def _word_mask(cps: np.ndarray) -> np.ndarray:
    small = cps < 128
    mask = np.where(small, _ASCII_WORD[np.where(small, cps, 0).astype(np.int64)], True)
    for lo, hi in _PUNCT_BLOCKS:
        mask &= ~((cps >= lo) & (cps <= hi))
    mask &= (cps != 0xA0) & (cps != 0xA7) & (cps != 0xB7) & (cps != 0xAB) & (cps != 0xBB)
    return np.asarray(mask, dtype=bool)


def featurize(s: str, bits: int = BITS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features of a prepared text: (start, length, bucket) arrays, one row per feature.

    Character n-grams of :data:`CHAR_ORDERS`, words and word pairs, all hashed with one
    polynomial prefix hash (vectorised: no Python loop per character or word).
    """
    empty = np.zeros(0, dtype=np.int64)
    if not s:
        return empty, empty, empty
    cps = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    n = len(cps)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(n + 1, _P, dtype=np.uint64))
        powers = np.concatenate((np.ones(1, dtype=np.uint64), powers[:-1]))  # P**i
        inv = np.cumprod(np.full(n, _P_INV, dtype=np.uint64))  # P**-(j+1)
        prefix = np.concatenate((np.zeros(1, dtype=np.uint64), np.cumsum((cps + 1) * inv)))
        prefix *= powers  # prefix[i] = hash of s[:i]

        def span_hash(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return np.asarray(prefix[b] - prefix[a] * powers[b - a])

        starts: list[np.ndarray] = []
        lengths: list[np.ndarray] = []
        buckets: list[np.ndarray] = []
        for order in CHAR_ORDERS:
            if n < order:
                break
            a = np.arange(n - order + 1, dtype=np.int64)
            buckets.append(_mix(span_hash(a, a + order), order, bits).astype(np.int64))
            starts.append(a)
            lengths.append(np.full(len(a), order, dtype=np.int64))
        word = _word_mask(cps)
        edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
        w_start = np.flatnonzero(edges == 1)
        w_end = np.flatnonzero(edges == -1)
        if len(w_start):
            buckets.append(_mix(span_hash(w_start, w_end), 101, bits).astype(np.int64))
            starts.append(w_start)
            lengths.append(w_end - w_start)
        if len(w_start) > 1:
            a, b = w_start[:-1], w_end[1:]
            buckets.append(_mix(span_hash(a, b), 102, bits).astype(np.int64))
            starts.append(a)
            lengths.append(b - a)
    if not starts:
        return empty, empty, empty
    return np.concatenate(starts), np.concatenate(lengths), np.concatenate(buckets)


def word_spans(s: str) -> list[tuple[int, int]]:
    """(start, end) of every word of a prepared text, as the word features see them."""
    if not s:
        return []
    cps = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    edges = np.diff(np.concatenate(([False], _word_mask(cps), [False])).astype(np.int8))
    return list(
        zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True)
    )


def windows(length: int, window: int = WINDOW, stride: int = STRIDE) -> list[tuple[int, int]]:
    """Window spans covering a text of ``length`` characters (one window when it is short)."""
    if length <= window:
        return [(0, length)]
    spans = [(a, a + window) for a in range(0, length - window + 1, stride)]
    if spans[-1][1] < length:
        spans.append((length - window, length))
    return spans
