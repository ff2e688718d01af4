"""Settings of the dlt plugin: the ``[plugin.dlt]`` table, with the sources it declares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

if TYPE_CHECKING:
    from opsloop.interfaces import SourceSpec
    from opsloop.project import Project

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"


class SourceConfig(BaseModel):
    """One ``sources`` entry: a folder of landing files, or a table in a SQL database."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["landing_files", "sql"] = "landing_files"
    dataset: str = Field(default="raw", pattern=NAME_PATTERN)
    write_disposition: Literal["append", "replace", "merge"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    contract: str | None = None
    # column -> dlt data type ("double", "bigint", "text", "bool", "timestamp", "date", ...)
    columns: dict[str, str] = Field(default_factory=dict)
    # landing_files
    path: str | None = None  # folder, relative to the project root
    glob: str = "*.csv"
    delimiter: str = ","
    encoding: str = "utf-8"
    # sql
    credentials: str | None = None  # connection string; prefer credentials_env
    credentials_env: str | None = None  # name of the variable that holds the connection string
    table: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    incremental: str | None = None  # cursor column

    @model_validator(mode="after")
    def _check_kind(self) -> SourceConfig:
        if self.kind == "landing_files" and not self.path:
            raise ValueError("a landing_files source needs 'path' (a folder of files)")
        if self.kind == "sql":
            if not self.table:
                raise ValueError("a sql source needs 'table'")
            if not (self.credentials or self.credentials_env):
                raise ValueError("a sql source needs 'credentials_env' (or 'credentials')")
        if self.write_disposition == "merge" and not self.primary_key:
            raise ValueError("write_disposition 'merge' needs 'primary_key'")
        return self

    def to_spec(self, root: Path) -> SourceSpec:
        """The SourceSpec the ingest hooks take; relative paths resolve against ``root``."""
        from opsloop.interfaces import SourceSpec

        options: dict[str, Any] = {}
        if self.columns:
            options["columns"] = dict(self.columns)
        if self.kind == "landing_files":
            assert self.path is not None
            folder = Path(self.path).expanduser()
            options |= {
                "path": str(folder if folder.is_absolute() else (root / folder).resolve()),
                "glob": self.glob,
                "delimiter": self.delimiter,
                "encoding": self.encoding,
            }
        else:
            options["table"] = self.table
            if self.schema_name:
                options["schema"] = self.schema_name
            if self.credentials_env:
                options["credentials_env"] = self.credentials_env
            if self.credentials:
                options["credentials"] = self.credentials
        return SourceSpec(
            name=self.name,
            kind=self.kind,
            options=options,
            dataset=self.dataset,
            write_disposition=self.write_disposition,
            primary_key=tuple(self.primary_key),
            incremental=self.incremental,
            contract=self.contract,
        )


class Settings(BaseModel):
    """``[plugin.dlt]`` in opsloop.toml.

    ``sources`` entries are checked by :class:`SourceConfig` in :func:`load_settings`, whose
    error messages never echo an entry (it may hold a connection string).
    """

    model_config = ConfigDict(extra="forbid")

    sources: list[dict[str, Any]] = Field(default_factory=list)
    csv_chunk_rows: int = Field(default=100_000, gt=0)  # rows read from a CSV file at once

    def source_configs(self, where: str) -> list[SourceConfig]:
        """The validated ``sources``; ``where`` (the config file) prefixes error messages."""
        from opsloop.errors import ConfigError

        out: list[SourceConfig] = []
        for index, raw in enumerate(self.sources):
            try:
                out.append(SourceConfig.model_validate(raw))
            except ValidationError as exc:
                raise ConfigError(_error_line(exc, where, f"plugin.dlt.sources.{index}")) from None
        names = [s.name for s in out]
        for name in names:
            if names.count(name) > 1:
                raise ConfigError(
                    f"{where}: 'plugin.dlt.sources': source name '{name}' is declared twice"
                )
        return out


def _error_line(exc: ValidationError, where: str, prefix: str) -> str:
    """One line naming the key; never the offending input, which may be a credential."""
    from opsloop.redact import redact_text

    first = exc.errors()[0]
    key = ".".join(str(p) for p in (prefix, *first["loc"]))
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{where}: unknown key '{key}'; remove it or check its spelling"
    if kind == "missing":
        return f"{where}: missing key '{key}'"
    if kind == "value_error":
        message = str(first.get("ctx", {}).get("error", first["msg"]))
    elif kind == "literal_error":
        message = "must be " + first["msg"].removeprefix("Input should be ")
    else:
        message = first["msg"][:1].lower() + first["msg"][1:]
    return redact_text(f"{where}: '{key}': {message}")


def load_settings(project: Project) -> Settings:
    """The validated settings, whether or not the core knows this plugin's config model."""
    from opsloop.config import format_validation_error
    from opsloop.errors import ConfigError

    value = project.settings("dlt")
    if not isinstance(value, Settings):
        try:
            value = Settings.model_validate(dict(value or {}))
        except ValidationError as exc:
            raise ConfigError(
                format_validation_error(exc, project.config.source, prefix="plugin.dlt")
            ) from None
    value.source_configs(project.config.source)  # fail early, with the file named
    return value


def resolve_credentials(options: dict[str, Any] | Any, source: str) -> str:
    """The connection string of a sql source: from ``credentials_env`` or ``credentials``."""
    from opsloop.errors import OpsloopError

    env_name = options.get("credentials_env")
    if env_name:
        value = os.environ.get(env_name)
        if not value:
            raise OpsloopError(
                f"source '{source}': environment variable {env_name} (credentials_env) is not "
                "set; export it with the database connection string"
            )
        return value
    value = options.get("credentials")
    if not value:
        raise OpsloopError(
            f"source '{source}': no database credentials; set credentials_env to the name of "
            "a variable holding the connection string"
        )
    return str(value)
