"""Collecting ``register_*`` hooks: one rule for every list plugins contribute to.

The rule: within one hook, names are unique. When two plugins register the same name, the
plugin whose hooks run first keeps it — the one registered later (a project's local plugin
over an installed one, an installed one over a built-in) or named earlier in
``[plugins] order`` — and the other is *shadowed*: left out, and reported by
``opsloop plugins`` and ``opsloop doctor``. Lists are collected once per opened project
(again only after a plugin is registered or removed; runbooks, which are files, every
time), so plugins need no caches of their own.

A plugin whose ``register_*`` hook raises is a one-line :class:`PluginError` naming the
plugin and the hook: a guard that silently lost a scanner would fail open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError, PluginError, one_line

if TYPE_CHECKING:
    from opsloop.project import Project


def _name(item: Any) -> str | None:
    """An item's name: its ``name`` attribute, or a callable's own name (promotion gates)."""
    name = getattr(item, "name", None)
    if isinstance(name, str):
        return name
    if callable(item):
        return str(getattr(item, "__qualname__", None) or type(item).__name__)
    return None


#: The register_* hooks collected with the rule above, and how an item is named.
#: ``register_checks`` is absent: doctor keeps every result and asks afresh each time.
NAMED_HOOKS: dict[str, Callable[[Any], str | None]] = {
    "register_sources": _name,
    "register_data_contracts": _name,
    "register_drift_detectors": _name,
    "register_scanners": _name,
    "register_alert_rules": _name,
    "register_notifiers": _name,
    "register_notifier_types": _name,
    "register_runbooks": _name,
    "register_promotion_gates": _name,
    "register_job_kinds": _name,
}
#: Hooks whose answers change while a project is open, so they are collected afresh on every
#: call: runbooks are notebook files a person adds while a server or JupyterLab runs, and a
#: promotion gate reads its holdout when it is made (a long-running server must see a
#: reloaded holdout at its next promotion).
UNCACHED_HOOKS = frozenset({"register_runbooks", "register_promotion_gates"})


@dataclass(frozen=True)
class Shadowed:
    """A registration left out because a plugin called earlier registered the same name."""

    hook: str
    name: str
    kept_from: str  # the plugin whose item is used
    dropped_from: str  # the plugin whose item is left out

    def __str__(self) -> str:
        what = self.hook.removeprefix("register_").rstrip("s").replace("_", " ")
        return (
            f"{what} '{self.name}' of plugin '{self.dropped_from}' is shadowed by plugin "
            f"'{self.kept_from}' (see [plugins] order)"
        )


@dataclass
class Collected:
    """One hook's items in call order (the winners), with who registered each."""

    items: list[Any]
    owners: list[str]
    shadowed: list[Shadowed]


def call_each(
    project: Project, hook: str, **kwargs: Any
) -> Iterator[tuple[str, list[Any] | BaseException]]:
    """``(plugin, its answers)`` for every plugin implementing ``hook``, in call order;
    a plugin that raised gives ``(plugin, the exception)`` and the rest still run.

    Each plugin is called through pluggy's public ``subset_hook_caller``, so hook tracing
    sees every call and a failure is pinned on the plugin that raised.
    """
    caller = getattr(project.hook, hook)
    impls = [i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
    manager = project.plugins.pm
    everyone = [i.plugin for i in impls]
    # pluggy calls tryfirst, then the rest last-registered first, then trylast: the reverse
    # of get_hookimpls().
    for impl in reversed(impls):
        single = manager.subset_hook_caller(hook, [p for p in everyone if p is not impl.plugin])
        try:
            yield impl.plugin_name, list(single(project=project, **kwargs))
        except Exception as exc:  # noqa: BLE001 - handed to the caller, pinned on the plugin
            yield impl.plugin_name, exc


def collect_hook(project: Project, hook: str) -> Collected:
    """Call ``hook`` plugin by plugin (in pluggy's call order) and apply the name rule."""
    key = NAMED_HOOKS.get(hook)
    items: list[Any] = []
    owners: list[str] = []
    shadowed: list[Shadowed] = []
    seen: dict[str, str] = {}
    for plugin, answers in call_each(project, hook):
        if isinstance(answers, OpsloopError):
            raise answers
        if isinstance(answers, BaseException):
            raise PluginError(
                f"plugin '{plugin}' failed in {hook}: {one_line(answers)} "
                f"(disable it with OPSLOOP_DISABLE_PLUGINS={plugin})"
            ) from None
        for answer in answers:
            for item in answer or ():
                name = key(item) if key is not None else None
                if name is not None and name in seen:
                    shadowed.append(Shadowed(hook, name, seen[name], plugin))
                    continue
                if name is not None:
                    seen[name] = plugin
                items.append(item)
                owners.append(plugin)
    return Collected(items, owners, shadowed)
