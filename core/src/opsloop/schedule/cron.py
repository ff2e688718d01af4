"""Cron expressions in a timezone, evaluated by cronsim (imported only when a slot is
computed, so ``opsloop --help`` stays fast).

Five fields — minute, hour, day of month, month, day of week — with Debian cron's syntax
and its behaviour across daylight-saving changes (cronsim follows Debian's cron), plus the
aliases ``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``,
``@yearly``/``@annually``. Slots are computed in the schedule's timezone and stored in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsloop.errors import ParameterError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

#: The aliases Vixie/Debian cron accept, as five fields.
ALIASES: dict[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_FIELDS_HELP = (
    "write five fields: minute hour day-of-month month day-of-week (e.g. '0 8 * * 1' for "
    "08:00 every Monday), or one of " + ", ".join(ALIASES)
)


def expand(expression: str) -> str:
    """The five fields of ``expression`` (an alias expanded); ParameterError when it has not
    five fields or names an alias without a time (``@reboot``)."""
    text = " ".join(str(expression).split())
    if text.startswith("@"):
        if text.lower() in ALIASES:
            return ALIASES[text.lower()]
        raise ParameterError(f"cron expression '{text}' is not a time opsloop can schedule; "
                             + _FIELDS_HELP)  # fmt: skip
    if len(text.split(" ")) != 5:
        count = len(text.split(" ")) if text else 0
        raise ParameterError(f"cron expression '{text}' has {count} field(s); " + _FIELDS_HELP)
    return text


def zone(name: str) -> ZoneInfo:
    """The IANA timezone ``name``; a one-line ParameterError when there is none."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise ParameterError(
            f"unknown timezone '{name}'; use an IANA name such as UTC, Europe/Berlin or "
            "America/New_York"
        ) from None


def slot_text(when: datetime) -> str:
    """A slot as stored: ISO 8601 in UTC to the second, so text order is time order."""
    return when.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(text: str) -> datetime:
    """An ISO 8601 timestamp as an aware UTC datetime (naive ones are taken as UTC)."""
    value = datetime.fromisoformat(text)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


class Cron:
    """A validated cron expression in a timezone; every method takes and returns UTC."""

    def __init__(self, expression: str, timezone: str = "UTC") -> None:
        from cronsim import CronSim, CronSimError

        self.expression = " ".join(str(expression).split())
        self.fields = expand(self.expression)
        self.timezone = str(timezone)
        self.tz = zone(self.timezone)
        try:
            it = CronSim(self.fields, datetime.now(UTC).astimezone(self.tz))
        except CronSimError as exc:
            reason = str(exc).rstrip(".").lower()
            raise ParameterError(
                f"cron expression '{self.expression}': {reason}; " + _FIELDS_HELP
            ) from None
        if next(it, None) is None:
            raise ParameterError(
                f"cron expression '{self.expression}' never matches (not within 50 years)"
            )
        self._explain = it.explain() if hasattr(it, "explain") else ""

    def explain(self) -> str:
        """In words, e.g. "At 08:00 on Monday" ("" when cronsim cannot say)."""
        return str(self._explain)

    def _iter(self, start: datetime, *, reverse: bool = False) -> Iterator[datetime]:
        from cronsim import CronSim

        for found in CronSim(self.fields, start.astimezone(self.tz), reverse=reverse):
            yield found.astimezone(UTC)

    def after(self, when: datetime) -> datetime | None:
        """The first slot strictly after ``when``; None when there is none in 50 years."""
        return next(self._iter(when), None)

    def at_or_before(self, when: datetime) -> datetime | None:
        """The newest slot at or before ``when``."""
        upper = when.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        return next(self._iter(upper, reverse=True), None)

    def newest(self, until: datetime, after: datetime, limit: int) -> list[datetime]:
        """The newest ``limit`` slots in (``after``, ``until``], oldest first."""
        out: list[datetime] = []
        upper = until.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
        for found in self._iter(upper, reverse=True):
            if found <= after or len(out) >= limit:
                break
            out.append(found)
        return out[::-1]

    def count(self, after: datetime, before: datetime, cap: int = 1000) -> int:
        """How many slots lie in (``after``, ``before``), counting at most ``cap``."""
        n = 0
        for found in self._iter(after):
            if found >= before or n >= cap:
                break
            n += 1
        return n
