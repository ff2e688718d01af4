"""The ``opsloop.*`` tags opsloop writes on MLflow runs and model versions, and their JSON.

The store writes them at registration and reads them back as lineage; the importer reads
them from runs that opsloop logged.
"""

from __future__ import annotations

import json
from typing import Any

TAG_LOAD_IDS = "opsloop.load_ids"
TAG_LOAD_IDS_TOTAL = "opsloop.load_ids_total"
TAG_DATASET = "opsloop.dataset"
TAG_CONTENT_HASH = "opsloop.content_hash"
TAG_DIGEST = "opsloop.artifact_digest"
TAG_SIGNATURE = "opsloop.signature"
TAG_METRICS = "opsloop.metrics"
TAG_TARGET = "opsloop.target"
TAG_FLAVOR = "opsloop.flavor"
TAG_GIT_COMMIT = "opsloop.git_commit"
TAG_GIT_DIRTY = "opsloop.git_dirty"
TAG_MANAGED = "opsloop.managed"
TAG_MANIFEST = "opsloop.manifest"  # {artifact file: sha256}
TAG_MANIFEST_SHA = "opsloop.manifest_sha256"
TAG_ENVIRONMENT = "opsloop.environment"
TAG_PARAMS = "opsloop.params"
TAG_INPUT_EXAMPLE = "opsloop.input_example"
TAG_REGISTERED_BY = "opsloop.registered_by"
TAG_IMPORTED_FROM = "opsloop.imported_from"


def json_list_tag(values: list[str], limit: int) -> tuple[str, int]:
    """JSON for as many of ``values`` as fit in ``limit`` characters, and how many fit."""
    kept = list(values)
    text = json.dumps(kept)
    while len(text) > limit and kept:
        kept = kept[: max(0, len(kept) * 3 // 4)]
        text = json.dumps(kept)
    return text, len(kept)


def json_tag(text: str | None, default: Any) -> Any:
    """A JSON tag's value; ``default`` when the tag is missing, empty or not JSON."""
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default
