"""Reference profiles: what a drift check needs to know about the training data, and no more.

Per numeric column: fixed quantile edges (up to ``bins`` bins, right-closed, so a value
that repeats, such as 0 or a category code, keeps its own bin), the count and the sum of
the values in each bin, the missing count and summary statistics. A column with at most
``bins`` distinct values uses those values as edges, so it is profiled exactly. Per
categorical column: the ``max_categories`` most frequent values with their counts and an
'other' bucket. The model's prediction gets the same treatment.

Building streams the data twice in chunks (the quantile edges come from a uniform sample
of at most ``sample_rows`` rows, the counts from every row), so a reference larger than
memory works; when every row fits in the sample, the second pass is skipped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from opsloop.errors import OpsloopError
from opsloop.records import new_id, utcnow

if TYPE_CHECKING:
    import pandas as pd

FORMAT = "opsloop.profile/1"
Kind = Literal["numeric", "categorical"]
#: Categories kept exactly while a profile is built, before the rarest are pooled.
_TRACKED_CATEGORIES = 100_000


@dataclass
class ColumnProfile:
    """One column of the reference: bins for a numeric column, frequencies for a categorical."""

    kind: Kind
    dtype: str = ""
    count: int = 0  # rows with a value
    missing: int = 0  # rows without one (null, NaN, +-inf)
    mean: float | None = None
    std: float | None = None  # population standard deviation (ddof 0)
    min: float | None = None
    max: float | None = None
    edges: list[float] = field(default_factory=list)  # bin i holds (edges[i-1], edges[i]]
    counts: list[int] = field(default_factory=list)  # len(edges) + 1 bins
    sums: list[float] = field(default_factory=list)  # sum of the values in each bin
    discrete: bool = False  # the edges are every distinct value
    categories: dict[str, int] = field(default_factory=dict)  # most frequent first
    other: int = 0  # rows in categories past max_categories
    distinct: int = 0  # distinct values seen (categorical; a lower bound if pooled)

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def missing_rate(self) -> float:
        return self.missing / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "dtype": self.dtype}
        out.update(count=self.count, missing=self.missing)
        if self.kind == "numeric":
            out.update(
                mean=_num(self.mean),
                std=_num(self.std),
                min=_num(self.min),
                max=_num(self.max),
                discrete=self.discrete,
                edges=[float(e) for e in self.edges],
                counts=[int(c) for c in self.counts],
                sums=[float(s) for s in self.sums],
            )
        else:
            out.update(categories=dict(self.categories), other=self.other, distinct=self.distinct)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        kind = data.get("kind")
        if kind not in ("numeric", "categorical"):
            raise ValueError(f"unknown column kind {kind!r}")
        column = cls(
            kind=kind,
            dtype=str(data.get("dtype", "")),
            count=int(data.get("count", 0)),
            missing=int(data.get("missing", 0)),
        )
        if kind == "numeric":
            column.mean, column.std = _opt(data.get("mean")), _opt(data.get("std"))
            column.min, column.max = _opt(data.get("min")), _opt(data.get("max"))
            column.discrete = bool(data.get("discrete", False))
            column.edges = [float(e) for e in data.get("edges", [])]
            column.counts = [int(c) for c in data.get("counts", [])]
            column.sums = [float(s) for s in data.get("sums", [])]
            if column.count and len(column.counts) != len(column.edges) + 1:
                raise ValueError("counts must have one more entry than edges")
            if len(column.sums) != len(column.counts):
                raise ValueError("sums and counts differ in length")
        else:
            column.categories = {str(k): int(v) for k, v in data.get("categories", {}).items()}
            column.other = int(data.get("other", 0))
            column.distinct = int(data.get("distinct", len(column.categories)))
        return column


@dataclass
class ReferenceProfile:
    """A stored summary of reference data that a drift check scores windows against."""

    columns: dict[str, ColumnProfile]
    rows: int
    prediction: ColumnProfile | None = None
    bins: int = 100
    max_categories: int = 100
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not profiled
    source: dict[str, Any] = field(default_factory=dict)  # what it was built from
    model: str = ""
    version: str = ""
    id: str = ""
    created_at: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or new_id("prf")
        self.created_at = self.created_at or utcnow()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "id": self.id,
            "created_at": self.created_at,
            "model": self.model,
            "version": self.version,
            "rows": self.rows,
            "bins": self.bins,
            "max_categories": self.max_categories,
            "source": self.source,
            "columns": {name: c.to_dict() for name, c in self.columns.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "skipped": dict(self.skipped),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "profile") -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict`; a malformed one is a one-line error."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise OpsloopError(f"{where} is not an opsloop profile ({FORMAT}), found {found!r}")
        try:
            columns = {str(k): ColumnProfile.from_dict(v) for k, v in data["columns"].items()}
            prediction = data.get("prediction")
            return cls(
                columns=columns,
                rows=int(data["rows"]),
                prediction=ColumnProfile.from_dict(prediction) if prediction else None,
                bins=int(data.get("bins", 100)),
                max_categories=int(data.get("max_categories", 100)),
                skipped={str(k): str(v) for k, v in data.get("skipped", {}).items()},
                source=dict(data.get("source") or {}),
                model=str(data.get("model", "")),
                version=str(data.get("version", "")),
                id=str(data.get("id", "")),
                created_at=str(data.get("created_at", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OpsloopError(f"{where} is malformed: {exc}") from None


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------------------- values
def column_kind(series: pd.Series) -> str:
    """``numeric``, ``categorical``, or ``skip:<why>`` (dates and times are not profiled)."""
    from pandas.api import types as ptypes

    dtype = series.dtype
    if ptypes.is_bool_dtype(dtype):
        return "categorical"
    if ptypes.is_datetime64_any_dtype(dtype) or ptypes.is_timedelta64_dtype(dtype):
        return "skip:date/time column"
    if ptypes.is_numeric_dtype(dtype):
        return "numeric" if not ptypes.is_complex_dtype(dtype) else "skip:complex numbers"
    return "categorical"


def numeric_values(series: pd.Series) -> np.ndarray:
    """The column as float64, with nulls and +-inf as NaN; text that is no number is NaN."""
    from pandas.api import types as ptypes

    if series.dtype == np.float64:
        values = series.to_numpy()  # a view: no copy of a float column
    elif ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        import pandas as pd

        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if not np.isfinite(values).all():
        values = np.where(np.isfinite(values), values, np.nan)
    return np.asarray(values, dtype=np.float64)


def category_counts(series: pd.Series) -> tuple[dict[str, int], int]:
    """Counts of the column's values as text (``True``/``False`` for booleans), and nulls."""
    missing = series.isna()
    n_missing = int(missing.sum())
    present = series[~missing] if n_missing else series
    counts = present.astype(str).value_counts(sort=False)
    return {str(k): int(v) for k, v in counts.items()}, n_missing


def sorted_finite(values: np.ndarray, buffer: SortBuffer | None = None) -> np.ndarray:
    """The non-NaN values, sorted (NaN sorts last, so this is one sort and a slice).

    With a ``buffer``, the values are sorted in its memory: the result is valid until the
    buffer's next use, and no fresh array is allocated (and page-faulted in) per column.
    """
    if buffer is None:
        ordered = np.sort(values)
    else:
        ordered = buffer.take(len(values))
        np.copyto(ordered, values)
        ordered.sort()
    return ordered[: int(np.searchsorted(ordered, np.nan, side="left"))]


class SortBuffer:
    """One float64 array reused to sort column after column."""

    def __init__(self) -> None:
        self._memory = np.empty(0)

    def take(self, size: int) -> np.ndarray:
        if len(self._memory) < size:
            self._memory = np.empty(size)
        return self._memory[:size]


def bin_counts(ordered: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and sums of sorted values over the right-closed bins ``edges`` make."""
    cuts = np.concatenate([[0], np.searchsorted(ordered, edges, side="right"), [len(ordered)]])
    counts = np.diff(cuts)
    sums = np.zeros(len(counts))
    filled = counts > 0
    if filled.any():
        sums[filled] = np.add.reduceat(ordered, cuts[:-1][filled])
    return counts, sums


def quantile_edges(ordered: np.ndarray, bins: int) -> tuple[np.ndarray, bool]:
    """Edges for sorted values: every distinct value if there are at most ``bins``, else the
    ``bins``-quantiles (numpy's linear rule). Returns (edges, discrete)."""
    if len(ordered) == 0:
        return np.empty(0), False
    starts = np.concatenate([[True], ordered[1:] != ordered[:-1]])
    if int(starts.sum()) <= bins:
        return ordered[starts], True
    position = np.linspace(0.0, 1.0, bins + 1) * (len(ordered) - 1)
    low = np.floor(position).astype(int)
    high = np.minimum(low + 1, len(ordered) - 1)
    frac = position - low
    edges = ordered[low] + frac * (ordered[high] - ordered[low])
    return np.unique(edges), False


# ---------------------------------------------------------------------------- building
class _Numeric:
    """Exact running statistics of one numeric column (Chan's parallel update)."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.count = self.missing = 0
        self.mean = self.m2 = 0.0
        self.min, self.max = math.inf, -math.inf
        self.sample: np.ndarray = np.empty(0)
        self.edges: np.ndarray = np.empty(0)
        self.discrete = False
        self.counts: np.ndarray = np.zeros(1, dtype=np.int64)
        self.sums: np.ndarray = np.zeros(1)

    def update(self, values: np.ndarray) -> None:
        nan = np.isnan(values)
        present = values[~nan] if nan.any() else values
        k = len(present)
        self.missing += len(values) - k
        if not k:
            return
        mean_b = float(present.mean())
        centred = present - mean_b
        m2_b = float(np.square(centred, out=centred).sum())  # no BLAS: its threads contend
        total = self.count + k
        delta = mean_b - self.mean
        self.mean += delta * k / total
        self.m2 += m2_b + delta * delta * self.count * k / total
        self.count = total
        self.min = min(self.min, float(present.min()))
        self.max = max(self.max, float(present.max()))

    def merge(self, other: _Numeric) -> None:
        """Fold in another partition's statistics (Chan's parallel update; the sample is
        merged by :func:`merge_partials`)."""
        self.missing += other.missing
        if not other.count:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta * delta * self.count * other.count / total
        self.count = total
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def set_edges(self, bins: int, buffer: SortBuffer, *, count: bool) -> None:
        """Edges from the sample; with ``count`` (the sample is every row) the counts too."""
        ordered = sorted_finite(self.sample, buffer) if len(self.sample) else self.sample
        self.edges, self.discrete = quantile_edges(ordered, bins)
        self.counts = np.zeros(len(self.edges) + 1, dtype=np.int64)
        self.sums = np.zeros(len(self.edges) + 1)
        if count:
            self.add_counts(ordered)
        self.sample = np.empty(0)

    def add_counts(self, ordered: np.ndarray) -> None:
        counts, sums = bin_counts(ordered, self.edges)
        self.counts += counts
        self.sums += sums

    def profile(self) -> ColumnProfile:
        has = self.count > 0
        return ColumnProfile(
            kind="numeric",
            dtype=self.dtype,
            count=self.count,
            missing=self.missing,
            mean=self.mean if has else None,
            std=math.sqrt(self.m2 / self.count) if has else None,
            min=self.min if has else None,
            max=self.max if has else None,
            edges=self.edges.tolist(),
            counts=self.counts.tolist(),
            sums=self.sums.tolist(),
            discrete=self.discrete,
        )


class _Categorical:
    """Exact category counts of one column; past 100,000 distinct values the rarest pool."""

    def __init__(self, dtype: str) -> None:
        self.dtype = dtype
        self.counts: dict[str, int] = {}
        self.other = self.missing = 0
        self.pooled = False

    def update(self, series: pd.Series) -> None:
        counts, missing = category_counts(series)
        self.missing += missing
        for key, value in counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self._pool()

    def merge(self, other: _Categorical) -> None:
        """Fold in another partition's counts (exact until the rarest values pool)."""
        self.missing += other.missing
        self.other += other.other
        self.pooled = self.pooled or other.pooled
        for key, value in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + value
        self._pool()

    def _pool(self) -> None:
        if len(self.counts) > _TRACKED_CATEGORIES:
            keep = sorted(self.counts.items(), key=lambda kv: -kv[1])[: _TRACKED_CATEGORIES // 10]
            self.other += sum(self.counts.values()) - sum(v for _, v in keep)
            self.counts = dict(keep)
            self.pooled = True

    def profile(self, max_categories: int) -> ColumnProfile:
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = dict(ranked[:max_categories])
        other = self.other + sum(v for _, v in ranked[max_categories:])
        return ColumnProfile(
            kind="categorical",
            dtype=self.dtype,
            count=sum(self.counts.values()) + self.other,
            missing=self.missing,
            categories=kept,
            other=other,
            distinct=len(self.counts),
        )


ChunkSource = Callable[[], Iterable["pd.DataFrame"]]


@dataclass
class PartialProfile:
    """One partition's share of a profile (pass one): exact running statistics, category
    counts, and the rows whose random keys are among the ``sample_rows`` smallest.

    Row ``i`` of the whole input always gets the ``i``-th draw of ``default_rng(seed)``
    (see :func:`row_keys`), so partitions scanned anywhere and merged with
    :func:`merge_partials` hold the very sample, and so the very quantile edges, that one
    process streaming every row would: a profile built from partitions has the same edges,
    bin counts, missing counts, min, max and category counts (exact; categories past
    100,000 distinct values pool as in one process), with mean, std and bin sums equal up
    to floating-point rounding (the additions happen in another order).
    """

    rows: int = 0
    wanted: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    numeric: dict[str, _Numeric] = field(default_factory=dict)
    categorical: dict[str, _Categorical] = field(default_factory=dict)
    keys: np.ndarray = field(default_factory=lambda: np.empty(0))


def row_keys(seed: int, first_row: int) -> np.random.Generator:
    """The key generator positioned at row ``first_row``: its draws are that row's key and
    the following rows' (one float64, one PCG64 step, per row)."""
    bits = np.random.PCG64(seed)  # what default_rng(seed) uses
    bits.advance(first_row)
    return np.random.Generator(bits)


def scan_partial(
    chunks: Iterable[pd.DataFrame],
    *,
    columns: Sequence[str] | None = None,
    prediction: str | None = None,
    first_row: int = 0,
    sample_rows: int = 200_000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> PartialProfile:
    """Pass one over the rows ``chunks`` yields, which start at input row ``first_row``."""
    part = PartialProfile()
    rng = row_keys(seed, first_row)
    first = True
    for chunk in chunks:
        if first:
            first = False
            part.wanted = _choose(chunk, columns, prediction)
            for name in part.wanted:
                kind = column_kind(chunk[name])
                if kind == "numeric":
                    part.numeric[name] = _Numeric(str(chunk[name].dtype))
                elif kind == "categorical":
                    part.categorical[name] = _Categorical(str(chunk[name].dtype))
                else:
                    part.skipped[name] = kind.partition(":")[2]
        part.rows += len(chunk)
        selected = _sample_rows(rng, part.keys, len(chunk), sample_rows)
        part.keys = selected[0]
        for name, acc in part.numeric.items():
            values = numeric_values(chunk[name])
            acc.update(values)
            acc.sample = _take(acc.sample, values, selected[1], selected[2])
        for name, cat in part.categorical.items():
            cat.update(chunk[name])
        if progress is not None:
            progress(len(chunk))
    return part


def merge_partials(a: PartialProfile, b: PartialProfile, sample_rows: int) -> PartialProfile:
    """``a`` with ``b`` folded in (``a`` is changed and returned); see :class:`PartialProfile`."""
    if not b.rows:
        return a
    if not a.rows:
        return b
    kinds = {n: "numeric" for n in a.numeric} | {n: "categorical" for n in a.categorical}
    other = {n: "numeric" for n in b.numeric} | {n: "categorical" for n in b.categorical}
    for name in set(kinds) & set(other):
        if kinds[name] != other[name]:
            raise OpsloopError(
                f"column '{name}' is {kinds[name]} in one part of the data and {other[name]} "
                "in another; give every file the same column types"
            )
    if a.wanted != b.wanted:
        raise OpsloopError("the parts of the data hold different columns; give every file the same")
    combined = np.concatenate([a.keys, b.keys])
    keep = None
    if len(combined) > sample_rows:
        keep = np.sort(np.argpartition(combined, sample_rows - 1)[:sample_rows])
    a.keys = combined if keep is None else combined[keep]
    for name, acc in a.numeric.items():
        theirs = b.numeric[name]
        acc.merge(theirs)
        both = np.concatenate([acc.sample, theirs.sample])
        acc.sample = both if keep is None else both[keep]
    for name, cat in a.categorical.items():
        cat.merge(b.categorical[name])
    a.rows += b.rows
    return a


def partial_edges(part: PartialProfile, bins: int) -> dict[str, np.ndarray]:
    """Fix the quantile edges of every numeric column from the merged sample; when the
    sample is every row, the bin counts are filled in too and no second pass is needed."""
    buffer = SortBuffer()
    every_row = len(part.keys) == part.rows
    for acc in part.numeric.values():
        acc.set_edges(bins, buffer, count=every_row)
    return {name: acc.edges for name, acc in part.numeric.items()}


def needs_second_pass(part: PartialProfile) -> bool:
    """True when the sample was not every row (bin counts need a pass over the data)."""
    return len(part.keys) != part.rows


def count_bins(
    chunks: Iterable[pd.DataFrame],
    edges: dict[str, np.ndarray],
    progress: Callable[[int], None] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pass two over some rows: per numeric column, counts and sums in the bins ``edges``."""
    buffer = SortBuffer()
    found = {
        n: (np.zeros(len(e) + 1, dtype=np.int64), np.zeros(len(e) + 1)) for n, e in edges.items()
    }
    for chunk in chunks:
        for name, cuts in edges.items():
            counts, sums = bin_counts(sorted_finite(numeric_values(chunk[name]), buffer), cuts)
            found[name][0][:] += counts
            found[name][1][:] += sums
        if progress is not None:
            progress(len(chunk))
    return found


def add_bins(part: PartialProfile, counted: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Add one partition's pass-two counts to the merged profile's bins."""
    for name, (counts, sums) in counted.items():
        part.numeric[name].counts += counts
        part.numeric[name].sums += sums


def finish_profile(
    part: PartialProfile,
    *,
    prediction: str | None = None,
    bins: int = 100,
    max_categories: int = 100,
    source: dict[str, Any] | None = None,
) -> ReferenceProfile:
    """The profile of a merged partial whose bins are counted."""
    if part.rows == 0:
        raise OpsloopError("the reference data has no rows to profile")
    profiled: dict[str, ColumnProfile] = {}
    for name in part.wanted:
        if name in part.numeric:
            profiled[name] = part.numeric[name].profile()
        elif name in part.categorical:
            profiled[name] = part.categorical[name].profile(max_categories)
    pred = profiled.pop(prediction, None) if prediction else None
    return ReferenceProfile(
        columns=profiled,
        rows=part.rows,
        prediction=pred,
        bins=bins,
        max_categories=max_categories,
        skipped=dict(part.skipped),
        source=dict(source or {}),
    )


def build_profile(
    chunks: ChunkSource,
    *,
    columns: Sequence[str] | None = None,
    prediction: str | None = None,
    bins: int = 100,
    max_categories: int = 100,
    sample_rows: int = 200_000,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    source: dict[str, Any] | None = None,
) -> ReferenceProfile:
    """Profile the frames ``chunks()`` yields (called once or twice: two passes).

    ``columns`` picks the columns (default: all but ``prediction``); ``prediction`` names
    the column holding the model's output, profiled as the prediction. ``progress`` is
    called with the rows of each chunk read, in both passes. The same steps run per
    partition on a cluster (:func:`scan_partial`, :func:`merge_partials`,
    :func:`count_bins`), with the same result.
    """
    if bins < 2:
        raise OpsloopError(f"a profile needs at least 2 bins, got {bins}")
    part = scan_partial(
        chunks(),
        columns=columns,
        prediction=prediction,
        sample_rows=sample_rows,
        seed=seed,
        progress=progress,
    )
    if part.rows == 0:
        raise OpsloopError("the reference data has no rows to profile")
    edges = partial_edges(part, bins)
    if needs_second_pass(part):
        add_bins(part, count_bins(chunks(), edges, progress))
    return finish_profile(
        part, prediction=prediction, bins=bins, max_categories=max_categories, source=source
    )


def _choose(
    chunk: pd.DataFrame, columns: Sequence[str] | None, prediction: str | None
) -> list[str]:
    names = [str(c) for c in chunk.columns]
    if columns is None:
        wanted = [c for c in names if c != prediction]
    else:
        wanted = list(dict.fromkeys(str(c) for c in columns))
        absent = [c for c in wanted if c not in names]
        if absent:
            shown = ", ".join(absent[:8]) + (
                f" and {len(absent) - 8} more" if len(absent) > 8 else ""
            )
            raise OpsloopError(
                f"the reference data lacks column(s) {shown}; it has: " + ", ".join(names[:12])
            )
    if prediction:
        if prediction not in names:
            raise OpsloopError(f"the reference data has no prediction column '{prediction}'")
        wanted.append(prediction)
    if not wanted:
        raise OpsloopError("no columns to profile")
    return wanted


def _sample_rows(
    rng: np.random.Generator, keys: np.ndarray, rows: int, cap: int
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Bottom-k sampling: every row gets a uniform key and the ``cap`` smallest keys stay.

    Returns (kept keys, positions into old sample + chunk to keep or None for all, rows).
    """
    fresh = rng.random(rows)
    combined = np.concatenate([keys, fresh])
    if len(combined) <= cap:
        return combined, None, rows
    keep = np.sort(np.argpartition(combined, cap - 1)[:cap])
    return combined[keep], keep, rows


def _take(sample: np.ndarray, values: np.ndarray, keep: np.ndarray | None, rows: int) -> np.ndarray:
    combined = np.concatenate([sample, values]) if len(sample) else values
    return combined if keep is None else combined[keep]


def frame_chunks(frame: pd.DataFrame, chunk_rows: int = 100_000) -> ChunkSource:
    """A chunk source over an in-memory frame (slices, no copies)."""

    def chunks() -> Iterator[pd.DataFrame]:
        for start in range(0, max(len(frame), 1), chunk_rows):
            yield frame.iloc[start : start + chunk_rows]

    return chunks


def profile_frame(
    frame: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    prediction: str | None = None,
    bins: int = 100,
    max_categories: int = 100,
    source: dict[str, Any] | None = None,
) -> ReferenceProfile:
    """Profile an in-memory frame (see :func:`build_profile`)."""
    return build_profile(
        frame_chunks(frame),
        columns=columns,
        prediction=prediction,
        bins=bins,
        max_categories=max_categories,
        source=source or {"kind": "frame"},
    )
