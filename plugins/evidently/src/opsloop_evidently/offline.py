"""Keep Evidently offline: switch its usage telemetry off before it is imported.

What evidently 0.7.23 ships (read from its source):

* ``evidently/telemetry.py`` builds an ``iterative_telemetry.IterativeTelemetryLogger`` that
  posts usage events to ``http://35.232.253.5:8000/api/v1/s2s/event`` and writes a user id
  under the user config dir (``evidentlyai/telemetry``). It is enabled unless the
  ``DO_NOT_TRACK`` environment variable is set (any value).
* Only the UI service (``evidently ui``, ``evidently.ui.service.components.telemetry``) and
  the legacy collector import that logger; ``import evidently``, ``Report.run`` and
  ``Snapshot.save_html`` do not, and make no network call (checked with audit hooks).
* The HTML report inlines its JavaScript: opening it fetches nothing.

We still set ``DO_NOT_TRACK=1`` before the first import, so that any path that does reach
the logger (now or in a later release) sends nothing.
"""

from __future__ import annotations

import os
from types import ModuleType

from opsloop.errors import first_line

DO_NOT_TRACK_ENV = "DO_NOT_TRACK"


def disable_telemetry() -> None:
    """Opt out of Evidently's (iterative-telemetry) usage reporting for this process."""
    os.environ.setdefault(DO_NOT_TRACK_ENV, "1")


def import_evidently() -> ModuleType:
    """Import evidently with telemetry off; raise OpsloopError with a fix when it fails."""
    disable_telemetry()
    try:
        import evidently
    except ImportError as exc:
        from opsloop.errors import OpsloopError

        raise OpsloopError(import_hint(exc)) from None
    return evidently


def import_hint(exc: BaseException) -> str:
    """One line saying why evidently failed to import and how to fix it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        pandas_version = version("pandas")
    except PackageNotFoundError:
        pandas_version = ""
    first = first_line(exc) or type(exc).__name__
    if pandas_version and int(pandas_version.split(".")[0]) >= 3:
        return (
            f"evidently cannot import with pandas {pandas_version} ({first}); "
            "install pandas<3: pip install 'pandas<3'"
        )
    return f"evidently cannot be imported ({first}); reinstall it: pip install opsloop-evidently"
