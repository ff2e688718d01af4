"""Settings of the built-in scheduler: the ``[plugin.schedule]`` table in opsloop.toml."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Settings(BaseModel):
    """Default timezone, how often the scheduler looks for new schedules, catch-up limit."""

    model_config = ConfigDict(extra="forbid")

    timezone: str = Field(default="UTC", description="Timezone of a schedule added without --tz.")
    poll: str = Field(
        default="60s",
        description="Longest sleep of `opsloop scheduler` before it re-reads schedules.",
    )
    max_catchup: int = Field(
        default=24,
        ge=1,
        le=10_000,
        description="Most missed slots a catchup schedule runs after downtime.",
    )

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from opsloop.errors import OpsloopError
        from opsloop.schedule.cron import zone

        try:
            zone(value)
        except OpsloopError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("poll")
    @classmethod
    def _poll(cls, value: str) -> str:
        from opsloop.durations import parse_duration

        parse_duration(value)
        return value

    @property
    def poll_seconds(self) -> float:
        from opsloop.durations import parse_duration

        return parse_duration(self.poll)
