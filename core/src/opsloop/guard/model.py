"""The learned tier: a linear model over hashed n-grams, shipped in the package.

Trained by ``scripts/guard/train.py`` (see docs/guard-data.md); the weights are package
data (``opsloop/guard/data/injection_model.npz``), read with numpy, never downloaded.
Inference is a sum of weights per window: a text longer than one window gets the score of
its worst window, so an injection in the middle of a long document is not averaged away.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from opsloop.guard import features

MODEL_FILE = "injection_model.npz"
CHUNK = 256 * 1024  # characters featurised at once: bounds memory on very large texts
_lock = threading.Lock()


@dataclass(frozen=True)
class ModelScore:
    """The worst window's probability of being an injection, where it is, and why."""

    score: float
    start: int
    end: int
    top: tuple[str, ...] = ()  # the n-grams that pushed the score up most

    def explain(self) -> str:
        """``model 0.97: 'ignore all', 'instructions'`` for a finding's detail."""
        grams = ", ".join(repr(g) for g in self.top)
        return f"model {self.score:.2f}" + (f": {grams}" if grams else "")


class InjectionModel:
    """Weights, bias and threshold of the shipped (or any saved) model."""

    def __init__(
        self,
        weights: np.ndarray,
        bias: float,
        threshold: float,
        *,
        bits: int = features.BITS,
        window: int = features.WINDOW,
        stride: int = features.STRIDE,
        shrink: float = features.SHRINK,
        threshold_long: float | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        if weights.shape != (1 << bits,):
            raise ValueError(f"weights must have 2**{bits} entries, got {weights.shape}")
        self.weights = weights.astype(np.float64)
        self.bias = float(bias)
        self.threshold = float(threshold)
        # Texts longer than one window have their own threshold: long benign prose scores
        # higher (its worst window is a maximum over many), short attacks lower.
        self.threshold_long = float(threshold if threshold_long is None else threshold_long)
        self.bits = bits
        self.window = window
        self.stride = stride
        self.shrink = float(shrink)
        self.info = info or {}

    @classmethod
    def load(cls, path: Any = None) -> InjectionModel:
        """Load a saved model (default: the one shipped in the package)."""
        if path is None:
            ref = resources.files("opsloop.guard.data").joinpath(MODEL_FILE)
            with ref.open("rb") as fh:
                return cls._from_npz(np.load(fh, allow_pickle=False))
        with open(path, "rb") as fh:
            return cls._from_npz(np.load(fh, allow_pickle=False))

    @classmethod
    def _from_npz(cls, data: Any) -> InjectionModel:
        import json

        weights = data["weights"].astype(np.float64)
        meta = json.loads(str(data["meta"]))
        return cls(
            weights,
            meta["bias"],
            meta["threshold"],
            bits=meta["bits"],
            window=meta["window"],
            stride=meta["stride"],
            shrink=meta.get("shrink", 0.0),
            threshold_long=meta.get("threshold_long"),
            info=meta,
        )

    def save(self, path: Any, **info: Any) -> None:
        """Write the model as a compressed .npz: float16 weights plus metadata."""
        import json

        meta = {
            **self.info,
            **info,
            "bias": self.bias,
            "threshold": self.threshold,
            "threshold_long": self.threshold_long,
            "bits": self.bits,
            "window": self.window,
            "stride": self.stride,
            "shrink": self.shrink,
        }
        np.savez_compressed(
            path, weights=self.weights.astype(np.float16), meta=np.str_(json.dumps(meta))
        )

    def threshold_for(self, length: int) -> float:
        """The decision threshold for a text of ``length`` characters (one window or more)."""
        return self.threshold if length <= self.window else self.threshold_long

    def flags(self, text: str) -> bool:
        """Whether the model alone calls ``text`` (already normalised) an injection."""
        return self.score(text, explain=0).score >= self.threshold_for(len(text))

    def logit_of_features(self, buckets: np.ndarray) -> float:
        """The raw score of one window given its feature buckets (what training fits)."""
        return self.bias + float(self.weights[buckets].sum()) / (len(buckets) + self.shrink)

    def score(self, text: str, *, explain: int = 5) -> ModelScore:
        """Score ``text`` (already normalised): the worst window's probability and span."""
        s = features.prepare(text)
        if not s.strip():
            return ModelScore(_sigmoid(self.bias), 0, 0)
        best: tuple[float, int, int] | None = None
        for chunk_start in range(0, len(s), CHUNK):
            seg = s[chunk_start : chunk_start + CHUNK + self.window]
            logit, a, b = self._best_window(seg, last=chunk_start + CHUNK + self.window >= len(s))
            if best is None or logit > best[0]:
                best = (logit, chunk_start + a, chunk_start + b)
            if chunk_start + CHUNK + self.window >= len(s):
                break
        assert best is not None
        logit, start, end = best
        top = self._top(s[start:end], explain) if explain else ()
        return ModelScore(_sigmoid(logit), start, end, top)

    def _best_window(self, seg: str, *, last: bool) -> tuple[float, int, int]:
        starts, _, buckets = features.featurize(seg, self.bits)
        n = len(seg)
        contrib = np.bincount(starts, weights=self.weights[buckets], minlength=n)
        counts = np.bincount(starts, minlength=n).astype(np.float64)
        csum = np.concatenate(([0.0], np.cumsum(contrib)))
        ccount = np.concatenate(([0.0], np.cumsum(counts)))
        spans = features.windows(n, self.window, self.stride)
        if not last:  # the overlap belongs to the next chunk, except its first window
            spans = [w for w in spans if w[0] < CHUNK] or spans[:1]
        a = np.fromiter((w[0] for w in spans), dtype=np.int64)
        b = np.fromiter((w[1] for w in spans), dtype=np.int64)
        total = csum[b] - csum[a]
        count = np.maximum(ccount[b] - ccount[a] + self.shrink, 1.0)
        logits = self.bias + total / count
        i = int(np.argmax(logits))
        return float(logits[i]), int(a[i]), int(b[i])

    def _top(self, window_text: str, k: int) -> tuple[str, ...]:
        """The ``k`` words of the window that pushed its score up most: each word's share is
        the weight of every feature (n-gram, word, word pair) starting inside it."""
        starts, _, buckets = features.featurize(window_text, self.bits)
        if len(buckets) == 0:
            return ()
        per_char = np.bincount(starts, weights=self.weights[buckets], minlength=len(window_text))
        spans = features.word_spans(window_text)
        if not spans:
            return ()
        csum = np.concatenate(([0.0], np.cumsum(per_char)))
        shares = [(csum[b] - csum[a], a, b) for a, b in spans]
        shares.sort(key=lambda t: -t[0])
        out: list[str] = []
        for share, a, b in shares:
            if share <= 0 or len(out) >= k:
                break
            word = window_text[a:b]
            if word not in out:
                out.append(word)
        return tuple(out)


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


@functools.cache
def shipped_model() -> InjectionModel:
    """The model shipped in the package, loaded once per process."""
    with _lock:
        return InjectionModel.load()
