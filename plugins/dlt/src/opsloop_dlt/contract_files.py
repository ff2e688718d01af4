"""Data contracts from config and from files beside it (``contracts/<name>.toml|json``)."""

from __future__ import annotations

import json
import tomllib
from typing import TYPE_CHECKING

from pydantic import ValidationError

from opsloop.errors import OpsloopError
from opsloop_dlt.settings import ContractConfig

if TYPE_CHECKING:
    from opsloop.interfaces import DataContract
    from opsloop.project import Project


def load_contracts(project: Project) -> list[DataContract]:
    """Every contract: ``[plugin.dlt.contracts.<name>]`` first, then the files (by stem)."""
    settings = project.settings("dlt")
    found = {name: spec.to_contract(name) for name, spec in settings.contracts.items()}
    folder = project.root / settings.contracts_dir
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.suffix not in (".toml", ".json") or path.stem in found:
                continue
            try:
                raw = (
                    tomllib.loads(path.read_text(encoding="utf-8"))
                    if path.suffix == ".toml"
                    else json.loads(path.read_text(encoding="utf-8"))
                )
                found[path.stem] = ContractConfig.model_validate(raw).to_contract(path.stem)
            except (tomllib.TOMLDecodeError, json.JSONDecodeError, ValidationError) as exc:
                first = str(exc).splitlines()
                detail = "; ".join(line.strip() for line in first[:3])
                raise OpsloopError(f"contract file {path}: {detail}") from None
            except ValueError as exc:
                raise OpsloopError(f"contract file {path}: {exc}") from None
    return list(found.values())
