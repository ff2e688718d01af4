"""Settings of the dlt plugin: the ``[plugin.dlt]`` table, with the sources it declares."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from opsloop.interfaces import DataContract, SourceSpec

NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_-]*$"


#: Units of a freshness age: "90s", "30m", "6h", "2d".
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_age(text: str) -> float:
    """Seconds in an age such as ``"2d"`` or ``"6h"``; ValueError names the accepted forms."""
    raw = str(text).strip().lower()
    if raw[-1:] in _UNITS:
        try:
            return float(raw[:-1]) * _UNITS[raw[-1]]
        except ValueError:
            pass
    raise ValueError(f"age '{text}' is not a number followed by s, m, h or d (e.g. '2d')")


def sql_literal(value: Any) -> str:
    """``value`` as a SQL literal (numbers bare, everything else a quoted string)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def quote(name: str) -> str:
    """``name`` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


class ColumnContract(BaseModel):
    """What one column of a contract must hold."""

    model_config = ConfigDict(extra="forbid")

    type: str = "text"  # dlt data type: double, bigint, text, bool, timestamp, date, decimal
    nullable: bool = True
    min: float | None = None
    max: float | None = None
    allowed: list[Any] | None = None  # the only values allowed
    unique: bool = False


class ContractConfig(BaseModel):
    """A data contract: columns, value rules and what schema changes are allowed.

    Declared under ``[plugin.dlt.contracts.<name>]`` or in ``contracts/<name>.toml`` (or
    ``.json``) beside opsloop.toml. Column rules compile to SQL predicates, named
    ``<column>.not_null``, ``<column>.min``, ``<column>.max`` and ``<column>.allowed``.
    """

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, ColumnContract | str] = Field(default_factory=dict)
    rules: dict[str, str] = Field(default_factory=dict)  # rule name -> SQL predicate
    unique: list[str] = Field(default_factory=list)  # a key over several columns
    freshness: dict[str, str] = Field(default_factory=dict)  # column -> max age ("2d")
    schema_changes: Literal["evolve", "freeze", "discard_row", "discard_value"] = "evolve"
    on_violation: Literal["quarantine", "fail"] = "quarantine"

    @model_validator(mode="after")
    def _check(self) -> ContractConfig:
        for column, age in self.freshness.items():
            parse_age(age)
            if column not in self.columns:
                raise ValueError(f"freshness names column '{column}', which 'columns' lacks")
        for column in self.unique:
            if column not in self.columns:
                raise ValueError(f"unique names column '{column}', which 'columns' lacks")
        return self

    def column(self, name: str) -> ColumnContract:
        spec = self.columns[name]
        return ColumnContract(type=spec) if isinstance(spec, str) else spec

    def to_contract(self, name: str) -> DataContract:
        """The core's DataContract: column types, rules as SQL predicates, key, freshness."""
        from opsloop.interfaces import DataContract

        rules: dict[str, str] = {}
        unique = list(self.unique)
        for column in self.columns:
            spec, q = self.column(column), quote(column)
            if not spec.nullable:
                rules[f"{column}.not_null"] = f"{q} IS NOT NULL"
            if spec.min is not None:
                rules[f"{column}.min"] = f"{q} >= {sql_literal(spec.min)}"
            if spec.max is not None:
                rules[f"{column}.max"] = f"{q} <= {sql_literal(spec.max)}"
            if spec.allowed is not None:
                values = ", ".join(sql_literal(v) for v in spec.allowed)
                rules[f"{column}.allowed"] = f"{q} IN ({values})"
            if spec.unique and not self.unique:
                unique = [column]
        rules |= self.rules
        return DataContract(
            name=name,
            columns={c: self.column(c).type for c in self.columns},
            rules=rules,
            on_violation=self.on_violation,
            schema_changes=self.schema_changes,
            unique=tuple(unique),
            freshness={c: parse_age(a) for c, a in self.freshness.items()},
        )


class SourceConfig(BaseModel):
    """One ``sources`` entry: landing files, a table in a SQL database or a REST API."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    kind: Literal["landing_files", "sql", "rest_api"] = "landing_files"
    dataset: str = Field(default="raw", pattern=NAME_PATTERN)
    write_disposition: Literal["append", "replace", "merge"] = "append"
    primary_key: list[str] = Field(default_factory=list)
    contract: str | None = None
    # column -> dlt data type ("double", "bigint", "text", "bool", "timestamp", "date", ...)
    columns: dict[str, str] = Field(default_factory=dict)
    # landing_files
    path: str | None = None  # folder, relative to the project root
    glob: str = "*.csv"
    format: Literal["csv", "parquet", "jsonl"] | None = None  # default: from the glob
    delimiter: str = ","
    encoding: str = "utf-8"
    # sql
    credentials: str | None = None  # connection string; prefer credentials_env
    credentials_env: str | None = None  # name of the variable that holds the connection string
    table: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    incremental: str | None = None  # cursor column
    backend: Literal["sqlalchemy", "pyarrow", "connectorx"] = "pyarrow"  # how rows are read
    # backfill / replay: only cursor values in [start, end) (needs 'incremental')
    start: str | None = None
    end: str | None = None
    # rest_api: dlt's rest_api source config (client, resources); secrets through *_env names
    base_url: str | None = None
    resource: dict[str, Any] = Field(default_factory=dict)  # one dlt rest_api resource
    paginator: dict[str, Any] | str | None = None
    auth_token_env: str | None = None  # bearer token from this environment variable

    @model_validator(mode="after")
    def _check_kind(self) -> SourceConfig:
        if self.kind == "landing_files" and not self.path:
            raise ValueError("a landing_files source needs 'path' (a folder of files)")
        if self.kind == "rest_api" and not (self.base_url and self.resource):
            raise ValueError("a rest_api source needs 'base_url' and 'resource'")
        if (self.start or self.end) and not self.incremental:
            raise ValueError("'start'/'end' (a backfill) need 'incremental' (the cursor column)")
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
            if self.format:
                options["format"] = self.format
        elif self.kind == "rest_api":
            options |= {"base_url": self.base_url, "resource": dict(self.resource)}
            if self.paginator is not None:
                options["paginator"] = self.paginator
            if self.auth_token_env:
                options["auth_token_env"] = self.auth_token_env
        else:
            options["backend"] = self.backend
            options["table"] = self.table
            if self.schema_name:
                options["schema"] = self.schema_name
            if self.credentials_env:
                options["credentials_env"] = self.credentials_env
            if self.credentials:
                options["credentials"] = self.credentials
        if self.start:
            options["start"] = self.start
        if self.end:
            options["end"] = self.end
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
    csv_chunk_rows: int = Field(default=100_000, gt=0)  # rows read from a file at once
    contracts: dict[str, ContractConfig] = Field(default_factory=dict)
    contracts_dir: str = "contracts"  # <name>.toml / <name>.json beside opsloop.toml

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
