"""A hook's implementations called one at a time, through pluggy's public API.

The after-predict thread calls ``after_predict`` once per request: a pluggy call per
request (~1.5 µs) would cost more than the rest of the thread's work for it. So the
implementations' functions (``HookCaller.get_hookimpls()``) are called directly, unless
``OPSLOOP_TRACE_HOOKS`` traces hook calls: then each implementation is called through its
own pluggy subset caller, and the trace shows every call. Either way each implementation
runs, in pluggy's order, even when another raised, and each error is reported on its own.
A hook with a wrapper implementation is called as pluggy calls it (the wrapper wraps them
all), so an error stops the implementations after it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from opsloop.plugins import PluginManager


class ImplCall(NamedTuple):
    """One implementation to call: ``function(value)``, or ``function()`` without ``takes_arg``."""

    function: Callable[..., Any]
    takes_arg: bool
    plugin: str  # the plugin's name, for error messages


def has_impls(hook: Any, name: str) -> bool:
    """True when some plugin implements hook ``name``."""
    caller = getattr(hook, name, None)
    try:
        return bool(caller.get_hookimpls()) if caller is not None else False
    except Exception:  # noqa: BLE001 - unknown hook objects: call them to be safe
        return True


class OneByOne:
    """The implementations of one single-argument hook, as :class:`ImplCall` s in call order.

    :meth:`calls` is cheap when nothing changed (one list comparison), so a caller asks for
    it on every round and sees plugins registered since.
    """

    def __init__(self, plugins: PluginManager, name: str) -> None:
        self.plugins = plugins
        self.name = name
        self.caller = getattr(plugins.hook, name)
        spec = self.caller.spec
        if spec is None or len(spec.argnames) != 1:
            raise TypeError(f"hook {name!r} does not take exactly one argument")
        self.argname: str = spec.argnames[0]
        self._impls: list[Any] | None = None
        self._calls: list[ImplCall] = []

    def calls(self) -> list[ImplCall]:
        impls = self.caller.get_hookimpls()
        if impls != self._impls:
            self._impls = impls
            self._calls = self._build(impls)
        return self._calls

    def _build(self, impls: list[Any]) -> list[ImplCall]:
        if any(impl.hookwrapper or impl.wrapper for impl in impls):
            return [ImplCall(self._through(self.caller), True, "(wrapped)")]
        ordered = list(reversed(impls))  # pluggy calls the last of get_hookimpls() first
        if not self.plugins.tracing:
            return [ImplCall(i.function, bool(i.argnames), i.plugin_name) for i in ordered]
        pm = self.plugins.pm
        calls = []
        for impl in ordered:
            others = [i.plugin for i in impls if i is not impl]
            subset = pm.subset_hook_caller(self.name, remove_plugins=others)
            calls.append(ImplCall(self._through(subset), True, impl.plugin_name))
        return calls

    def _through(self, caller: Any) -> Callable[[Any], Any]:
        """``caller`` (a pluggy hook caller) as a one-argument function."""
        argname = self.argname

        def call(value: Any) -> Any:
            return caller(**{argname: value})

        return call
