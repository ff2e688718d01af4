"""Settings of the built-in guard: the ``[plugin.guard]`` table in opsloop.toml."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ScannerName = Literal["prompt_injection", "secrets", "pii", "markup"]
PiiEntity = Literal["email", "card", "phone", "iban", "ssn", "nino", "ipv4", "ipv6"]


def _all_scanners() -> list[ScannerName]:
    return ["prompt_injection", "secrets", "pii", "markup"]


def _all_entities() -> list[PiiEntity]:
    return ["email", "card", "phone", "iban", "ssn", "nino", "ipv4", "ipv6"]


class Settings(BaseModel):
    """Which scanners run, which PII is redacted, extra patterns, and the learned tier."""

    model_config = ConfigDict(extra="forbid")

    scanners: list[ScannerName] = Field(
        default_factory=_all_scanners,
        description="Scanners to register, in the order they run.",
    )
    pii_entities: list[PiiEntity] = Field(
        default_factory=_all_entities,
        description="PII entities the pii scanner redacts.",
    )
    injection_patterns: list[str] = Field(
        default_factory=list,
        description="Extra regular expressions (case-insensitive, on normalised text) that block.",
    )
    markup: Literal["strip", "block"] = Field(
        "strip", description="What the markup scanner does with exfiltrating output markup."
    )
    markup_allow_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts whose images may carry a query string (e.g. your own CDN).",
    )
    model: bool = Field(True, description="Run the shipped model beside the rules.")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="Model score that blocks (default: the model's own)."
    )

    @field_validator("scanners", "pii_entities")
    @classmethod
    def _no_duplicates(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names must not repeat")
        return value

    @field_validator("injection_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        from opsloop.guard.rules import compile_patterns

        compile_patterns(value)  # raises ValueError naming the bad pattern
        return value
