"""Score a configuration on a validation split carved from the *training* split.

    .venv/bin/python scripts/guard/validate.py --c 300000 --shrink 1000

A quarter of the training groups (by a hash of the group name, salted differently from the
held-out split and from train.py's folds) is held back; the model is fitted on the rest,
its threshold set at ``--fpr`` on each benign category of the validation rows, and recall
per category printed for the rules, the model and both. The held-out split is not read:
this is how ``--c`` and ``--shrink`` in train.py were chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

import numpy as np
import train


def in_validation(group: str) -> bool:
    return int(hashlib.sha256(f"val:{group}".encode()).hexdigest(), 16) % 4 == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=train.CACHE / "train.jsonl")
    parser.add_argument("--c", type=float, default=train.DEFAULT_C)
    parser.add_argument("--shrink", type=float, default=train.SHRINK[0])
    parser.add_argument("--fpr", type=float, default=0.02)
    args = parser.parse_args()
    train.SHRINK[0] = args.shrink
    rows, blocked_all = train.model_rows(train.load_rows(args.data))
    blocked_of = {id(r): b for r, b in zip(rows, blocked_all, strict=True)}
    fit_rows = [r for r in rows if not in_validation(str(r["group"]))]
    val = [r for r in rows if in_validation(str(r["group"]))]
    t0 = time.time()
    model = train.fit(
        [str(r["text"]) for r in fit_rows],
        [int(r["label"]) for r in fit_rows],  # type: ignore[call-overload]
        args.c,
        train.category_weights(fit_rows),
    )
    print(f"fitted on {len(fit_rows)} rows in {time.time() - t0:.0f} s; {len(val)} validation rows")
    scores = np.asarray([train.inference_score(model, str(r["text"])) for r in val])
    rules = np.asarray([blocked_of[id(r)] for r in val])
    threshold = train.calibrate(val, scores, args.fpr, rules)
    labels = np.asarray([int(r["label"]) for r in val])  # type: ignore[call-overload]
    cats = np.asarray([str(r["category"]) for r in val])
    both = rules | (scores >= threshold)
    print(
        f"threshold {threshold:.3f} (false positives <= {args.fpr:.0%} per benign category, "
        f"{train.CONFIDENCE[0]:.0%} confidence; one threshold for all lengths)"
    )
    for cat in sorted(set(cats)):
        m = cats == cat
        print(
            f"  {cat:22s} rows {m.sum():5d}  rules {rules[m].mean():.3f}  "
            f"model {(scores[m] >= threshold).mean():.3f}  both {both[m].mean():.3f}"
        )
    recall, flagged = both[labels == 1].mean(), both[labels == 0].mean()
    print(f"  attacks: recall {recall:.3f}; benign: flagged {flagged:.3f}")


if __name__ == "__main__":
    main()
