"""Train the learned tier and write it into the package.

    .venv/bin/python scripts/guard/build_data.py    # once: the labelled rows
    .venv/bin/python scripts/guard/train.py   # -> core/src/opsloop/guard/data/injection_model.npz

Features are :mod:`opsloop.guard.features` over :func:`opsloop.guard.normalize.canonical`
text, exactly as at inference. A logistic regression (scikit-learn, training only) is fitted
on windows of the training rows; the decision threshold is the one that keeps the
false-positive rate of out-of-fold scores on benign training rows at ``--fpr`` (grouped
folds, so a template family is never scored by a model that saw it). Nothing of the
held-out split is read here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from opsloop.guard import features
from opsloop.guard.model import InjectionModel
from opsloop.guard.normalize import canonical

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "guard-data"
DEFAULT_C = 1_000_000.0
SHRINK = [features.SHRINK]  # a list, so an experiment can change it
# The threshold keeps each benign category's false-positive rate within the budget with this
# confidence (an upper bound, not the out-of-fold point estimate: new families vary).
CONFIDENCE = [0.95]
OUT = ROOT / "core" / "src" / "opsloop" / "guard" / "data" / "injection_model.npz"


def load_rows(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def window_matrix(
    texts: Sequence[str], labels: Sequence[int]
) -> tuple[object, np.ndarray, np.ndarray]:
    """Sparse (windows x buckets) mean-count matrix, window labels, and each window's row."""
    from scipy import sparse

    data: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    indptr = [0]
    y: list[int] = []
    owner: list[int] = []
    for i, (text, label) in enumerate(zip(texts, labels, strict=True)):
        s = features.prepare(canonical(text).text)
        for a, b in features.windows(len(s)):
            _, _, buckets = features.featurize(s[a:b])
            if len(buckets) == 0:
                continue
            uniq, counts = np.unique(buckets, return_counts=True)
            cols.append(uniq)
            data.append(counts / (len(buckets) + SHRINK[0]))
            indptr.append(indptr[-1] + len(uniq))
            y.append(label)
            owner.append(i)
    matrix = sparse.csr_matrix(
        (np.concatenate(data), np.concatenate(cols), np.asarray(indptr)),
        shape=(len(y), 1 << features.BITS),
    )
    return matrix, np.asarray(y), np.asarray(owner)


def category_weights(rows: Sequence[dict[str, object]]) -> list[float]:
    """Row weights that give every category the same total weight within its class, and
    attacks and benign rows the same total: 1,078 jailbreaks do not drown 76 extractions."""
    from collections import Counter

    per_cat = Counter(str(r["category"]) for r in rows)
    cats_of = {lab: {str(r["category"]) for r in rows if int(r["label"]) == lab} for lab in (0, 1)}  # type: ignore[call-overload]
    return [
        1.0 / per_cat[str(r["category"])] / len(cats_of[int(r["label"])])  # type: ignore[call-overload]
        for r in rows
    ]


def fit(
    texts: Sequence[str],
    labels: Sequence[int],
    c: float,
    weights: Sequence[float] | None = None,
) -> InjectionModel:
    """A model fitted on ``texts`` (threshold 0.5 until :func:`calibrate` sets it)."""
    from sklearn.linear_model import LogisticRegression

    x, y, owner = window_matrix(texts, labels)
    w = np.ones(len(texts)) if weights is None else np.asarray(weights, dtype=np.float64)
    window_weight = w[owner] * len(texts) / w.sum()
    clf = LogisticRegression(
        C=c, class_weight=None if weights is not None else "balanced", max_iter=3000,
        solver="liblinear",
    )  # fmt: skip
    clf.fit(x, y, sample_weight=window_weight)
    return InjectionModel(
        clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), 0.5, shrink=SHRINK[0]
    )


def fold_of(group: str, folds: int) -> int:
    return int(hashlib.sha256(group.encode()).hexdigest(), 16) % folds


def model_rows(rows: Sequence[dict[str, object]]) -> tuple[list[dict[str, object]], np.ndarray]:
    """Rows with the text the model sees at inference (a quoted attack in a report cut out,
    :func:`opsloop.guard.detect.model_text`), and which rows the rules block anyway."""
    from opsloop.guard.detect import model_text

    out: list[dict[str, object]] = []
    blocked = []
    for r in rows:
        text, block = model_text(str(r["text"]), str(r.get("target", "input")))
        out.append({**r, "text": text})
        blocked.append(block)
    return out, np.asarray(blocked)


def inference_score(model: InjectionModel, text: str) -> float:
    """The worst score over the text's views (its canonical form and decoded payloads)."""
    from opsloop.guard.views import views

    return float(max(model.score(v.norm.text, explain=0).score for v in views(text)))


def out_of_fold_scores(rows: list[dict[str, object]], c: float, folds: int = 3) -> np.ndarray:
    scores = np.zeros(len(rows))
    for k in range(folds):
        train = [r for r in rows if fold_of(str(r["group"]), folds) != k]
        model = fit(
            [str(r["text"]) for r in train],
            [int(r["label"]) for r in train],  # type: ignore[call-overload]
            c,
            category_weights(train),
        )
        for i, r in enumerate(rows):
            if fold_of(str(r["group"]), folds) == k:
                scores[i] = inference_score(model, str(r["text"]))
    return scores


def calibrate(
    rows: list[dict[str, object]],
    scores: np.ndarray,
    fpr: float,
    blocked: np.ndarray | None = None,
) -> float:
    """The lowest threshold at which the model adds at most ``fpr`` false positives on *each*
    benign category (easy benign text must not hide the hard negatives' rate), with
    :data:`CONFIDENCE` (:func:`allowed_false_positives`).

    ``blocked`` marks rows the rules tier blocks already: the model's score does not matter
    for them (the model is consulted only when no rule fired), so they do not count against
    its budget — a quoted attack in a training hard negative must not push the threshold up
    for every text the model alone decides.
    """
    limits = []
    skip = np.zeros(len(rows), dtype=bool) if blocked is None else blocked
    for category in sorted({str(r["category"]) for r in rows if int(r["label"]) == 0}):  # type: ignore[call-overload]
        mask = np.asarray([int(r["label"]) == 0 and r["category"] == category for r in rows])  # type: ignore[call-overload]
        allowed = allowed_false_positives(int(mask.sum()), fpr, CONFIDENCE[0])
        pool = np.sort(scores[mask & ~skip])
        if len(pool) and allowed < 0:
            limits.append(pool[-1] + 1e-6)
        elif allowed < len(pool):
            limits.append(pool[len(pool) - allowed - 1] + 1e-6)
    return float(min(max(max(limits, default=0.05), 0.05), 0.995))


def allowed_false_positives(n: int, fpr: float, confidence: float) -> int:
    """How many of ``n`` benign rows may score above the threshold so that the false-positive
    rate stays at most ``fpr`` with ``confidence`` (one-sided Clopper-Pearson upper bound;
    ``confidence`` 0 gives the point estimate ``floor(n * fpr)``); -1 when even none is
    enough to be that sure (too few rows): the threshold then goes above all of them."""
    if confidence <= 0:
        return int(np.floor(n * fpr))
    from scipy.stats import beta

    k = -1
    while k + 1 < n and float(beta.ppf(confidence, k + 2, n - k - 1)) <= fpr:
        k += 1
    return k


def is_long(text: str) -> bool:
    """Whether the model scores ``text`` as more than one window (its own threshold)."""
    return len(canonical(text).text) > features.WINDOW


def calibrate_by_length(
    rows: list[dict[str, object]],
    scores: np.ndarray,
    fpr: float,
    blocked: np.ndarray | None = None,
) -> tuple[float, float]:
    """:func:`calibrate` separately for texts of one window and for longer texts: (short,
    long) thresholds. Each keeps every benign category at ``fpr`` within its regime, so the
    whole keeps it too. Long benign prose scores high (its worst window is a maximum over
    many) and would otherwise set one threshold that misses short attacks."""
    long = np.asarray([is_long(str(r["text"])) for r in rows])
    skip = np.zeros(len(rows), dtype=bool) if blocked is None else blocked
    out = []
    for mask in (~long, long):
        part = [r for r, m in zip(rows, mask, strict=True) if m]
        out.append(calibrate(part, scores[mask], fpr, skip[mask]))
    return out[0], out[1]


def train(rows: list[dict[str, object]], c: float, fpr: float) -> InjectionModel:
    rows, blocked = model_rows(rows)
    scores = out_of_fold_scores(rows, c)
    short, long = calibrate_by_length(rows, scores, fpr, blocked)
    labels = np.asarray([int(r["label"]) for r in rows])  # type: ignore[call-overload]
    limit = np.asarray([long if is_long(str(r["text"])) else short for r in rows])
    recall = float((blocked | (scores >= limit))[labels == 1].mean())
    model = fit([str(r["text"]) for r in rows], labels.tolist(), c, category_weights(rows))
    model.threshold, model.threshold_long = short, long
    model.info = {"oof_recall_with_rules": round(recall, 4), "oof_fpr_target": fpr,
                  "fpr_confidence": CONFIDENCE[0], "C": c, "shrink": SHRINK[0],
                  "train_rows": len(rows)}  # fmt: skip
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=CACHE / "train.jsonl")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--c", type=float, default=DEFAULT_C, help="inverse regularisation")
    parser.add_argument(
        "--fpr", type=float, default=0.02, help="false-positive budget per benign category"
    )
    parser.add_argument("--shrink", type=float, default=SHRINK[0], help="pseudo-count")
    parser.add_argument(
        "--confidence", type=float, default=CONFIDENCE[0], help="of the FPR bound (0: none)"
    )
    args = parser.parse_args()
    SHRINK[0] = args.shrink
    CONFIDENCE[0] = args.confidence
    rows = load_rows(args.data)
    model = train(rows, args.c, args.fpr)
    model.save(args.out)
    thresholds = {"threshold": model.threshold, "threshold_long": model.threshold_long}
    print(json.dumps({"out": str(args.out), **thresholds, **model.info}))


if __name__ == "__main__":
    main()
