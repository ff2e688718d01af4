"""The registry stage, as the core runs it: whichever plugin answers ``model_store``.

Everything here that is not about one vendor lives in the core, so another registry
plugin can replace MLflow: registration with provenance, alias moves behind promotion
gates, the alias history (``AliasMove`` records) and rollback over it, governance
metadata, recorded evidence and the history of a model. Every state change is audited
with its actor, what it was before and what it is after.

One module per concern: :mod:`~opsloop.registry.access` (the store, governance, alias
names, the move lock), :mod:`~opsloop.registry.registration`,
:mod:`~opsloop.registry.promotion` (gates and moves), :mod:`~opsloop.registry.rollback`
(alias history), :mod:`~opsloop.registry.history`, :mod:`~opsloop.registry.metadata` and
:mod:`~opsloop.registry.evidence`. Import from ``opsloop.registry``: that is the API.
"""

from __future__ import annotations

from opsloop.registry.access import (
    ALIAS_RE,
    current_version,
    get_store,
    governance,
    has_governance,
    read_table,
)
from opsloop.registry.evidence import (
    EVIDENCE_TYPES,
    MAX_EVIDENCE_BYTES,
    latest_evidence,
    record_evidence,
)
from opsloop.registry.history import history
from opsloop.registry.metadata import metadata, set_metadata
from opsloop.registry.promotion import promote, run_gates, set_alias
from opsloop.registry.registration import register_from, register_model
from opsloop.registry.rollback import (
    alias_moves,
    alias_stack,
    remove_alias,
    rollback,
    rollback_target,
)

__all__ = [
    "ALIAS_RE",
    "EVIDENCE_TYPES",
    "MAX_EVIDENCE_BYTES",
    "alias_moves",
    "alias_stack",
    "current_version",
    "get_store",
    "governance",
    "has_governance",
    "history",
    "latest_evidence",
    "metadata",
    "promote",
    "read_table",
    "record_evidence",
    "register_from",
    "register_model",
    "remove_alias",
    "rollback",
    "rollback_target",
    "run_gates",
    "set_alias",
    "set_metadata",
]
