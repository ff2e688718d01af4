"""opsloop-mlflow: the registry stage on MLflow (train, register, alias, load).

The entry-point module is :mod:`opsloop_mlflow.plugin`; it imports no MLflow until a
hook needs it.
"""

from __future__ import annotations

__version__ = "0.1.0"
