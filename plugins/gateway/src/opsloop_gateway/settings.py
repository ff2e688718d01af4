"""Settings of the gateway: the ``[plugin.gateway]`` table in opsloop.toml."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class CallerKey(BaseModel):
    """One caller: its name, its API key (a SHA-256 hash, or a variable holding the key),
    its tenant and groups (which retrieved chunks it may read)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, description="The caller's name (audit, budgets).")
    sha256: str | None = Field(None, description="Hex SHA-256 of the key (opsloop guard key).")
    env: str | None = Field(None, description="Environment variable holding the key itself.")
    tenant: str | None = Field(None, description="The caller's tenant (context access).")
    groups: list[str] = Field(default_factory=list, description="Groups (context readers).")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        if value is not None and not _HEX64.match(value.lower()):
            raise ValueError("must be 64 hex digits: the SHA-256 of the key")
        return None if value is None else value.lower()

    @model_validator(mode="after")
    def _one_source(self) -> CallerKey:
        if (self.sha256 is None) == (self.env is None):
            raise ValueError(f"key '{self.name}': give exactly one of sha256 or env")
        return self


class Settings(BaseModel):
    """Where the upstream is, who may call, and what the gateway checks."""

    model_config = ConfigDict(extra="forbid")

    upstream: str = Field(
        "http://127.0.0.1:8001/v1",
        description="Base URL of the OpenAI-compatible upstream (…/v1).",
    )
    upstream_key_env: str = Field(
        "", description="Environment variable holding the upstream's API key (none: no key)."
    )
    timeout: float = Field(120.0, gt=0, description="Seconds to wait for the upstream.")
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on (0: any free).")
    keys: list[CallerKey] = Field(default_factory=list, description="Callers and their keys.")
    pii: Literal["redact", "pseudonymize"] = Field(
        "pseudonymize",
        description="PII in prompts: redacted, or swapped for <EMAIL_1>… and put back in "
        "the answer (secrets are always redacted).",
    )
    canary: bool = Field(True, description="Plant a canary in system prompts; block leaks.")
    response_schema: str = Field(
        "", description="JSON schema file every completion must satisfy (relative path ok)."
    )
    context: bool = Field(
        True, description="Accept retrieved documents in a request's 'context' field."
    )
    scan_cache: int = Field(
        4096,
        ge=0,
        description="Texts found clean remembered (as digests) so a conversation's history "
        "is not scanned again each turn; 0: scan everything every time.",
    )
    holdback: int = Field(
        256, ge=16, description="Characters a stream holds back until they are checked."
    )
    budget_window: float = Field(60.0, gt=0, description="Budget window in seconds.")
    budget_requests: int | None = Field(None, ge=1, description="Requests per caller/window.")
    budget_tokens: int | None = Field(None, ge=1, description="Tokens per caller/window.")
    redis_url: str = Field(
        "", description="Share budgets through Redis (redis://127.0.0.1:6379/0); empty: memory."
    )
    redis_prefix: str = Field(
        "opsloop:gateway", min_length=1, description="Prefix of the budget keys in Redis."
    )

    @field_validator("upstream")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:8001/v1")
        return value.rstrip("/")

    @field_validator("keys")
    @classmethod
    def _unique(cls, value: list[CallerKey]) -> list[CallerKey]:
        names = [k.name for k in value]
        if len(set(names)) != len(names):
            raise ValueError("caller names must not repeat")
        return value
