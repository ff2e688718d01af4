"""``[plugin.mlflow]`` settings, and their defaults resolved against a project's folders.

Imports pydantic only, so ``opsloop plugins`` and ``opsloop doctor`` can read them without
importing MLflow.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from opsloop.project import Project


class Settings(BaseModel):
    """The ``[plugin.mlflow]`` table of opsloop.toml; every key is optional."""

    model_config = ConfigDict(extra="forbid")

    #: MLflow tracking store; default ``sqlite:///<project home>/mlflow.db``. A relative
    #: ``sqlite:///path`` is relative to the project root (the folder of opsloop.toml).
    tracking_uri: str = ""
    #: Model registry store; default: the tracking URI.
    registry_uri: str = ""
    #: Artifact location of the experiment when opsloop creates it; default
    #: ``<project home>/mlartifacts`` for a database or file store, and the server's own
    #: default (``mlflow-artifacts:/``) for an ``http(s)://`` tracking server.
    artifact_root: str = ""
    #: Experiment that holds opsloop's training runs; default: the project name.
    experiment: str = ""
    #: How scikit-learn models are written. "skops" needs no pickle to load.
    serialization_format: Literal["skops", "cloudpickle", "pickle"] = "skops"
    #: Let MLflow infer pip requirements (runs the model in a subprocess: seconds per
    #: registration). Off: the flavor's own pinned requirements are written.
    infer_pip_requirements: bool = False
    #: Local copies of remote artifacts (tracking servers); default ``<home>/mlflow-cache``.
    cache_dir: str = ""


@dataclass(frozen=True)
class Resolved:
    """Settings with every default filled in for one project."""

    tracking_uri: str
    registry_uri: str
    artifact_root: str | None  # None: let the tracking server decide
    experiment: str
    serialization_format: str
    infer_pip_requirements: bool
    cache_dir: Path


def _sqlite_uri(uri: str, root: Path) -> str:
    """Make a relative ``sqlite:///file`` absolute against ``root``."""
    if not uri.startswith("sqlite:///") or uri.startswith("sqlite:////"):
        return uri
    rest = uri[len("sqlite:///") :]
    if rest in ("", ":memory:") or rest.startswith(":memory:"):
        return uri
    return f"sqlite:///{(root / rest).resolve()}"


def _artifact_uri(value: str, root: Path) -> str:
    """A local path (absolute or relative to ``root``) as a file URI; URIs pass through."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", value) and not re.match(r"^[A-Za-z]:\\", value):
        return value
    path = Path(value).expanduser()
    return (path if path.is_absolute() else (root / path)).resolve().as_uri()


def is_remote(uri: str) -> bool:
    """True for an MLflow tracking server (``http://``, ``https://``)."""
    return uri.startswith(("http://", "https://"))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other schemes or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    rest = uri[len("sqlite:///") :].split("?", 1)[0]
    if not rest or rest.startswith(":memory:"):
        return None
    return Path(unquote(rest))


def local_path(uri: str) -> Path | None:
    """The folder of a ``file:`` URI or a plain path (None for remote locations)."""
    if uri.startswith("file:"):
        return Path(unquote(urlsplit(uri).path))
    if "://" not in uri and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", uri):
        return Path(uri)
    return None


def redact_uri(uri: str) -> str:
    """The URI without a password, fit for messages and logs."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return uri
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else host
    return urlunsplit(parts._replace(netloc=netloc))


def resolve(settings: Settings | None, project: Project) -> Resolved:
    """Fill the defaults of ``settings`` (default: the project's) from its home, root, name."""
    if settings is None:
        settings = project.settings("mlflow")
        assert isinstance(settings, Settings)
    home = project.home
    root = project.root
    tracking = _sqlite_uri(settings.tracking_uri, root) or f"sqlite:///{home / 'mlflow.db'}"
    registry = _sqlite_uri(settings.registry_uri, root) or tracking
    if settings.artifact_root:
        artifacts: str | None = _artifact_uri(settings.artifact_root, root)
    elif is_remote(tracking):
        artifacts = None
    else:
        artifacts = (home / "mlartifacts").resolve().as_uri()
    cache = Path(settings.cache_dir).expanduser() if settings.cache_dir else home / "mlflow-cache"
    if not cache.is_absolute():
        cache = root / cache
    return Resolved(
        tracking_uri=tracking,
        registry_uri=registry,
        artifact_root=artifacts,
        experiment=settings.experiment or project.config.project.name,
        serialization_format=settings.serialization_format,
        infer_pip_requirements=settings.infer_pip_requirements,
        cache_dir=cache.resolve(),
    )
