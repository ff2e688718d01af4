"""Reading a model that opsloop did not train: from an MLflow run or from a model path.

``opsloop model register NAME SOURCE`` accepts a run id (32 hex digits), a
``runs:/<run id>/<path>`` URI, an MLflow model folder (one with an ``MLmodel`` file) or a
scikit-learn file (``.skops``, ``.pkl``/``.pickle``, ``.joblib``). Reading a pickle runs
code from the file, so pickles (and skops files holding types skops does not trust) are
refused unless the caller passes ``allow_pickle``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, first_line, one_line
from opsloop.interfaces import TrainedModel
from opsloop_mlflow._vendor import is_mlflow_error
from opsloop_mlflow.loaded import read_mlmodel
from opsloop_mlflow.tags import TAG_CONTENT_HASH, TAG_DATASET, TAG_LOAD_IDS, json_tag

if TYPE_CHECKING:
    from opsloop_mlflow.store import MlflowModelStore

RUN_RE = re.compile(r"^(?:runs:/)?([0-9a-f]{32})(?:/(.*))?$")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
HINT = "pass --allow-pickle only if you trust where the file came from"


def _read_file(path: Path, fmt: str, allow_pickle: bool, trusted: Any = None) -> Any:
    """Deserialize one model file; pickles only when allowed."""
    if fmt == "skops":
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)
        if untrusted and not allow_pickle:
            shown = ", ".join(untrusted[:5]) + (" ..." if len(untrusted) > 5 else "")
            raise OpsloopError(
                f"{path.name} holds types skops does not trust by default ({shown}); {HINT}"
            )
        return skops.io.load(path, trusted=untrusted or trusted)
    if fmt in ("pickle", "cloudpickle", "joblib"):
        if not allow_pickle:
            raise OpsloopError(
                f"{path.name} is a {fmt} file, and unpickling runs code from it; {HINT}"
            )
        if fmt == "joblib":
            import joblib

            return joblib.load(path)
        with path.open("rb") as handle:
            if fmt == "cloudpickle":
                import cloudpickle

                return cloudpickle.load(handle)
            import pickle

            return pickle.load(handle)  # the caller allowed it explicitly
    raise OpsloopError(f"unknown scikit-learn serialization format '{fmt}' in {path}")


def _params(model: Any) -> dict[str, Any]:
    """The estimator's own parameters (shallow), as strings."""
    out: dict[str, Any] = {"estimator": type(model).__name__}
    get = getattr(model, "get_params", None)
    if callable(get):
        with contextlib.suppress(Exception):  # parameters are informative only
            out.update({str(k): str(v)[:500] for k, v in get(deep=False).items()})
    return out


def _check_model(model: Any, source: str) -> None:
    if not callable(getattr(model, "predict", None)):
        raise OpsloopError(f"'{source}' does not hold a model with a predict() method")


def _example(folder: Path, info: dict[str, Any]) -> Any:
    """The input example MLflow saved with a model folder, as a DataFrame (or None)."""
    import json

    import pandas as pd

    saved = info.get("saved_input_example_info") or {}
    path = folder / str(saved.get("artifact_path") or "input_example.json")
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return pd.DataFrame(data["data"], columns=data["columns"])
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return pd.DataFrame(data)
    return None


def _from_folder(
    store: MlflowModelStore, folder: Path, source: str, allow_pickle: bool
) -> tuple[TrainedModel, dict[str, Any]]:
    """An MLflow model folder: the sklearn flavor, its signature, example and run."""

    info = read_mlmodel(folder)
    flavors = info.get("flavors") or {}
    if "sklearn" not in flavors:
        raise OpsloopError(
            f"'{source}' is an MLflow model with flavors {sorted(flavors)}; opsloop-mlflow "
            "registers scikit-learn ('sklearn') models"
        )
    conf = flavors["sklearn"]
    fmt = str(conf.get("serialization_format", "pickle"))
    model = _read_file(
        folder / str(conf.get("pickled_model", "model.pkl")),
        fmt,
        allow_pickle,
        conf.get("skops_trusted_types"),
    )
    _check_model(model, source)
    sig = info.get("signature") or {}
    inputs = json_tag(sig.get("inputs"), [])
    features = [str(c["name"]) for c in inputs if isinstance(c, dict) and c.get("name")]
    meta = (info.get("metadata") or {}).get("opsloop") or {}
    lineage: dict[str, Any] = {"dataset": str(meta.get("dataset") or "")}
    params: dict[str, Any] = _params(model)
    metrics: dict[str, float] = {}
    run_id = str(info.get("run_id") or "")
    if run_id:
        run = _run(store, run_id, required=False)
        if run is not None:
            params.update(dict(run.data.params))
            metrics = {k: float(v) for k, v in run.data.metrics.items()}
            tags = dict(run.data.tags)
            lineage["load_ids"] = [str(x) for x in json_tag(tags.get(TAG_LOAD_IDS), [])]
            lineage["dataset"] = lineage["dataset"] or tags.get(TAG_DATASET, "")
            lineage["content_hash"] = tags.get(TAG_CONTENT_HASH, "")
    for key in ("target", "n_features"):
        params.pop(key, None)  # opsloop writes these itself
    trained = TrainedModel(
        model=model,
        flavor="sklearn",
        features=features or _feature_names(model),
        target=str(meta.get("target") or ""),
        params=params,
        metrics=metrics,
        input_example=_example(folder, info),
    )
    return trained, lineage


def _feature_names(model: Any) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    return [str(n) for n in names] if names is not None else []


def _from_file(path: Path, allow_pickle: bool) -> tuple[TrainedModel, dict[str, Any]]:
    """A bare scikit-learn file: no signature or example (they come from training data)."""
    suffix = path.suffix.lower()
    if suffix == ".skops":
        fmt = "skops"
    elif suffix in PICKLE_SUFFIXES:
        fmt = "joblib" if suffix == ".joblib" else "pickle"
    else:
        raise OpsloopError(
            f"'{path}' is not a model this plugin reads: give an MLflow model folder, a .skops, "
            ".pkl/.pickle or .joblib file, or a run id"
        )
    try:
        model = _read_file(path, fmt, allow_pickle)
    except OpsloopError:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken file is a one-line error
        raise OpsloopError(f"cannot read model file {path}: {one_line(exc)}") from None
    _check_model(model, str(path))
    trained = TrainedModel(
        model=model,
        flavor="sklearn",
        features=_feature_names(model),
        target="",
        params=_params(model),
    )
    return trained, {}


def _run(store: MlflowModelStore, run_id: str, *, required: bool = True) -> Any:
    try:
        return store.client.get_run(run_id)
    except Exception as exc:
        if not is_mlflow_error(exc):
            raise
        if not required:
            return None
        raise OpsloopError(f"no run '{run_id}' in {store.where}: {first_line(exc)}") from None


def _from_run(
    store: MlflowModelStore, run_id: str, path: str, allow_pickle: bool
) -> tuple[TrainedModel, dict[str, Any]]:
    """The model a run logged (its only logged model, or ``runs:/<id>/<path>``)."""
    from opsloop_mlflow.settings import local_path

    run = _run(store, run_id)
    if path:
        location = f"runs:/{run_id}/{path.strip('/')}"
    else:
        logged = store.call_mlflow(
            "looking up the run's logged models",
            store.client.search_logged_models,
            experiment_ids=[run.info.experiment_id],
            filter_string=f"source_run_id = '{run_id}'",
        )
        logged = list(logged)
        if len(logged) != 1:
            names = ", ".join(sorted(str(m.name) for m in logged)) or "none"
            raise OpsloopError(
                f"run '{run_id}' logged {len(logged)} models ({names}); name one as "
                f"runs:/{run_id}/<artifact path>"
            )
        location = str(logged[0].artifact_location)
    staging = Path(tempfile.mkdtemp(prefix="opsloop-import-"))
    try:
        folder = local_path(location)
        if folder is None or location.startswith("runs:/"):
            store.download(location, staging / "model")
            folder = staging / "model"
        if not (folder / "MLmodel").is_file():
            raise OpsloopError(f"'{location}' is not an MLflow model (no MLmodel file)")
        trained, lineage = _from_folder(store, folder, location, allow_pickle)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    tags = dict(run.data.tags)
    trained.params.update(
        {k: v for k, v in run.data.params.items() if k not in ("target", "n_features")}
    )
    trained.metrics = {k: float(v) for k, v in run.data.metrics.items()} or trained.metrics
    lineage.update(
        {
            "load_ids": [str(x) for x in json_tag(tags.get(TAG_LOAD_IDS), [])]
            or lineage.get("load_ids", []),
            "dataset": tags.get(TAG_DATASET) or lineage.get("dataset", ""),
            "content_hash": tags.get(TAG_CONTENT_HASH) or lineage.get("content_hash", ""),
        }
    )
    return trained, lineage


def import_model(
    store: MlflowModelStore, source: str, *, allow_pickle: bool = False
) -> tuple[TrainedModel, dict[str, Any]]:
    """The model at ``source`` and the lineage found with it (``imported_from`` included)."""
    from opsloop_mlflow._vendor import import_mlflow

    text = str(source).strip()
    if not text:
        raise OpsloopError("give a run id, a runs:/ URI or a model path to register")
    path = Path(text).expanduser()
    if path.exists():
        import_mlflow()
        if path.is_dir():
            if not (path / "MLmodel").is_file():
                raise OpsloopError(
                    f"folder '{path}' is not an MLflow model (no MLmodel file); give the model "
                    "folder itself or a model file"
                )
            trained, lineage = _from_folder(store, path, text, allow_pickle)
        else:
            trained, lineage = _from_file(path, allow_pickle)
        lineage["imported_from"] = str(path.resolve())
        return trained, lineage
    match = RUN_RE.match(text)
    if match is None:
        raise OpsloopError(
            f"'{text}' is neither an existing model path nor a run id (32 hex digits, or "
            "runs:/<run id>/<artifact path>)"
        )
    trained, lineage = _from_run(store, match.group(1), match.group(2) or "", allow_pickle)
    lineage["imported_from"] = f"runs:/{match.group(1)}" + (
        f"/{match.group(2)}" if match.group(2) else ""
    )
    return trained, lineage
