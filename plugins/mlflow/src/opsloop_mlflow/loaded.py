"""Loading a registered model fast: check every artifact file's hash, then deserialize.

``mlflow.pyfunc.load_model`` copies the artifacts to a temporary folder on every call and
refuses to deserialize unless ``MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true``. opsloop records
the SHA-256 of every artifact file (a manifest) when it registers a model; a load
recomputes them, refuses a changed, missing or added file by name, and only then reads
the model (so a pickle is never unpickled before its hash matched).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    import pandas as pd

DIGEST_PREFIX = "sha256:"
MLMODEL = "MLmodel"
#: Files MLflow itself writes into a model folder after registration: its loaders add
#: ``registered_model_meta`` (name, version) when they read a local registered model.
NOT_DIGESTED = frozenset({"registered_model_meta"})


def file_hashes(folder: Path) -> dict[str, str]:
    """``{relative path: sha256 hex}`` of every file under ``folder``, sorted by path.

    Left out: ``__pycache__`` and the bookkeeping files MLflow adds later (NOT_DIGESTED).
    """
    out: dict[str, str] = {}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if "__pycache__" in rel.parts or (len(rel.parts) == 1 and rel.name in NOT_DIGESTED):
            continue
        if not path.is_file():
            continue
        inner = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                inner.update(chunk)
        out[rel.as_posix()] = inner.hexdigest()
    return dict(sorted(out.items()))


def digest_of(hashes: Mapping[str, str]) -> str:
    """``sha256:<hex>`` over sorted (path, file hash) pairs: one value for a whole folder."""
    outer = hashlib.sha256()
    for rel in sorted(hashes):
        outer.update(rel.encode() + b"\0")
        outer.update(bytes.fromhex(hashes[rel]))
    return DIGEST_PREFIX + outer.hexdigest()


def artifact_digest(folder: Path) -> str:
    """The :func:`digest_of` the files of ``folder`` (what older versions recorded)."""
    return digest_of(file_hashes(folder))


def manifest_json(hashes: Mapping[str, str]) -> str:
    """The manifest as canonical JSON (its SHA-256 is recorded beside it)."""
    return json.dumps(dict(sorted(hashes.items())), sort_keys=True, separators=(",", ":"))


def check_files(folder: Path, manifest: Mapping[str, str]) -> list[str]:
    """What differs from the manifest: ``'x' changed``, ``'x' missing``, ``'x' added``."""
    actual = file_hashes(folder)
    problems = []
    for rel, expected in sorted(manifest.items()):
        got = actual.get(rel)
        if got is None:
            problems.append(f"'{rel}' missing")
        elif got != expected:
            problems.append(f"'{rel}' changed")
    problems += [f"'{rel}' added" for rel in sorted(set(actual) - set(manifest))]
    return problems


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of a model folder."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with (folder / MLMODEL).open("rb") as handle:
            data = yaml.load(handle, Loader=loader)
    except OSError as exc:
        raise OpsloopError(f"no readable MLmodel file in {folder}: {exc.strerror}") from None
    return data if isinstance(data, dict) else {}


def _deserialize_sklearn(folder: Path, conf: dict[str, Any]) -> Any:
    fmt = conf.get("serialization_format", "pickle")
    path = folder / str(conf.get("pickled_model", "model.pkl"))
    if fmt == "skops":
        import skops.io

        return skops.io.load(path, trusted=conf.get("skops_trusted_types"))
    with path.open("rb") as handle:
        if fmt == "cloudpickle":
            import cloudpickle

            return cloudpickle.load(handle)
        if fmt == "pickle":
            import pickle

            return pickle.load(handle)  # the artifact digest was verified
    raise OpsloopError(f"unknown scikit-learn serialization format '{fmt}' in {folder}")


def deserialize(folder: Path) -> tuple[Any, str]:
    """The model object in ``folder`` and its flavor ("sklearn" or "python_function")."""
    flavors = read_mlmodel(folder).get("flavors") or {}
    if "sklearn" in flavors:
        return _deserialize_sklearn(folder, flavors["sklearn"]), "sklearn"
    if "python_function" in flavors:
        from opsloop_mlflow._vendor import import_mlflow

        import_mlflow()
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(folder)), "python_function"
    raise OpsloopError(
        f"model in {folder} has flavors {sorted(flavors)}; opsloop-mlflow loads "
        "'sklearn' and 'python_function' models"
    )


def unverified_allowed() -> bool:
    """MLflow's own switch for loading models whose origin opsloop cannot vouch for."""
    return os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "").lower() in ("true", "1")


class LoadedModel:
    """A registered model ready to score: ``predict`` (and ``predict_proba`` when it has one).

    Input columns are picked and ordered by the model's signature, so a frame may carry
    extra columns (ids, timestamps); a missing feature is a one-line OpsloopError.
    """

    def __init__(
        self, model: Any, *, name: str, version: str, features: list[str], flavor: str
    ) -> None:
        self.model = model
        self.name = name
        self.version = version
        self.features = list(features)
        self.flavor = flavor
        if hasattr(model, "predict_proba"):
            self.predict_proba = self._predict_proba
        if hasattr(model, "classes_"):
            self.classes_ = model.classes_

    def __repr__(self) -> str:
        features = len(self.features)
        return f"LoadedModel({self.name} v{self.version}, {self.flavor}, {features} features)"

    def _frame(self, data: pd.DataFrame) -> pd.DataFrame:
        if not self.features or not hasattr(data, "columns"):
            return data
        columns = list(data.columns)
        if columns == self.features:
            return data
        missing = [f for f in self.features if f not in data.columns]
        if missing:
            shown = ", ".join(missing[:8])
            if len(missing) > 8:
                shown += f", ... ({len(missing)} in all)"
            raise OpsloopError(
                f"model {self.name} v{self.version} needs feature column(s) missing from the "
                f"input: {shown}"
            )
        return data[self.features]

    def predict(self, data: pd.DataFrame) -> Any:
        """Predictions for every row of ``data``."""
        return self.model.predict(self._frame(data))

    def _predict_proba(self, data: pd.DataFrame) -> Any:
        """Class probabilities for every row of ``data`` (classifiers only)."""
        return self.model.predict_proba(self._frame(data))

    def unwrap(self) -> Any:
        """The underlying model object (a scikit-learn estimator for the sklearn flavor)."""
        return self.model
