"""Settings of the fastapi plugin: the ``[plugin.fastapi]`` table of opsloop.toml."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """How the scoring server runs and how it logs predictions."""

    model_config = ConfigDict(extra="forbid")

    log_predictions: bool = True  # write every scored row to the prediction log
    log_format: Literal["jsonl", "parquet"] = "jsonl"
    log_queue_size: int = Field(default=10_000, ge=1)  # pending requests before entries drop
    log_batch_rows: int = Field(default=5_000, ge=1)  # rows per flush, at most
    log_flush_seconds: float = Field(default=1.0, gt=0)  # flush at least this often
    startup_timeout: float = Field(default=30.0, gt=0)  # seconds to wait for /health
    shutdown_timeout: float = Field(default=10.0, gt=0)  # graceful shutdown, then cancel
    access_log: bool = False  # uvicorn access log for servers started by start_server


def load_settings(project: Any) -> Settings:
    """The project's fastapi settings, validated (also when the plugin has another name)."""
    raw = project.settings("fastapi")
    if isinstance(raw, Settings):
        return raw
    from pydantic import ValidationError

    from opsloop.config import format_validation_error
    from opsloop.errors import ConfigError

    try:
        return Settings.model_validate(dict(raw or {}))
    except ValidationError as exc:
        raise ConfigError(
            format_validation_error(exc, project.config.source, prefix="plugin.fastapi")
        ) from None
