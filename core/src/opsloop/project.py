"""A project: its config, its home folder, its plugins, its records and its audit log.

Every hook receives the :class:`Project`; it is how a plugin finds its settings, paths,
the warehouse, and how it writes records and audit entries.

Only ``opsloop init`` and ``opsloop demo`` create a project. Opening a folder that holds
no ``opsloop.toml`` is refused in one line; a command that only computes (a scan, a drift
check of two files) opens a *detached* project instead: default settings, records kept
in memory, nothing written anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from opsloop.audit import AuditKeys, AuditLog, VerifyResult
from opsloop.config import CONFIG_FILE, Config, find_config, load_config, validate_settings
from opsloop.config_files import plugin_env_overrides
from opsloop.errors import ConfigError, OpsloopError
from opsloop.plugins import PluginManager
from opsloop.records import Record
from opsloop.registrations import UNCACHED_HOOKS, Collected, Shadowed, collect_hook
from opsloop.store import RecordStore, record_hash

T = TypeVar("T")


class NoProjectError(ConfigError):
    """There is no opsloop project where one was looked for."""


def locate(path: Path | str | None, environ: Mapping[str, str]) -> tuple[Path | None, Path]:
    """(the config file or None, the folder it was looked for in).

    ``path`` is a folder or a config file; None means ``$OPSLOOP_PROJECT``, else the
    nearest opsloop.toml (or pyproject.toml with ``[tool.opsloop]``) from the cwd up.
    """
    if path is None and environ.get("OPSLOOP_PROJECT"):
        path = environ["OPSLOOP_PROJECT"]
    target = Path(path) if path is not None else Path.cwd()
    if target.is_file() or target.suffix == ".toml":
        if not target.is_file():
            raise NoProjectError(f"{target}: no such config file")
        return target, target.parent
    if path is None:
        return find_config(target), target
    candidate = target / CONFIG_FILE
    if candidate.is_file():
        return candidate, target
    pyproject = target / "pyproject.toml"
    if pyproject.is_file() and b"[tool.opsloop" in pyproject.read_bytes():
        return pyproject, target
    return None, target


def no_project_error(folder: Path, searched_up: bool) -> NoProjectError:
    """The one line a command prints when there is no project to open."""
    folder = folder.resolve() if folder.exists() else folder
    if not folder.exists():
        return NoProjectError(f"no opsloop project at {folder}: the folder does not exist")
    where = "there or in a parent folder" if searched_up else "there"
    return NoProjectError(
        f"no opsloop project at {folder}: no opsloop.toml {where}; create one with "
        f"`opsloop init {folder}` or point --project / OPSLOOP_PROJECT at your project"
    )


class Project:
    """An opened opsloop project. Use :meth:`open` rather than the constructor."""

    def __init__(
        self,
        root: Path,
        config: Config,
        plugins: PluginManager,
        *,
        environ: Mapping[str, str] | None = None,
        detached: bool = False,
    ) -> None:
        self.root = root
        self.config = config
        self.plugins = plugins
        self.environ: dict[str, str] = dict(os.environ if environ is None else environ)
        #: True for a project opened where there is none: defaults, nothing written.
        self.detached = detached
        self.home = (root / config.project.home).resolve()
        self._settings: dict[str, Any] = {}
        self._collected: dict[str, tuple[int, Collected]] = {}
        self._memo: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        path: Path | str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        plugins: PluginManager | None = None,
        start: bool = True,
        detached_ok: bool = False,
    ) -> Project:
        """Open the project at ``path`` (a folder or a config file; default: search up).

        No project there: :class:`NoProjectError`, unless ``detached_ok``, which opens a
        detached project (default settings, ``$OPSLOOP_*`` overrides applied, records in
        memory, nothing written) for commands that only compute.
        """
        env = dict(os.environ if environ is None else environ)
        config_path, folder = locate(path, env)
        if config_path is None and not detached_ok:
            raise no_project_error(folder, searched_up=path is None)
        config = load_config(config_path, env)
        root = (config_path.parent if config_path else Path.cwd()).resolve()
        if plugins is None:
            plugins = PluginManager.from_selection(
                config.plugins.model_dump(), root, env, load_entrypoints=True
            )
        project = cls(root, config, plugins, environ=env, detached=config_path is None)
        if not project.detached:
            private_umask(config.project.share_group)
        if start:
            project.hook.startup(project=project)
        return project

    # ------------------------------------------------------------------ plugins
    @property
    def hook(self) -> Any:
        return self.plugins.hook

    def settings(self, plugin: str) -> Any:
        """The plugin's settings: ``[plugin.<name>]`` plus ``OPSLOOP_PLUGIN__<NAME>__<KEY>``
        variables, validated by the model its PluginInfo names on first use, then kept.

        A plugin without a settings model gets the merged table as a dict.
        """
        if plugin in self._settings:
            return self._settings[plugin]
        raw = dict(self.config.plugin.get(plugin, {}))
        origins: dict[str, str] = {}
        for key, (variable, value) in plugin_env_overrides(self.environ, plugin).items():
            raw[key] = value
            origins[f"plugin.{plugin}.{key}"] = variable
        info = self.plugins.info(plugin)
        model_path = info.config_model if info is not None else None
        if model_path is None:
            self._settings[plugin] = raw
            return raw
        model = _import_attr(model_path, plugin)
        value = validate_settings(
            model,
            raw,
            source=self.config.source,
            prefix=f"plugin.{plugin}",
            origins=origins,
            context={"environ": self.environ, "root": self.root, "source": self.config.source},
        )
        self._settings[plugin] = value
        return value

    def settings_errors(self) -> dict[str, str]:
        """Every loaded plugin's settings checked now: ``{plugin: one-line error}``.

        Settings are otherwise checked when a plugin first reads them; ``opsloop plugins``
        and ``opsloop doctor`` call this to report every problem at once.
        """
        errors: dict[str, str] = {}
        for entry in self.plugins.loaded():
            if entry.info is not None and entry.info.config_model:
                try:
                    self.settings(entry.info.name)
                except OpsloopError as exc:
                    errors[entry.info.name] = str(exc)
        return errors

    def collect(self, hook: str) -> list[Any]:
        """The items every plugin registers through ``hook`` (a ``register_*`` hook), with
        the one rule for equal names (:mod:`opsloop.registrations`); collected once."""
        return list(self._collect(hook).items)

    def collect_owned(self, hook: str) -> list[tuple[str, Any]]:
        """Like :meth:`collect`, each item with the name of the plugin that registered it."""
        found = self._collect(hook)
        return list(zip(found.owners, found.items, strict=True))

    def shadowed(self, hook: str) -> list[Shadowed]:
        """Registrations of ``hook`` left out because another plugin's won their name."""
        return list(self._collect(hook).shadowed)

    def _collect(self, hook: str) -> Collected:
        cached = self._collected.get(hook)
        if cached is not None and cached[0] == self.plugins.generation:
            return cached[1]
        found = collect_hook(self, hook)
        if hook not in UNCACHED_HOOKS:
            self._collected[hook] = (self.plugins.generation, found)
        return found

    def memo(self, key: str, factory: Callable[[], T]) -> T:
        """An object a plugin keeps for as long as this project is open (a registry client,
        a connection pool), made by ``factory`` on first use: plugins need no module caches.
        """
        if key not in self._memo:
            self._memo[key] = factory()
        return self._memo[key]  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> Path:
        """A path under the project home; its folder is created.

        A detached project writes nothing: asking it for a place to write is an error that
        says how to get a project.
        """
        if self.detached:
            raise no_project_error(Path.cwd(), searched_up=True)
        make_home(self.home, self.config.project.share_group)
        target = self.home.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    @property
    def warehouse_path(self) -> Path:
        return self.path(self.config.warehouse.path)

    # ------------------------------------------------------------------ state
    @cached_property
    def audit(self) -> AuditLog:
        if self.detached:
            return _DetachedAuditLog(self.config.audit.actor)
        key_file = self.config.audit.key_file
        keys = AuditKeys.from_environ(
            {**os.environ, **self.environ}, (self.root / key_file) if key_file else ""
        )
        return AuditLog(
            self.path(self.config.audit.path),
            self.config.audit.actor,
            keys=keys,
            on_keyed=self._records_commitment,
            file_mode=0o660 if self.config.project.share_group else 0o600,
        )

    def _records_commitment(self) -> dict[str, Any]:
        """The records stored before the log was keyed, as the ``audit.keyed`` entry
        commits to them (each later record is committed by its own entry)."""
        rows = sorted(self.records.rows())
        text = "".join(f"{rid} {kind} {digest}\n" for rid, kind, digest in rows)
        digest = hashlib.sha256(text.encode()).hexdigest()
        return {"records": {"count": len(rows), "sha256": digest}}

    @cached_property
    def records(self) -> RecordStore:
        if self.detached:
            return RecordStore(None)
        store = RecordStore(self.path(self.config.records.path))
        if self.config.project.share_group and store.path is not None:
            # SQLite creates files 0644 & ~umask: give the group write access too
            for path in store.path.parent.glob(store.path.name + "*"):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o660)
        return store

    def emit(
        self,
        record: Record,
        action: str = "",
        target: str = "",
        *,
        before: Any = None,
        after: Any = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Record:
        """Store a record with its audit entry, then tell every plugin through ``on_record``.

        The entry (``action`` on ``target``; default ``record.<kind>`` on the record id)
        commits to the record's hash; see :meth:`recording` for the order of writes.
        """
        with self.recording(
            record, action, target, before=before, after=after, detail=detail, actor=actor
        ):
            pass
        return record

    @contextlib.contextmanager
    def recording(
        self,
        record: Record,
        action: str = "",
        target: str = "",
        *,
        before: Any = None,
        after: Any = None,
        detail: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> Iterator[Record]:
        """Audit, change, store: the one rule for every state change opsloop makes.

        Inside one record-store transaction (BEGIN IMMEDIATE) the audit entry is written
        first (the intent, committing to the record's hash), then the body of the ``with``
        block makes its change (moves an alias, ...), then the record commits. A failure
        in the block rolls the record back and appends ``<action>.failed``; a crash leaves
        at most an audit entry whose record is missing (reported by ``audit verify``),
        never a stored change without its entry. ``on_record`` runs after the commit.
        """
        action = action or f"record.{record.kind}"
        with self.records.transaction():
            self.audit.append(
                action,
                target or record.id,
                before=before,
                after=after,
                detail=detail,
                actor=actor,
                record={"id": record.id, "kind": record.kind, "sha256": record_hash(record)},
            )
            self.records.add(record)
            try:
                yield record
            except Exception as exc:
                self.audit.append(
                    f"{action}.failed",
                    target or record.id,
                    detail={"error": str(exc)[:500], "record": record.id},
                    actor=actor,
                )
                raise
            self.records.after_commit(lambda: self.hook.on_record(project=self, record=record))

    def verify_audit(self) -> VerifyResult:
        """The audit chain checked, and every stored record against the hash its audit
        entry committed to: an edited, deleted or smuggled-in record row is found."""
        result = self.audit.verify(collect_records=True)
        if not result.ok or self.detached:
            return result
        problem, warnings = check_records(self.records, result)
        warnings = [*result.warnings, *warnings]
        if problem:
            return dataclasses.replace(
                result, ok=False, reason=problem, bad_seq=None, warnings=warnings
            )
        return dataclasses.replace(result, warnings=warnings)

    def close(self) -> None:
        if "records" in self.__dict__:
            self.records.close()


def check_records(store: RecordStore, result: VerifyResult) -> tuple[str, list[str]]:
    """(the first record problem or "", warnings): every row's hash against the audit
    entry that committed to it; rows from before keying against the ``audit.keyed`` entry."""
    warnings: list[str] = []
    if store.triggers_were_missing or store.meta("triggers_missing_at"):
        warnings.append(
            "the records store's append-only triggers were dropped (found missing at "
            f"{store.meta('triggers_missing_at') or 'this open'}; recreated): rows are "
            "checked against the audit log below"
        )
    committed = dict(result.records)
    loose: list[tuple[str, str, str]] = []
    for rid, kind, digest in store.rows():
        entry = committed.pop(rid, None)
        if entry is None:
            loose.append((rid, kind, digest))
        elif entry[0] != digest:
            return (
                f"record {rid} ({kind}) was changed after it was stored: its row no longer "
                f"matches the hash audit entry {entry[1]} committed to",
                warnings,
            )
    if committed:
        rid, (_, seq) = next(iter(committed.items()))
        return (
            f"record {rid}, committed by audit entry {seq}, is missing from the records store "
            f"({len(committed)} missing): deleted, or a crash between the entry and the commit",
            warnings,
        )
    if not result.log_id:
        if loose:
            warnings.append(
                f"{len(loose)} records are not yet committed to the audit log (it is unkeyed);"
                " the next audited change commits them"
            )
        return "", warnings
    loose.sort()
    text = "".join(f"{rid} {kind} {digest}\n" for rid, kind, digest in loose)
    before = result.records_before
    if len(loose) != before.get("count", 0) or (
        loose and hashlib.sha256(text.encode()).hexdigest() != before.get("sha256")
    ):
        shown = ", ".join(rid for rid, _, _ in loose[:3])
        return (
            f"{len(loose)} record rows have no audit entry of their own, but "
            f"{before.get('count', 0)} were stored before the log was keyed: rows were "
            f"added, edited or deleted outside opsloop (unaudited rows among: {shown or 'none'})",
            warnings,
        )
    return "", warnings


def make_home(home: Path, shared: bool = False) -> None:
    """Create the project home private (0700), or group-shared (2770) when ``shared``."""
    if home.is_dir():
        return
    mode = 0o2770 if shared else 0o700
    home.mkdir(parents=True, exist_ok=True, mode=mode)
    os.chmod(home, mode)


def private_umask(shared: bool = False) -> None:
    """Set the process umask so everything written under the home (records, MLflow store,
    warehouse, prediction log, notebooks, written by opsloop or by a vendor library) is
    private: 0600 files and 0700 folders (0660 / 0770 when ``shared``)."""
    os.umask(0o007 if shared else 0o077)


class _DetachedAuditLog(AuditLog):
    """The audit log of a detached project: entries are kept in memory, never written."""

    def __init__(self, actor: str = "") -> None:
        super().__init__(Path(os.devnull), actor)
        self._memory: list[dict[str, Any]] = []

    def append(self, action: str, target: str, **kwargs: Any) -> dict[str, Any]:
        entry = {"seq": len(self._memory) + 1, "action": action, "target": target, **kwargs}
        self._memory.append(entry)
        return entry

    def entries(self) -> Any:
        return iter(self._memory)

    def verify(self, *, collect_records: bool = False) -> VerifyResult:
        return VerifyResult(True, len(self._memory))


def _import_attr(dotted: str, plugin: str) -> Any:
    """``"pkg.module:Class"`` imported; a broken path is the plugin's fault, said so."""
    import importlib

    module_name, _, attr = dotted.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise OpsloopError(
            f"plugin '{plugin}' names settings model '{dotted}', which cannot be imported: "
            f"{exc}; reinstall or fix the plugin"
        ) from None
