"""``opsloop guard eval``: recall, false-positive rate and F1 per category, and latency.

Reads JSON lines ``{"text": ..., "label": 0|1|true|false|"attack"|"benign", "category": ...}``
(``target`` optional, default ``input``), runs a detector over each text, and counts. Pure
computation: nothing is written, no signal is emitted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from opsloop.errors import OpsloopError

_TRUE = {"1", "true", "attack", "injection", "malicious", "positive", "yes"}
_FALSE = {"0", "false", "benign", "safe", "negative", "no"}
TARGETS = ("input", "retrieved", "tool_output", "output")


@dataclass(frozen=True)
class Example:
    text: str
    label: bool
    category: str
    target: str = "input"


@dataclass
class Counts:
    """Confusion counts of one category (or of all rows)."""

    tp: int = 0
    fn: int = 0
    fp: int = 0
    tn: int = 0

    def add(self, label: bool, flagged: bool) -> None:
        if label:
            self.tp, self.fn = self.tp + flagged, self.fn + (not flagged)
        else:
            self.fp, self.tn = self.fp + flagged, self.tn + (not flagged)

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def fpr(self) -> float | None:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def f1(self) -> float | None:
        p, r = self.precision, self.recall
        if p is None or r is None or self.tp == 0:
            return None if self.tp + self.fn == 0 else 0.0
        return 2 * p * r / (p + r)

    def as_dict(self) -> dict[str, object]:
        def rounded(x: float | None) -> float | None:
            return None if x is None else round(x, 4)

        return {
            "n": self.n, "attacks": self.tp + self.fn, "benign": self.fp + self.tn,
            "tp": self.tp, "fn": self.fn, "fp": self.fp, "tn": self.tn,
            "recall": rounded(self.recall), "fpr": rounded(self.fpr), "f1": rounded(self.f1),
        }  # fmt: skip


@dataclass
class Report:
    """Per-category and overall counts, latency percentiles, and the tiers that fired."""

    overall: Counts = field(default_factory=Counts)
    categories: dict[str, Counts] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    tiers: dict[str, int] = field(default_factory=dict)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return 0.0
        k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[k]

    def as_dict(self) -> dict[str, object]:
        return {
            "overall": self.overall.as_dict(),
            "categories": {k: v.as_dict() for k, v in sorted(self.categories.items())},
            "latency_ms": {f"p{q}": round(self.percentile(q), 3) for q in (50, 90, 95, 99)}
            | {"max": round(max(self.latencies_ms, default=0.0), 3)},
            "tiers": dict(sorted(self.tiers.items())),
        }


def parse_label(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise OpsloopError(f"{where}: label {value!r} is not 0/1, true/false or attack/benign")


def read_examples(path: Path) -> list[Example]:
    """Every line of a JSONL file as an Example; a bad line is a one-line error naming it."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise OpsloopError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise OpsloopError(f"{path}: is a folder; give a JSON-lines file") from None
    except OSError as exc:
        raise OpsloopError(f"{path}: cannot read it ({exc.strerror})") from None
    out: list[Example] = []
    with handle:
        try:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    out.append(_example(line, f"{path}:{number}"))
        except UnicodeDecodeError:
            raise OpsloopError(f"{path}: not UTF-8 text") from None
    if not out:
        raise OpsloopError(f"{path}: no examples; write one JSON object per line")
    return out


def _example(line: str, where: str) -> Example:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise OpsloopError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise OpsloopError(f"{where}: expected an object with text, label and category")
    for key in ("text", "label"):
        if key not in row:
            raise OpsloopError(f"{where}: missing '{key}'")
    if not isinstance(row["text"], str):
        raise OpsloopError(f"{where}: 'text' must be a string")
    target = str(row.get("target", "input"))
    if target not in TARGETS:
        raise OpsloopError(f"{where}: unknown target '{target}'; use one of: {', '.join(TARGETS)}")
    category = str(
        row.get("category") or ("attack" if parse_label(row["label"], where) else "benign")
    )
    return Example(row["text"], parse_label(row["label"], where), category, target)


Detector = Callable[[Example], tuple[bool, str]]  # -> (flagged, tier that fired or "")


def evaluate(
    examples: Iterable[Example], detector: Detector, progress: Callable[[], None] | None = None
) -> Report:
    """Run ``detector`` over every example, timing each call."""
    report = Report()
    for ex in examples:
        started = time.perf_counter()
        flagged, tier = detector(ex)
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        report.overall.add(ex.label, flagged)
        report.categories.setdefault(ex.category, Counts()).add(ex.label, flagged)
        if flagged:
            report.tiers[tier or "other"] = report.tiers.get(tier or "other", 0) + 1
        if progress is not None:
            progress()
    return report


def injection_detector(scanner: object) -> Detector:
    """A detector from a scanner: flagged when it blocks; the tier of its first finding."""

    def detect(ex: Example) -> tuple[bool, str]:
        result = scanner.scan(ex.text, target=ex.target)  # type: ignore[attr-defined]
        flagged = result.verdict == "block"
        tiers = [f.tier for f in result.findings if f.type == "prompt_injection"]
        return flagged, (tiers[0] if tiers else "") if flagged else ""

    return detect


def chunks(items: list[Example], size: int) -> Iterator[list[Example]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
