"""A Jupyter Authorizer that refuses the opsloop panel's resource (for test_jupyter_server)."""

from __future__ import annotations

from typing import Any

from jupyter_server.auth.authorizer import Authorizer


class DenyOpsloop(Authorizer):
    """Everything but resource "opsloop" is allowed, as a deployment's own policy might say."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "opsloop"
