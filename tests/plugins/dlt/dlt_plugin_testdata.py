"""Test data for the dlt plugin tests: CSV writers and the shipped breast-cancer data."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import opsloop

BREAST_CANCER = Path(opsloop.__file__).parent / "data" / "breast_cancer.csv"


def write_csv(
    path: Path, header: list[str], rows: list[list[object]], mtime: float | None = None
) -> Path:
    """Write a CSV file; ``mtime`` sets its modification time (a re-delivered file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def breast_cancer() -> tuple[list[str], list[list[str]]]:
    with BREAST_CANCER.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return header, list(reader)


def daily_files(folder: Path, days: int = 4) -> list[int]:
    """Split the shipped breast-cancer data into ``days`` daily files; return their row counts."""
    header, rows = breast_cancer()
    size = len(rows) // days
    counts = []
    for day in range(days):
        chunk = rows[day * size : (day + 1) * size] if day < days - 1 else rows[day * size :]
        write_csv(folder / f"2026-11-{day + 1:02d}.csv", header, chunk)
        counts.append(len(chunk))
    return counts
