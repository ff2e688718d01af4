"""Load one REST API resource with dlt's rest_api source: pagination, an incremental cursor,
auth from secrets, and the source's contract checked page by page.

``options``: ``base_url``; ``resource`` (one dlt rest_api resource: ``endpoint`` with
``path``, ``params``, ``data_selector``, ``paginator``, ...); ``paginator`` (the client's
default); ``auth_token_env`` (the name of a variable holding a bearer token — the token
itself never sits in config, records or logs). With ``incremental`` (a cursor field) and
``resource.endpoint.params`` naming ``{incremental.start_value}``, a run asks only for
records at or past the last cursor dlt stored with the previous load; ``start``/``end``
replay a range.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop_dlt.pipeline import (
    add_side_tables,
    checked_batches,
    current_columns,
    dlt_schema_contract,
    existing_keys,
    make_record,
    open_pipeline,
    report,
    restored_state,
    run,
    source_contract,
    table_name,
    utcnow,
    write_disposition,
)

if TYPE_CHECKING:
    from opsloop.interfaces import SourceSpec
    from opsloop.project import Project
    from opsloop.records import LoadRecord


def rest_config(source: SourceSpec, table: str) -> dict[str, Any]:
    """dlt's RESTAPIConfig for the source (secrets resolved from the environment)."""
    options = source.options
    base_url = options.get("base_url")
    resource = dict(options.get("resource") or {})
    if not base_url or not resource:
        raise OpsloopError(
            f"source '{source.name}': a rest_api source needs options 'base_url' and 'resource'"
        )
    client: dict[str, Any] = {"base_url": str(base_url)}
    if options.get("paginator") is not None:
        client["paginator"] = options["paginator"]
    env_name = options.get("auth_token_env")
    if env_name:
        token = os.environ.get(str(env_name))
        if not token:
            raise OpsloopError(
                f"source '{source.name}': environment variable {env_name} (auth_token_env) is "
                "not set; export it with the API token"
            )
        client["auth"] = {"type": "bearer", "token": token}
    endpoint = resource.get("endpoint") or {"path": resource.pop("path", table)}
    if isinstance(endpoint, str):
        endpoint = {"path": endpoint}
    endpoint = dict(endpoint)
    if source.incremental and "incremental" not in endpoint:
        incremental: dict[str, Any] = {"cursor_path": source.incremental}
        if options.get("start") is not None:
            incremental["initial_value"] = options["start"]
        if options.get("end") is not None:
            incremental["end_value"] = options["end"]
        endpoint["incremental"] = incremental
    resource["endpoint"] = endpoint
    resource["name"] = table
    resource["write_disposition"] = write_disposition(source)
    if source.primary_key:
        resource["primary_key"] = list(source.primary_key)
    return {"client": client, "resources": [resource]}


def load_rest_api(project: Project, source: SourceSpec) -> LoadRecord:
    """Load the new records of one REST resource; an ``empty`` record when none came."""
    started = utcnow()
    table = table_name(source.name)
    config = rest_config(source, table)

    import pyarrow as pa
    from dlt.sources.rest_api import rest_api_resources

    from opsloop_dlt.contracts import BatchChecker

    pipeline = open_pipeline(project, source)
    restored_state(project, pipeline, source)
    contract = source_contract(project, source)
    checker = BatchChecker(
        source.name,
        contract,
        {**current_columns(pipeline, table), **(source.options.get("columns") or {})},
        existing_keys(project, pipeline.dataset_name, table, list(contract.unique))
        if contract and source.write_disposition == "append"
        else None,
    )
    where = (
        f"{config['client']['base_url'].rstrip('/')}/{config['resources'][0]['endpoint']['path']}"
    )
    pages = iter(range(1, 1 << 62))

    def to_arrow(page: Any) -> Iterator[Any]:
        records = page if isinstance(page, list) else [page]
        if not records:
            return
        number = next(pages)
        try:
            batch = pa.Table.from_pylist(records)
        except (pa.ArrowException, TypeError) as exc:
            raise OpsloopError(
                f"source '{source.name}': page {number} of {where} has records of mixed shape: "
                f"{' '.join(str(exc).split())[:200]}"
            ) from None
        yield from checked_batches([(batch, f"{where} page {number}", 1)], checker, table)

    def resources() -> Any:
        (resource,) = rest_api_resources(config)  # type: ignore[arg-type]
        resource.add_yield_map(to_arrow)
        contract_hint = dlt_schema_contract(contract)
        if contract_hint:
            resource.apply_hints(schema_contract=contract_hint)  # type: ignore[arg-type]
        return add_side_tables(resource, table)

    try:
        result = run(project, pipeline, source, resources, table)
        report(project, source, pipeline.dataset_name, table, checker, result.load_ids)
    finally:
        checker.close()
    return make_record(source, pipeline, project, table, result, started)
