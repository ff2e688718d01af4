"""The :class:`~opsloop.interfaces.PredictContext` the serve hooks see, built lazily.

A request's inputs reach the model as a float64 array on the fast path; the DataFrame a
hook may read (``context.inputs``) and the header mapping are built only when a hook reads
them. The after-predict thread builds the same context from a logged entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsloop.interfaces import PredictContext
from opsloop_fastapi.entries import entry_inputs

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.records import ModelVersionRef


class LazyContext(PredictContext):
    """A PredictContext whose ``inputs`` DataFrame and ``headers`` are built on first access."""

    def __init__(
        self,
        request_id: str,
        model: ModelVersionRef,
        raw_headers: list[tuple[bytes, bytes]],
        *,
        array: Any = None,
        columns: tuple[str, ...] | None = None,
        frame: Any = None,
        entry: tuple[Any, ...] | None = None,
    ) -> None:
        self.request_id = request_id
        self.model = model
        self.outputs = None
        self.latency_ms = None
        self._raw_headers = raw_headers
        self._headers: Mapping[str, str] | None = None
        self._array = array
        self._columns = columns
        self._frame = frame
        self._entry = entry  # a logged request: inputs decoded from it on first access
        self.touched = False

    @property  # type: ignore[override]
    def inputs(self) -> pd.DataFrame:
        self.touched = True
        if self._frame is None:
            import pandas as pd

            if self._array is None and self._entry is not None:
                self._array, self._columns, self._frame = entry_inputs(self._entry)
            if self._frame is None:
                self._frame = pd.DataFrame(self._array, columns=list(self._columns or ()))
        return self._frame

    @inputs.setter
    def inputs(self, value: pd.DataFrame) -> None:
        self.touched = True
        self._frame = value

    @property  # type: ignore[override]
    def headers(self) -> Mapping[str, str]:
        """The request headers, lower-case names."""
        if self._headers is None:
            self._headers = _headers(self._raw_headers)
        return self._headers

    @headers.setter
    def headers(self, value: Mapping[str, str]) -> None:
        self._headers = value


def _headers(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
