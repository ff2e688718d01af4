"""Settings of the dlt plugin: the ``[plugin.dlt]`` table, with the sources it declares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from opsloop.interfaces import SourceSpec

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
    """``[plugin.dlt]`` in opsloop.toml: the sources it declares and how CSV files are read.

    Validated by the core (``project.settings("dlt")``); its errors never echo a source
    entry, which may hold a connection string.
    """

    model_config = ConfigDict(extra="forbid")

    sources: list[SourceConfig] = Field(default_factory=list)
    csv_chunk_rows: int = Field(default=100_000, gt=0)  # rows read from a CSV file at once

    @model_validator(mode="after")
    def _unique_names(self) -> Settings:
        names = [s.name for s in self.sources]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"source name '{name}' is declared twice in 'sources'")
        return self


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
