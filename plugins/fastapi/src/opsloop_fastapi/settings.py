"""Settings of the fastapi plugin: the ``[plugin.fastapi]`` table of opsloop.toml."""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

#: The environment variable that holds the admin token (it wins over the config file).
ADMIN_TOKEN_ENV = "OPSLOOP_ADMIN_TOKEN"
#: The environment variable that holds the prediction log's PostgreSQL URL (it wins too).
LOG_POSTGRES_URL_ENV = "OPSLOOP_LOG_POSTGRES_URL"
# a lowercase SQL identifier that needs no quoting; 40 characters leave room for the
# "_feedback" table and the index names within PostgreSQL's 63
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


class Settings(BaseModel):
    """How the scoring server runs, what it refuses, and how it logs predictions."""

    model_config = ConfigDict(extra="forbid")

    # ---------------------------------------------------------------- prediction log
    log_predictions: bool = True  # write every scored row to the prediction log
    log_format: Literal["parquet", "jsonl", "postgres"] = "parquet"
    # Parquet codec: lz4 costs half of zstd's CPU per row for about 13% more disk on real
    # (noisy) float features; zstd when disk matters more than the serving core.
    log_compression: Literal["lz4", "zstd", "snappy", "none"] = "lz4"
    log_queue_size: int = Field(default=50_000, ge=1)  # rows waiting before entries drop
    log_batch_rows: int = Field(default=10_000, ge=1)  # requests per write (a row group)
    log_flush_seconds: float = Field(default=0.5, gt=0)  # write at least this often
    log_rotate_seconds: float = Field(default=60.0, gt=0)  # a Parquet file becomes readable
    # log_format = "postgres": one table shared by every replica (feedback: <table>_feedback)
    log_postgres_url: SecretStr | None = None  # postgresql://...; also $OPSLOOP_LOG_POSTGRES_URL
    log_postgres_table: str = "opsloop_predictions"

    # ---------------------------------------------------------------- limits
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)  # larger bodies get 413
    # what a body may decode to, checked from its metadata before decoding (413 past it):
    max_rows: int = Field(default=100_000, ge=1)  # rows per scoring request, every format
    max_decoded_bytes: int = Field(default=256 * 1024 * 1024, ge=1)  # decoded values
    # slow clients (slowloris): deadlines from the first byte, and a cap on connections
    header_timeout_seconds: float = Field(default=10.0, gt=0)  # headers by then, else closed
    body_timeout_seconds: float = Field(default=30.0, gt=0)  # whole body by then, else 408
    max_connections: int = Field(default=1000, ge=0)  # per process; past it 503; 0: no cap
    keep_alive_seconds: float = Field(default=5.0, gt=0)  # idle keep-alive connections close
    timeout_seconds: float = Field(default=30.0, gt=0)  # slower predictions get 504
    rate_limit: float = Field(default=0.0, ge=0)  # requests/s per client key; 0: no limit
    rate_limit_burst: int = Field(default=0, ge=0)  # bucket size; 0: max(1, rate_limit)
    rate_limit_key: str = ""  # header naming the client (e.g. x-api-key); "": client address
    rate_limit_redis: str = ""  # redis://127.0.0.1:6379/0 shares the limit across replicas
    model_threads: int = Field(default=2, ge=1, le=256)  # threads that run the model

    # ---------------------------------------------------------------- model following
    poll_seconds: float = Field(default=30.0, ge=0)  # follow the alias; 0: only /admin/reload
    challenger_alias: str = "challenger"
    canary_share: float = Field(default=0.0, ge=0, le=1)  # share of traffic to the challenger
    shadow: bool = False  # score every champion request with the challenger too (logged only)
    # a challenger that raises (or takes longer than challenger_timeout_seconds) on a request
    # does not fail it: the champion answers, logged with role "fallback"
    challenger_fallback: bool = True
    challenger_timeout_seconds: float = Field(default=0.0, ge=0)  # 0: timeout_seconds
    compile_models: bool = True  # numpy fast path for verified linear scikit-learn pipelines

    # ---------------------------------------------------------------- admin
    admin_token: SecretStr | None = None  # bearer token for /admin/*; also $OPSLOOP_ADMIN_TOKEN
    admin_max_failures: int = Field(default=5, ge=1)  # failed attempts per client, then 429
    admin_failure_window_seconds: float = Field(default=300.0, gt=0)  # ...within this window

    # ---------------------------------------------------------------- server
    startup_timeout: float = Field(default=30.0, gt=0)  # seconds start_server waits for /health
    shutdown_timeout: float = Field(default=10.0, gt=0)  # graceful shutdown, then cancel
    access_log: bool = False  # uvicorn access log

    # ---------------------------------------------------------------- batch
    batch_chunk_rows: int = Field(default=50_000, ge=1)  # rows per output part of batch scoring

    @field_validator("admin_token", "log_postgres_url", mode="before")
    @classmethod
    def _token_text(cls, value: Any) -> Any:
        if value is None or isinstance(value, SecretStr):
            return value
        text = str(value) if isinstance(value, int | float) else value
        return text or None

    @field_validator("log_postgres_table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        if not _TABLE_NAME.fullmatch(value):
            raise ValueError(
                "must be a plain table name: lowercase letters, digits and _, starting "
                "with a letter or _, at most 40 characters"
            )
        return value

    @field_validator("rate_limit_key")
    @classmethod
    def _header_name(cls, value: str) -> str:
        return value.strip().lower()

    def token(self, environ: dict[str, str] | None = None) -> str | None:
        """The admin token: $OPSLOOP_ADMIN_TOKEN, else ``admin_token``; None: admin is off."""
        return _env_or_secret(ADMIN_TOKEN_ENV, self.admin_token, environ)

    def postgres_url(self, environ: dict[str, str] | None = None) -> str | None:
        """The prediction log's database: $OPSLOOP_LOG_POSTGRES_URL, else ``log_postgres_url``."""
        return _env_or_secret(LOG_POSTGRES_URL_ENV, self.log_postgres_url, environ)

    @model_validator(mode="after")
    def _log_store_reachable(self, info: ValidationInfo) -> Settings:
        """Checked when the core validates ``[plugin.fastapi]`` (it passes the environment)."""
        context = info.context or {}
        if "environ" in context:
            self.check_log_store(str(context.get("source", "opsloop.toml")), context["environ"])
        return self

    def check_log_store(
        self, source: str = "opsloop.toml", environ: dict[str, str] | None = None
    ) -> None:
        """Raise a one-line ConfigError when ``log_format = "postgres"`` has no URL to use."""
        if self.log_format == "postgres" and not self.postgres_url(environ):
            from opsloop.errors import ConfigError

            raise ConfigError(
                f'{source}: plugin.fastapi.log_format = "postgres" needs a database URL: set '
                f"plugin.fastapi.log_postgres_url or ${LOG_POSTGRES_URL_ENV} "
                "(e.g. postgresql://user:password@host:5432/dbname)"
            )

    @property
    def burst(self) -> int:
        """Requests a client may send at once before the rate applies."""
        return self.rate_limit_burst or max(1, int(self.rate_limit))


def _env_or_secret(
    name: str, value: SecretStr | None, environ: dict[str, str] | None
) -> str | None:
    """Environment variable ``name`` when set (it wins), else the configured secret."""
    from_env = (os.environ if environ is None else environ).get(name, "").strip()
    if from_env:
        return from_env
    return value.get_secret_value() if value is not None else None
