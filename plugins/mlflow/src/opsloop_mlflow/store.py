"""MlflowModelStore: opsloop's ModelStore protocol on an MLflow tracking store and registry.

Each registration is one MLflow run (params, metrics, lineage tags), one logged model
(``mlflow.sklearn.log_model`` with a signature and an input example) and one new model
version whose tags carry the lineage and a digest of the artifacts. Aliases replace the
deprecated stages. The store emits no record and writes no audit entry: the core's
``opsloop.registry`` wrapper does, around these calls.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import IntegrityError, OpsloopError, first_line, one_line
from opsloop.records import ModelVersionRef
from opsloop_mlflow._vendor import (
    error_code,
    import_mlflow,
    is_mlflow_error,
    scoped_uris,
)
from opsloop_mlflow.loaded import (
    LoadedModel,
    check_files,
    deserialize,
    digest_of,
    file_hashes,
    manifest_json,
    unverified_allowed,
)
from opsloop_mlflow.settings import Resolved, local_path, redact_uri, sqlite_path
from opsloop_mlflow.tags import (
    TAG_CONTENT_HASH,
    TAG_DATASET,
    TAG_DIGEST,
    TAG_ENVIRONMENT,
    TAG_FLAVOR,
    TAG_GIT_COMMIT,
    TAG_GIT_DIRTY,
    TAG_IMPORTED_FROM,
    TAG_INPUT_EXAMPLE,
    TAG_LOAD_IDS,
    TAG_LOAD_IDS_TOTAL,
    TAG_MANAGED,
    TAG_MANIFEST,
    TAG_MANIFEST_SHA,
    TAG_METRICS,
    TAG_PARAMS,
    TAG_REGISTERED_BY,
    TAG_SIGNATURE,
    TAG_TARGET,
    json_list_tag,
    json_tag,
)

if TYPE_CHECKING:
    from opsloop.interfaces import TrainedModel

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
RESERVED_ALIAS_RE = re.compile(r"^(latest|[vV]\d+)$")

META_PREFIX = "opsloop.meta."  # governance metadata: owner, intended_use, ...
MANIFEST_ARTIFACT = "opsloop/manifest.json"  # the manifest, also kept in the run
META_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Packages whose versions are recorded with every version (plus the serializer's).
ENV_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "mlflow", "opsloop", "opsloop-mlflow")

RUN_TAG_LIMIT = 8000  # MLflow's limit on run tag values
VERSION_TAG_LIMIT = 100_000  # ... and on model registry tag values
SMALL_TAG_LIMIT = 20_000  # params and input example: kept in a tag when they fit
PARAM_LIMIT = 6000


# ---------------------------------------------------------------------------- helpers
def _listing(items: list[str], limit: int = 10) -> str:
    if not items:
        return "none"
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def git_commit(root: Path) -> tuple[str, bool] | None:
    """(commit, dirty) of the git work tree holding ``root``; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", head.stdout.strip()):
            return None
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip(), bool(status.stdout.strip())


def _columns(specs: Any, default: str) -> list[dict[str, str]]:
    """[{name, type}] from a list of MLflow ColSpec/TensorSpec dicts."""
    specs = list(specs or [])
    out = []
    for i, spec in enumerate(specs):
        kind = spec.get("type")
        if kind == "tensor":
            kind = (spec.get("tensor-spec") or {}).get("dtype", "tensor")
        name = spec.get("name") or (default if len(specs) == 1 else f"{default}_{i}")
        out.append({"name": str(name), "type": str(kind)})
    return out


def signature_dict(signature: Any) -> dict[str, list[dict[str, str]]]:
    """An MLflow ModelSignature as ``{inputs: [{name, type}], outputs: [...]}``."""
    inputs = signature.inputs.to_dict() if signature.inputs is not None else []
    outputs = signature.outputs.to_dict() if signature.outputs is not None else []
    return {"inputs": _columns(inputs, "input"), "outputs": _columns(outputs, "prediction")}


def _signature_from_mlmodel(data: Mapping[str, Any]) -> dict[str, list[dict[str, str]]]:
    sig = data.get("signature") or {}
    return {
        "inputs": _columns(json_tag(sig.get("inputs"), []), "input"),
        "outputs": _columns(json_tag(sig.get("outputs"), []), "prediction"),
    }


def _iso(ms: int | None, timespec: str = "seconds") -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec=timespec)


def environment(serialization_format: str) -> dict[str, Any]:
    """Python, platform and the versions of the packages a model needs (at registration)."""
    import platform
    import sys
    from importlib.metadata import PackageNotFoundError, version

    names = list(ENV_PACKAGES)
    if serialization_format in ("skops", "cloudpickle"):
        names.append(serialization_format)
    packages: dict[str, str] = {}
    for name in names:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(terse=True),
        "packages": packages,
    }


def _small_json(value: Any) -> str | None:
    """JSON of ``value`` when it fits a tag comfortably, else None."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= SMALL_TAG_LIMIT else None


Check = Callable[[Path], list[str]]


# ---------------------------------------------------------------------------- store
class MlflowModelStore:
    """The MLflow model registry behind ``opsloop.interfaces.ModelStore``, with governance
    (provenance, per-file SHA-256, metadata, imports)."""

    name = "mlflow"
    capabilities = frozenset({"governance"})

    def __init__(self, config: Resolved, *, root: Path) -> None:
        self.config = config
        self.root = root
        self._client: Any = None
        self._experiment_id: str | None = None
        self._locations: dict[str, str] = {}
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"MlflowModelStore({self.where})"

    @property
    def where(self) -> str:
        """The registry, for messages (no password)."""
        return f"MLflow registry {redact_uri(self.config.registry_uri)}"

    @property
    def client(self) -> Any:
        """An ``mlflow.MlflowClient`` bound to this project's stores (made on first use)."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    import_mlflow()
                    from mlflow import MlflowClient

                    for uri in {self.config.tracking_uri, self.config.registry_uri}:
                        db = sqlite_path(uri)
                        if db is not None:
                            db.parent.mkdir(parents=True, exist_ok=True)
                    self._client = MlflowClient(
                        tracking_uri=self.config.tracking_uri,
                        registry_uri=self.config.registry_uri,
                    )
        return self._client

    # ------------------------------------------------------------------ lookups
    @staticmethod
    def _check_name(name: str) -> None:
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise OpsloopError(
                f"'{name}' is not a valid model name; use letters, digits, '_', '-' and '.' "
                "(starting with a letter or digit, at most 128 characters)"
            )

    def call_mlflow(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run an MLflow call; its failure becomes a one-line OpsloopError."""
        try:
            return fn(*args, **kwargs)
        except OpsloopError:
            raise
        except Exception as exc:
            if is_mlflow_error(exc) or isinstance(exc, OSError):
                raise OpsloopError(f"{what} failed in {self.where}: {first_line(exc)}") from exc
            raise

    def _experiment(self) -> str:
        """The id of the experiment holding opsloop's runs (created on first use)."""
        if self._experiment_id is not None:
            return self._experiment_id
        name = self.config.experiment
        client = self.client
        exp = self.call_mlflow("looking up experiment", client.get_experiment_by_name, name)
        if exp is None:
            try:
                exp_id = client.create_experiment(
                    name,
                    artifact_location=self.config.artifact_root,
                    tags={TAG_MANAGED: "true"},
                )
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    if is_mlflow_error(exc) or isinstance(exc, OSError):
                        raise OpsloopError(
                            f"creating experiment '{name}' failed in {self.where}: "
                            f"{first_line(exc)}"
                        ) from exc
                    raise
                exp_id = client.get_experiment_by_name(name).experiment_id
        elif exp.lifecycle_stage == "deleted":
            raise OpsloopError(
                f"MLflow experiment '{name}' is deleted; restore it "
                f"(`mlflow experiments restore --experiment-id {exp.experiment_id}`) or set "
                "[plugin.mlflow] experiment to another name"
            )
        else:
            exp_id = exp.experiment_id
        self._experiment_id = str(exp_id)
        return self._experiment_id

    def _registered(self, name: str) -> Any | None:
        try:
            return self.client.get_registered_model(name)
        except Exception as exc:
            if error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                return None
            if is_mlflow_error(exc):
                raise OpsloopError(
                    f"looking up model '{name}' failed in {self.where}: {first_line(exc)}"
                ) from exc
            raise

    def _model_versions(self, name: str) -> list[Any]:
        found = self.call_mlflow(
            "listing model versions", self.client.search_model_versions, f"name='{name}'"
        )
        return sorted(found, key=lambda mv: int(mv.version))

    def registered_models(self) -> list[str]:
        """Every registered model name, sorted."""
        names: list[str] = []
        token = None
        while True:
            page = self.call_mlflow(
                "listing registered models",
                self.client.search_registered_models,
                max_results=1000,
                page_token=token,
            )
            names.extend(m.name for m in page)
            token = getattr(page, "token", None)
            if not token:
                return sorted(names)

    def _not_found(self, name: str, what: str) -> OpsloopError:
        model = self._registered(name)
        if model is None:
            known = self.registered_models()
            return OpsloopError(
                f"model '{name}' is not registered in {self.where}; registered models: "
                f"{_listing(known)}"
            )
        versions = [str(mv.version) for mv in self._model_versions(name)]
        aliases = _aliases(model)
        alias_text = _listing([f"{a}->{v}" for a, v in sorted(aliases.items())])
        return OpsloopError(
            f"model '{name}' has no {what} in {self.where}; versions: {_listing(versions)}; "
            f"aliases: {alias_text}"
        )

    def _get_version(self, name: str, version: str) -> Any:
        try:
            return self.client.get_model_version(name, version)
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise self._not_found(name, f"version {version}") from None
            if is_mlflow_error(exc):
                raise OpsloopError(
                    f"looking up {name} version {version} failed in {self.where}: {first_line(exc)}"
                ) from exc
            raise

    def _version_for(self, name: str, alias_or_version: str) -> Any:
        self._check_name(name)
        key = str(alias_or_version).strip()
        key = key[1:] if key.startswith("@") else key
        if not key:
            raise OpsloopError(f"give a version number or an alias of model '{name}'")
        if key.isdigit():
            return self._get_version(name, str(int(key)))
        if key == "latest":
            versions = self._model_versions(name)
            if not versions:
                raise self._not_found(name, "version at all")
            return self._get_version(name, str(versions[-1].version))  # with its aliases
        try:
            return self.client.get_model_version_by_alias(name, key)
        except Exception as exc:
            if error_code(exc) in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise self._not_found(name, f"alias '{key}'") from None
            if is_mlflow_error(exc):
                raise OpsloopError(
                    f"looking up {name}@{key} failed in {self.where}: {first_line(exc)}"
                ) from exc
            raise

    # ------------------------------------------------------------------ artifacts
    def _location(self, mv: Any) -> str:
        """Where a version's model artifacts live (cached: a version's source never changes)."""
        key = f"{mv.name}/{mv.version}/{mv.source}"
        location = self._locations.get(key)
        if location is None:
            location = str(
                self.call_mlflow(
                    "resolving artifact location",
                    self.client.get_model_version_download_uri,
                    mv.name,
                    mv.version,
                )
            )
            self._locations[key] = location
        return location

    def download(self, location: str, target: Path) -> None:
        """Copy remote artifacts to ``target`` atomically (a partial copy never lands)."""
        import_mlflow()
        import mlflow.artifacts

        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.{uuid.uuid4().hex[:8]}"
        try:
            got = self.call_mlflow(
                "downloading model artifacts",
                mlflow.artifacts.download_artifacts,
                artifact_uri=location,
                dst_path=str(staging),
                tracking_uri=self.config.tracking_uri,
            )
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            Path(got).replace(target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _checked(self, location: str, check: Check | None, *, what: str) -> tuple[Path, list[str]]:
        """A local folder holding the artifacts at ``location`` and what ``check`` found wrong.

        Remote artifacts are downloaded once into the cache; a cached copy that fails the
        check is downloaded again (once) before the problems are reported.
        """
        local = local_path(location)
        if local is not None:
            if not (local / "MLmodel").is_file():
                raise OpsloopError(f"{what}: no model artifacts at {location}")
            return local, (check(local) if check else [])
        cached = self.config.cache_dir / hashlib.sha256(location.encode()).hexdigest()[:32]
        problems: list[str] = []
        for attempt in (1, 2):
            if attempt == 2 or not (cached / "MLmodel").is_file():
                self.download(location, cached)
            problems = check(cached) if check else []
            if not problems:
                break
        return cached, problems

    def _folder(self, location: str, check: Check | None, *, what: str) -> Path:
        """The checked local folder of ``location``; IntegrityError naming the first bad file."""
        folder, problems = self._checked(location, check, what=what)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise IntegrityError(
                f"{what}: artifact file {problems[0]} since registration{more}; it does not "
                f"match the SHA-256 recorded at registration, refusing to load it"
            )
        return folder

    @staticmethod
    def _check_for(tags: Mapping[str, str]) -> Check | None:
        """The integrity check a version's tags allow: the per-file manifest, else the digest."""
        manifest = json_tag(tags.get(TAG_MANIFEST), None)
        if isinstance(manifest, dict) and manifest:
            recorded = tags.get(TAG_MANIFEST_SHA)
            text = manifest_json(manifest)
            if recorded and hashlib.sha256(text.encode()).hexdigest() != recorded:

                def broken(_: Path) -> list[str]:
                    return [f"'{TAG_MANIFEST}' (the hash manifest itself) changed"]

                return broken
            return lambda folder: check_files(folder, manifest)
        expected = tags.get(TAG_DIGEST)
        if expected:

            def whole(folder: Path) -> list[str]:
                same = digest_of(file_hashes(folder)) == expected
                return [] if same else ["(one or more; only a folder digest was recorded) changed"]

            return whole
        return None

    # ------------------------------------------------------------------ refs
    def _ref(self, mv: Any, aliases: list[str] | None = None) -> ModelVersionRef:
        """A ModelVersionRef for an MLflow ModelVersion (``aliases`` when ``mv`` lacks them).

        MLflow's search results carry no aliases; callers pass them from the registered model.
        """
        tags = dict(mv.tags or {})
        metrics = json_tag(tags.get(TAG_METRICS), None)
        if metrics is None:
            metrics = {}
            if mv.run_id:
                try:
                    metrics = dict(self.client.get_run(mv.run_id).data.metrics)
                except Exception as exc:
                    if not is_mlflow_error(exc):
                        raise
        signature = json_tag(tags.get(TAG_SIGNATURE), None)
        if signature is None:
            signature = self._signature_from_artifacts(mv)
        created = _iso(getattr(mv, "creation_timestamp", None), "microseconds")
        return ModelVersionRef(
            **({"created_at": created} if created else {}),
            name=str(mv.name),
            version=str(mv.version),
            uri=f"models:/{mv.name}/{mv.version}",
            store=self.name,
            run_id=mv.run_id or None,
            aliases=sorted(aliases if aliases is not None else getattr(mv, "aliases", None) or []),
            load_ids=[str(x) for x in json_tag(tags.get(TAG_LOAD_IDS), [])],
            metrics={k: float(v) for k, v in metrics.items()},
            signature=signature,
        )

    def _signature_from_artifacts(self, mv: Any) -> dict[str, Any]:
        """Signature of a version registered outside opsloop, read from its MLmodel file."""
        from opsloop_mlflow.loaded import read_mlmodel

        try:
            folder = self._folder(self._location(mv), None, what=f"{mv.name} v{mv.version}")
            return _signature_from_mlmodel(read_mlmodel(folder))
        except OpsloopError:
            return {}

    def versions(self, name: str | None = None) -> list[ModelVersionRef]:
        """Every version of ``name`` (or of every registered model), oldest first."""
        names = [name] if name else self.registered_models()
        refs: list[ModelVersionRef] = []
        for model in names:
            self._check_name(model)
            registered = self._registered(model)
            if registered is None:
                raise self._not_found(model, "versions")
            by_version: dict[str, list[str]] = {}
            for alias, version in _aliases(registered).items():
                by_version.setdefault(version, []).append(alias)
            refs.extend(
                self._ref(mv, by_version.get(str(mv.version), []))
                for mv in self._model_versions(model)
            )
        return refs

    def describe(self, ref: ModelVersionRef) -> dict[str, Any]:
        """Details of a version beyond the ref: times, source, tags (for `opsloop model show`)."""
        mv = self._get_version(ref.name, ref.version)
        tags = dict(mv.tags or {})
        return {
            "created": _iso(mv.creation_timestamp),
            "source": mv.source,
            "artifacts": self._location(mv),
            "status": str(mv.status),
            "dataset": tags.get(TAG_DATASET, ""),
            "content_hash": tags.get(TAG_CONTENT_HASH, ""),
            "target": tags.get(TAG_TARGET, ""),
            "git_commit": tags.get(TAG_GIT_COMMIT, ""),
            "artifact_digest": tags.get(TAG_DIGEST, ""),
        }

    # ------------------------------------------------------------------ protocol
    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        """The version ``alias_or_version`` ("3", "champion", "@champion", "latest") of ``name``."""
        return self._ref(self._version_for(name, alias_or_version))

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        """Point ``alias`` at ``version``; return the version it pointed at before (or None)."""
        self._check_name(name)
        alias = str(alias).strip().lstrip("@")
        if not ALIAS_RE.match(alias) or RESERVED_ALIAS_RE.match(alias):
            raise OpsloopError(
                f"'{alias}' is not a valid alias; use a word such as 'champion' or 'challenger' "
                "(letters, digits, '_' and '-'; not 'latest' or 'v<number>')"
            )
        version = str(version).strip()
        if not version.isdigit():
            raise OpsloopError(f"version must be a number, got '{version}'")
        version = str(int(version))
        self._get_version(name, version)  # a clear error when the model or version is absent
        previous = _aliases(self._registered(name)).get(alias)
        self.call_mlflow(
            f"setting alias {name}@{alias}",
            self.client.set_registered_model_alias,
            name,
            alias,
            version,
        )
        return str(previous) if previous is not None else None

    def delete_alias(self, name: str, alias: str) -> str | None:
        """Remove ``alias`` from ``name``; return the version it pointed at (None: not set)."""
        self._check_name(name)
        alias = str(alias).strip().lstrip("@")
        previous = _aliases(self._registered(name)).get(alias)
        if previous is None:
            return None
        self.call_mlflow(
            f"removing alias {name}@{alias}",
            self.client.delete_registered_model_alias,
            name,
            alias,
        )
        return str(previous)

    def load(self, ref: ModelVersionRef) -> LoadedModel:
        """Load ``ref`` for scoring after checking every artifact file against its SHA-256.

        A changed, missing or added file raises IntegrityError naming it, before anything
        is deserialized.
        """
        mv = self._get_version(ref.name, ref.version)
        tags = dict(mv.tags or {})
        check = self._check_for(tags)
        what = f"model {ref.name} v{ref.version}"
        if check is None and not unverified_allowed():
            raise OpsloopError(
                f"{what} was not registered by opsloop (no artifact hashes to check); if you "
                "trust its source, set MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true to load it"
            )
        folder = self._folder(self._location(mv), check, what=what)
        try:
            model, flavor = deserialize(folder)
        except OpsloopError:
            raise
        except Exception as exc:
            raise OpsloopError(f"{what} could not be loaded: {one_line(exc)}") from exc
        signature = json_tag(tags.get(TAG_SIGNATURE), None) or ref.signature or {}
        features = [c["name"] for c in signature.get("inputs", []) if c.get("name")]
        return LoadedModel(
            model, name=ref.name, version=str(mv.version), features=features, flavor=flavor
        )

    def list_models(self) -> list[str]:
        """Every registered model name, sorted."""
        return self.registered_models()

    def list_versions(self, name: str) -> list[ModelVersionRef]:
        """Every version of ``name`` with its aliases, oldest first."""
        return self.versions(name)

    def verify(self, ref: ModelVersionRef) -> list[str]:
        """Every artifact file that no longer matches its recorded SHA-256 (``"'f' changed"``)."""
        mv = self._get_version(ref.name, ref.version)
        check = self._check_for(dict(mv.tags or {}))
        if check is None:
            return ["(none: no artifact hashes were recorded at registration) unverifiable"]
        _, problems = self._checked(
            self._location(mv), check, what=f"model {ref.name} v{ref.version}"
        )
        return problems

    def provenance(self, ref: ModelVersionRef) -> dict[str, Any]:
        """What a version was made from, as recorded at registration (see ModelStore)."""
        mv = self._get_version(ref.name, ref.version)
        tags = dict(mv.tags or {})
        run: Any = None
        if mv.run_id:
            try:
                run = self.client.get_run(mv.run_id)
            except Exception as exc:
                if not is_mlflow_error(exc):
                    raise
        run_tags = dict(run.data.tags) if run is not None else {}
        params = json_tag(tags.get(TAG_PARAMS), None)
        if params is None:
            params = dict(run.data.params) if run is not None else {}
        metrics = json_tag(tags.get(TAG_METRICS), None)
        if metrics is None:
            metrics = dict(run.data.metrics) if run is not None else {}
        manifest = json_tag(tags.get(TAG_MANIFEST), None)
        dirty = tags.get(TAG_GIT_DIRTY, run_tags.get(TAG_GIT_DIRTY))
        load_ids = json_tag(tags.get(TAG_LOAD_IDS), [])
        total = tags.get(TAG_LOAD_IDS_TOTAL)
        return {
            "registered_at": _iso(mv.creation_timestamp),
            "registered_by": tags.get(TAG_REGISTERED_BY) or getattr(mv, "user_id", None) or None,
            "run_id": mv.run_id or None,
            "imported_from": tags.get(TAG_IMPORTED_FROM) or None,
            "registry": self.where,
            "training_data": {
                "dataset": tags.get(TAG_DATASET) or None,
                "load_ids": [str(x) for x in load_ids],
                "load_ids_total": int(total) if total and total.isdigit() else len(load_ids),
                "content_hash": tags.get(TAG_CONTENT_HASH) or None,
                "target": tags.get(TAG_TARGET) or None,
            },
            "code": {
                "git_commit": tags.get(TAG_GIT_COMMIT) or run_tags.get(TAG_GIT_COMMIT) or None,
                "git_dirty": None if dirty is None else dirty == "true",
            },
            "parameters": {str(k): v for k, v in params.items()},
            "metrics": {k: float(v) for k, v in metrics.items()},
            "environment": json_tag(tags.get(TAG_ENVIRONMENT), None),
            "signature": json_tag(tags.get(TAG_SIGNATURE), None) or ref.signature or None,
            "input_example": json_tag(tags.get(TAG_INPUT_EXAMPLE), None),
            "flavor": tags.get(TAG_FLAVOR) or None,
            "artifacts": {
                "location": self._location(mv),
                "files": manifest if isinstance(manifest, dict) else {},
                "manifest_sha256": tags.get(TAG_MANIFEST_SHA) or None,
                "digest": tags.get(TAG_DIGEST) or None,
            },
        }

    # ------------------------------------------------------------------ metadata
    @staticmethod
    def _meta_keys(values: Mapping[str, str]) -> None:
        for key in values:
            if not META_KEY_RE.match(str(key)):
                raise OpsloopError(
                    f"'{key}' is not a valid metadata key; use lower-case letters, digits and "
                    "'_' (e.g. owner, intended_use, risk_class)"
                )

    def get_metadata(self, name: str, version: str | None = None) -> dict[str, str]:
        """Governance metadata of a model (``version=None``) or of one version."""
        self._check_name(name)
        if version is None:
            model = self._registered(name)
            if model is None:
                raise self._not_found(name, "metadata")
            tags = dict(model.tags or {})
        else:
            tags = dict(self._version_for(name, version).tags or {})
        return {
            k[len(META_PREFIX) :]: str(v)
            for k, v in sorted(tags.items())
            if k.startswith(META_PREFIX)
        }

    def set_metadata(self, name: str, version: str | None, values: Mapping[str, str]) -> None:
        """Set governance metadata on a model or one version; an empty value removes a key."""
        self._check_name(name)
        self._meta_keys(values)
        client = self.client
        if version is None:
            if self._registered(name) is None:
                raise self._not_found(name, "metadata")
            target = f"model '{name}'"
            setter, deleter, args = (
                client.set_registered_model_tag,
                client.delete_registered_model_tag,
                (name,),
            )
        else:
            mv = self._version_for(name, version)
            target = f"{name} v{mv.version}"
            setter, deleter, args = (
                client.set_model_version_tag,
                client.delete_model_version_tag,
                (name, str(mv.version)),
            )
        for key, value in values.items():
            tag = META_PREFIX + key
            if str(value).strip():
                self.call_mlflow(
                    f"setting {key} on {target}", setter, *args, tag, str(value).strip()
                )
            else:
                try:
                    deleter(*args, tag)
                except Exception as exc:
                    if error_code(exc) != "RESOURCE_DOES_NOT_EXIST" and is_mlflow_error(exc):
                        raise OpsloopError(
                            f"removing {key} from {target} failed in {self.where}: "
                            f"{first_line(exc)}"
                        ) from exc

    # ------------------------------------------------------------------ import
    def import_model(
        self, source: str, *, allow_pickle: bool = False
    ) -> tuple[TrainedModel, dict[str, Any]]:
        """A model from a run id, a ``runs:/`` URI or a model path, ready to register."""
        from opsloop_mlflow.importer import import_model

        return import_model(self, source, allow_pickle=allow_pickle)

    # ------------------------------------------------------------------ register
    def register(
        self, name: str, trained: TrainedModel, *, lineage: Mapping[str, Any]
    ) -> ModelVersionRef:
        """Log ``trained`` as a run + logged model and register it as a new version of ``name``.

        On any failure everything this call created (version, new registered model, logged
        model and its local artifacts, run) is removed again, then an OpsloopError is raised.
        """
        self._check_name(name)
        if trained.flavor != "sklearn":
            raise OpsloopError(
                f"opsloop-mlflow registers scikit-learn models (flavor 'sklearn'); "
                f"got flavor '{trained.flavor}'"
            )
        if trained.input_example is None or len(trained.input_example) == 0:
            raise OpsloopError(
                "the trained model has no input_example; give TrainedModel.input_example a few "
                "feature rows so the model signature can be inferred"
            )
        example = trained.input_example
        missing = [f for f in trained.features if f not in example.columns]
        if missing:
            raise OpsloopError(
                f"input_example lacks feature column(s) {_listing(missing)} of the trained model"
            )
        if trained.features:
            example = example[list(trained.features)]
        load_ids = [str(x) for x in (lineage.get("load_ids") or [])]
        dataset = str(lineage.get("dataset") or "")
        content_hash = str(lineage.get("content_hash") or "")
        git = git_commit(self.root)
        extra_tags = {
            TAG_REGISTERED_BY: str(lineage.get("registered_by") or ""),
            TAG_IMPORTED_FROM: str(lineage.get("imported_from") or ""),
        }

        created: dict[str, Any] = {}
        try:
            return self._register(
                name,
                trained,
                example,
                load_ids,
                dataset,
                content_hash,
                git,
                created,
                {k: v[:RUN_TAG_LIMIT] for k, v in extra_tags.items() if v},
            )
        except BaseException as exc:
            problems = self._undo(name, created)
            if isinstance(exc, OpsloopError | KeyboardInterrupt | SystemExit):
                raise
            note = "; cleanup also failed: " + "; ".join(problems) if problems else ""
            raise OpsloopError(
                f"registering model '{name}' in {self.where} failed: "
                f"{one_line(exc)}; nothing was registered{note}"
            ) from exc

    def _register(
        self,
        name: str,
        trained: TrainedModel,
        example: Any,
        load_ids: list[str],
        dataset: str,
        content_hash: str,
        git: tuple[str, bool] | None,
        created: dict[str, Any],
        extra_tags: dict[str, str],
    ) -> ModelVersionRef:
        import_mlflow()
        import mlflow.sklearn
        import pandas as pd
        from mlflow.entities import Metric, Param
        from mlflow.models import infer_signature

        client = self.client
        with warnings.catch_warnings():
            # MLflow hints that integer columns cannot hold NaN; predictions never do.
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = infer_signature(
                example, pd.Series(trained.model.predict(example), name="prediction")
            )
        sig = signature_dict(signature)
        metrics = {k: float(v) for k, v in trained.metrics.items()}

        ids_run, kept_run = json_list_tag(load_ids, RUN_TAG_LIMIT)
        run_tags = {
            "mlflow.runName": f"{name}-train",
            "mlflow.source.name": "opsloop",
            TAG_MANAGED: "true",
            "opsloop.model_name": name,
            TAG_LOAD_IDS: ids_run,
            TAG_DATASET: dataset[:RUN_TAG_LIMIT],
            TAG_CONTENT_HASH: content_hash[:RUN_TAG_LIMIT],
            TAG_TARGET: trained.target[:RUN_TAG_LIMIT],
        }
        if kept_run < len(load_ids):
            run_tags[TAG_LOAD_IDS_TOTAL] = str(len(load_ids))
        if git is not None:
            run_tags["mlflow.source.git.commit"] = git[0]
            run_tags[TAG_GIT_COMMIT] = git[0]
            run_tags[TAG_GIT_DIRTY] = str(git[1]).lower()

        experiment_id = self._experiment()
        run = client.create_run(experiment_id, tags=run_tags)
        run_id = run.info.run_id
        created["run_id"] = run_id
        now = int(time.time() * 1000)
        params = {
            **{k: v for k, v in trained.params.items()},
            "target": trained.target,
            "n_features": len(trained.features),
        }
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(str(k)[:250], str(v)[:PARAM_LIMIT]) for k, v in params.items()],
        )
        logged = client.create_logged_model(
            experiment_id,
            name=name,
            source_run_id=run_id,
            tags={TAG_MANAGED: "true", "mlflow.source.name": "opsloop"},
        )
        created["model_id"] = logged.model_id
        created["location"] = logged.artifact_location
        fmt = self.config.serialization_format
        extra: dict[str, Any] = {}
        if not self.config.infer_pip_requirements:
            extra["pip_requirements"] = mlflow.sklearn.get_default_pip_requirements(
                include_cloudpickle=fmt == "cloudpickle", include_skops=fmt == "skops"
            )
        with scoped_uris(self.config.tracking_uri, self.config.registry_uri):
            mlflow.sklearn.log_model(
                trained.model,
                name="model",
                model_id=logged.model_id,
                run_id=run_id,
                signature=signature,
                input_example=example,
                serialization_format=fmt,
                metadata={"opsloop": {"target": trained.target, "dataset": dataset}},
                **extra,
            )
        location = str(logged.artifact_location)
        folder = self._folder(location, None, what=f"{name} (new version)")
        hashes = file_hashes(folder)
        manifest = manifest_json(hashes)
        client.log_text(run_id, manifest, MANIFEST_ARTIFACT)
        client.set_terminated(run_id, "FINISHED")

        if self._registered(name) is None:
            try:
                client.create_registered_model(name, tags={TAG_MANAGED: "true"})
                created["registered_model"] = name
            except Exception as exc:
                if error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                    raise
        ids_version, kept_version = json_list_tag(load_ids, VERSION_TAG_LIMIT // 2)
        version_tags = {
            TAG_LOAD_IDS: ids_version,
            TAG_CONTENT_HASH: content_hash,
            TAG_DATASET: dataset,
            TAG_TARGET: trained.target,
            TAG_FLAVOR: trained.flavor,
            TAG_DIGEST: digest_of(hashes),
            TAG_MANIFEST: manifest,
            TAG_MANIFEST_SHA: hashlib.sha256(manifest.encode()).hexdigest(),
            TAG_METRICS: json.dumps(metrics, sort_keys=True),
            TAG_SIGNATURE: json.dumps(sig),
            TAG_ENVIRONMENT: json.dumps(environment(fmt), sort_keys=True),
            **extra_tags,
        }
        if len(manifest) > VERSION_TAG_LIMIT:
            raise OpsloopError(
                f"model '{name}' has {len(hashes)} artifact files: too many to record their "
                "hashes in a registry tag"
            )
        small = {
            TAG_PARAMS: _small_json({str(k): str(v) for k, v in params.items()}),
            TAG_INPUT_EXAMPLE: _small_json(
                json.loads(example.head(5).to_json(orient="records", double_precision=15))
            ),
        }
        version_tags.update({k: v for k, v in small.items() if v is not None})
        if kept_version < len(load_ids):
            version_tags[TAG_LOAD_IDS_TOTAL] = str(len(load_ids))
        if git is not None:
            version_tags[TAG_GIT_COMMIT] = git[0]
            version_tags[TAG_GIT_DIRTY] = str(git[1]).lower()
        # MLflow's SQL registry looks the logged model up through the global tracking URI.
        with scoped_uris(self.config.tracking_uri, self.config.registry_uri):
            mv = client.create_model_version(
                name,
                source=f"models:/{logged.model_id}",
                run_id=run_id,
                tags=version_tags,
                model_id=logged.model_id,
            )
        created["version"] = str(mv.version)
        self._locations[f"{mv.name}/{mv.version}/{mv.source}"] = location
        return self._ref(mv)

    def _undo(self, name: str, created: dict[str, Any]) -> list[str]:
        """Remove what a failed registration created; return what could not be removed."""
        if not created:
            return []
        client = self.client
        problems: list[str] = []

        def attempt(label: str, fn: Any, *args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - report every leftover, keep cleaning
                problems.append(f"{label}: {one_line(exc)}")

        if "version" in created:
            version = created["version"]
            attempt(f"delete version {version}", client.delete_model_version, name, version)
        if "registered_model" in created:
            try:
                left = client.search_model_versions(f"name='{name}'")
            except Exception:  # noqa: BLE001
                left = [None]
            if not left:
                attempt(f"delete model {name}", client.delete_registered_model, name)
        if "model_id" in created:
            attempt("delete logged model", client.delete_logged_model, created["model_id"])
            folder = local_path(str(created.get("location", "")))
            if folder is not None and folder.exists():
                top = folder.parent if folder.name == "artifacts" else folder
                shutil.rmtree(top, ignore_errors=True)
        if "run_id" in created:
            attempt("mark run failed", client.set_terminated, created["run_id"], "FAILED")
            attempt("delete run", client.delete_run, created["run_id"])
        return problems


def _aliases(model: Any) -> dict[str, str]:
    """A registered model's aliases as {alias: version}."""
    raw = getattr(model, "aliases", None) or {}
    if isinstance(raw, Mapping):
        return {str(k): str(v) for k, v in raw.items()}
    return {str(a.alias): str(a.version) for a in raw}
