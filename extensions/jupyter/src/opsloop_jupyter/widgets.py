"""ipywidgets for runbooks: a launcher form, an approval, an incident timeline, plots.

Every widget calls the same core functions as the CLI: :func:`opsloop.runbooks.coerce_parameters`
checks the launcher's fields, :func:`opsloop.actions.perform` applies an approved action and
audits who approved, :mod:`opsloop.respond` folds an incident's state. Secret parameters
are password fields whose value is cleared as soon as it is read, so it is never left in
the widget state a notebook may save; errors never echo a secret (the core says "a secret
str" instead of the value).

In a non-interactive run (papermill, ``opsloop runbook run``) no one can click:
:func:`approve` then applies an action only when the runbook's approval parameter names an
approver, and otherwise records a dry run.
"""

from __future__ import annotations

import getpass
import html
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import ipywidgets as w

from opsloop.errors import OpsloopError, ParameterError

if TYPE_CHECKING:
    from opsloop.actions import Action, ActionResult
    from opsloop.project import Project
    from opsloop.records import RunbookRun
    from opsloop.runbooks import ParameterSpec


def _project(project: Project | None) -> Project:
    if project is not None:
        return project
    from opsloop.project import Project

    return Project.open(os.environ.get("OPSLOOP_PROJECT") or None)


def jupyter_user() -> str:
    """Who is clicking: the JupyterHub user when there is one, else the OS user."""
    return os.environ.get("JUPYTERHUB_USER") or getpass.getuser()


def interactive() -> bool:
    """True in a Jupyter kernel (a person may click); False in a plain script or IPython.

    Under papermill the kernel is a Jupyter kernel too, but no one clicks: a widget shown
    there changes nothing, which is what an unattended run must do.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def unattended() -> bool:
    """True when no one can click: opsloop's papermill run (``$OPSLOOP_RUN_ID`` is set in
    its kernel) or no Jupyter kernel at all."""
    from opsloop.runbooks import RUN_ID_ENV

    return bool(os.environ.get(RUN_ID_ENV)) or not interactive()


def incident_subject(project: Project, incident_id: str) -> str:
    """What an incident is about (a model name, a table), as recorded when it opened."""
    from opsloop.respond import incident_view

    return str(incident_view(project, incident_id).incident.subject)


# --------------------------------------------------------------------------- launcher
class RunbookLauncher(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """A form generated from a runbook's typed parameters; Run checks them as the CLI does.

    ``str`` and ``list``/``dict``/numbers are text fields checked by the core on Run (a
    wrong type is refused beside its field), ``bool`` a checkbox, a secret parameter a
    password field whose value is cleared once read.
    """

    def __init__(
        self,
        runbook: str,
        *,
        project: Project | None = None,
        incident_id: str = "",
        values: dict[str, Any] | None = None,
        on_run: Callable[[RunbookRun], None] | None = None,
    ) -> None:
        from opsloop.runbooks import get_runbook, inspect_parameters

        self.project = _project(project)
        self.spec = get_runbook(self.project, runbook)
        self.params: dict[str, ParameterSpec] = inspect_parameters(self.spec)
        self.incident_id = incident_id
        self._on_run = on_run
        given = dict(values or {})
        if incident_id and "incident_id" in self.params:
            given.setdefault("incident_id", incident_id)
        if "project_dir" in self.params:
            given.setdefault("project_dir", str(self.project.root))
        self.fields: dict[str, w.ValueWidget] = {}
        self.errors: dict[str, w.HTML] = {}
        self._secrets: dict[str, str] = {}  # kernel memory only: never a widget trait
        rows: list[w.Widget] = [
            w.HTML(f"<b>{html.escape(self.spec.name)}</b> — {html.escape(self.spec.summary)}")
        ]
        for p in self.params.values():
            field = self._field(p, given.get(p.name, p.default))
            error = w.HTML("", layout=w.Layout(margin="0 0 0 8px"))
            error.add_class("opsloop-field-error")
            field.add_class(f"opsloop-param-{p.name}")
            self.fields[p.name], self.errors[p.name] = field, error
            label = p.name + (" *" if p.required else "")
            rows.append(
                w.HBox(
                    [w.Label(label, layout=w.Layout(width="140px")), field, error],
                    layout=w.Layout(align_items="center"),
                )
            )
        self.run_button = w.Button(description="Run runbook", button_style="primary")
        self.run_button.add_class("opsloop-run")
        self.run_button.on_click(lambda _b: self.run())
        self.status = w.HTML("")
        self.status.add_class("opsloop-status")
        rows += [self.run_button, self.status]
        super().__init__(rows)
        self.add_class("opsloop-launcher")

    def _field(self, p: ParameterSpec, value: Any) -> w.ValueWidget:
        secret = p.secret or self._is_secret(p.name)
        tip = p.help or p.type
        if secret:  # never prefilled: a default secret is not shown either
            box = w.Password(
                value="",
                placeholder=f"{p.type} (secret)",
                description_tooltip=tip,
                continuous_update=False,  # one sync when the field is left, not per key
            )
            box.observe(lambda change, name=p.name: self._take_secret(name, change), "value")
            return box
        if p.type == "bool":
            return w.Checkbox(value=bool(value), indent=False, description_tooltip=tip)
        text = "" if value is None else (value if isinstance(value, str) else _as_text(value))
        return w.Text(value=text, placeholder=p.type, description_tooltip=tip)

    def _take_secret(self, name: str, change: dict[str, Any]) -> None:
        """A secret arrived from the browser: keep it in kernel memory, empty the field.

        The widget's value is cleared at once, so the secret is not in the widget state a
        saved notebook holds, nor shown again; the placeholder says it was received.
        """
        value = change["new"]
        if not value:
            return
        self._secrets[name] = value
        field = self.fields.get(name)
        if field is not None:
            field.value = ""
            field.placeholder = "secret received (kept in memory, not saved)"

    def _is_secret(self, name: str) -> bool:
        from opsloop.redact import is_secret_key

        return name in self.spec.secret_parameters or is_secret_key(name)

    def raw_values(self) -> dict[str, Any]:
        """The fields' values as typed (secrets read, then cleared from the widgets)."""
        raw: dict[str, Any] = {}
        for name, field in self.fields.items():
            value = field.value
            if isinstance(field, w.Password):
                value = self._secrets.pop(name, "") or value  # used once, then forgotten
                field.value = ""
                field.placeholder = f"{self.params[name].type} (secret)"
            if isinstance(value, str) and value == "" and not self.params[name].required:
                continue
            raw[name] = value
        return raw

    def check(self, raw: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The parameters converted by the core's checks, or None with errors beside fields."""
        from opsloop.runbooks import coerce_parameters

        raw = self.raw_values() if raw is None else raw
        ok = True
        for name in self.fields:
            self.errors[name].value = ""
            if name not in raw:
                continue
            try:
                coerce_parameters(self.spec, {name: raw[name]})
            except ParameterError as exc:
                if f"'{name}'" in str(exc) and "missing required" not in str(exc):
                    self.errors[name].value = _error_html(str(exc))
                    ok = False
        for name, p in self.params.items():
            if p.required and raw.get(name) in (None, ""):
                self.errors[name].value = _error_html(f"'{name}' is required ({p.type})")
                ok = False
        if not ok:
            self.status.value = _error_html("fix the fields marked in red")
            return None
        try:
            checked: dict[str, Any] = coerce_parameters(self.spec, raw)
            return checked
        except ParameterError as exc:
            self.status.value = _error_html(str(exc))
            return None

    def run(self) -> RunbookRun | None:
        """Check the form, then run the runbook as ``opsloop runbook run`` does."""
        from opsloop.runbooks import run_runbook

        raw = self.raw_values()
        secrets = [n for n in raw if self._is_secret(n)]
        checked = self.check(raw)
        if checked is None:
            return None
        self.status.value = f"running {html.escape(self.spec.name)} ..."
        try:
            run = run_runbook(
                self.project,
                self.spec.name,
                checked,
                incident_id=self.incident_id or None,
                secret_parameters=secrets,
            )
        except OpsloopError as exc:
            self.status.value = _error_html(str(exc))
            return None
        colour = "#1b7f3b" if run.status == "succeeded" else "#b00020"
        self.status.value = (
            f'<span style="color:{colour}">{run.status}</span>: run {html.escape(run.id)} '
            f"<code>{html.escape(run.output_path)}</code>"
            + (f"<br>{html.escape(run.error or '')}" if run.error else "")
        )
        if self._on_run is not None:
            self._on_run(run)
        return run


def _as_text(value: Any) -> str:
    import json

    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def _error_html(message: str) -> str:
    return f'<span style="color:#b00020">{html.escape(message)}</span>'


# --------------------------------------------------------------------------- approval
class ApprovalWidget(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """What an action will change, and a button that approves and applies it.

    The click calls :func:`opsloop.actions.perform` with the Jupyter user as approver: an
    Approval record and an ``action.approve`` audit entry are written before the change.
    """

    def __init__(
        self, action: Action, *, project: Project | None = None, approver: str = ""
    ) -> None:
        self.project = _project(project)
        self.action = action
        self.approver = approver or jupyter_user()
        self.result: ActionResult | None = None
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(action.before.get(k)))}</td>"
            f"<td>{html.escape(str(action.after.get(k)))}</td></tr>"
            for k in dict.fromkeys([*action.before, *action.after])
        )
        plan = (
            f"<b>{html.escape(action.summary)}</b><br>"
            f"<code>{html.escape(action.name)}</code> on <code>{html.escape(action.target)}</code>"
            + (f"<br>reason: {html.escape(action.reason)}" if action.reason else "")
            + (
                "<table><tr><th></th><th>before</th><th>after</th></tr>" + rows + "</table>"
                if rows
                else ""
            )
        )
        self.button = w.Button(
            description=f"Approve as {self.approver}",
            button_style="danger" if action.destructive else "warning",
            layout=w.Layout(width="auto"),
        )
        self.button.add_class("opsloop-approve")
        self.button.on_click(lambda _b: self.approve())
        self.status = w.HTML("not approved: nothing has changed")
        self.status.add_class("opsloop-approval-status")
        super().__init__([w.HTML(plan), self.button, self.status])
        self.add_class("opsloop-approval")

    def approve(self) -> ActionResult:
        """Approve (as the Jupyter user) and apply; audited by opsloop.actions.perform."""
        from opsloop.actions import perform

        self.button.disabled = True
        self.result = perform(self.project, self.action, approved_by=self.approver)
        self.status.value = html.escape(self.result.describe())
        return self.result

    def dry_run(self, hint: str = "") -> ActionResult:
        """No one can click (an unattended run): record a dry run and say how to apply it."""
        from opsloop.actions import perform

        self.button.disabled = True
        self.button.description = "Approval needs approved_by (unattended run)"
        self.result = perform(self.project, self.action)
        self.status.value = html.escape(self.result.describe()) + (
            f"<br>{html.escape(hint)}" if hint else ""
        )
        return self.result

    @property
    def outcome(self) -> ActionResult:
        """What happened so far: the applied or dry-run result, else (not clicked yet) a
        pending dry run that is not audited: nothing has changed."""
        from opsloop.actions import ActionResult

        return self.result if self.result is not None else ActionResult(self.action, "dry_run")


def approval_gate(
    action: Action, *, approved_by: str = "", project: Project | None = None, hint: str = ""
) -> ApprovalWidget:
    """The approval step of a shipped runbook: an :class:`ApprovalWidget` in every case.

    ``approved_by`` given: applied now with that approver (audited). An unattended run
    (:func:`unattended`) without it: a dry run, audited as ``action.dry_run``, the widget
    saying so (``hint``: how to apply). A person in JupyterLab: the widget waits for the
    click, which approves as the Jupyter user; :attr:`ApprovalWidget.outcome` is what
    happened so far. Display it (``display(gate)``) to show the plan.
    """
    approver = approved_by.strip()
    gate = ApprovalWidget(action, project=project, approver=approver)
    if approver or not action.destructive:
        gate.approve()
    elif unattended():
        gate.dry_run(hint)
    return gate


def approve(
    action: Action, *, approved_by: str = "", project: Project | None = None
) -> ActionResult | ApprovalWidget:
    """Stand in front of a destructive action in a runbook.

    ``approved_by`` given (the runbook's approval parameter): apply it now, audited. Else,
    in a Jupyter kernel: an :class:`ApprovalWidget` — nothing changes until a person clicks
    it (under papermill no one does). Else (a script): a dry run — nothing changes, the plan
    is audited as ``action.dry_run``.
    """
    from opsloop.actions import perform

    project = _project(project)
    if approved_by.strip() or not action.destructive:
        return perform(project, action, approved_by=approved_by)
    if interactive():
        return ApprovalWidget(action, project=project)
    return perform(project, action)


def acknowledge_action(project: Project, incident_id: str, note: str = "") -> Action:
    """An Action that acknowledges an incident (respond.update_incident), for approvals."""
    from opsloop.actions import Action
    from opsloop.respond import incident_view, update_incident

    view = incident_view(project, incident_id)
    return Action(
        name="incident.acknowledge",
        target=incident_id,
        summary=f"acknowledge incident {incident_id} ({view.incident.title})",
        before={"status": view.status},
        after={"status": "acknowledged"},
        run=lambda: update_incident(project, incident_id, "acknowledged", note=note),
        destructive=True,
        reason=note,
    )


# --------------------------------------------------------------------------- incident view
def incident_timeline(project: Project, incident_id: str) -> list[dict[str, str]]:
    """Signals, alerts, the incident, its updates, runbook runs and audit entries, by time."""
    from opsloop.records import RunbookRun, Signal
    from opsloop.respond import incident_view

    view = incident_view(project, incident_id)
    events: list[dict[str, str]] = []
    inc = view.incident
    events.append(
        {
            "at": inc.created_at,
            "kind": "incident",
            "id": inc.id,
            "what": f"{inc.severity}: {inc.title}",
        }
    )
    for alert_id in inc.alert_ids:
        alert = project.records.get(alert_id)
        events.append(
            {
                "at": alert.created_at,
                "kind": "alert",
                "id": alert.id,
                "what": getattr(alert, "summary", ""),
            }
        )
        for sig_id in getattr(alert, "signal_ids", []):
            sig = project.records.get(sig_id)
            if isinstance(sig, Signal):
                events.append(
                    {
                        "at": sig.created_at,
                        "kind": "signal",
                        "id": sig.id,
                        "what": f"{sig.type} {sig.subject}: {sig.summary}",
                    }
                )
    for u in view.updates:
        what = (
            (u.status or "note")
            + (f" — {u.note}" if u.note else "")
            + (f" by {u.actor}" if u.actor else "")
        )
        events.append({"at": u.created_at, "kind": "update", "id": u.id, "what": what})
    for run in project.records.list(RunbookRun):
        if run.incident_id == incident_id:
            events.append(
                {
                    "at": run.created_at,
                    "kind": "runbook run",
                    "id": run.id,
                    "what": f"{run.runbook}: {run.status}",
                }
            )
    for entry in project.audit.entries():
        if entry.get("target") == incident_id:
            events.append(
                {
                    "at": str(entry.get("at") or entry.get("time") or ""),
                    "kind": "audit",
                    "id": str(entry.get("action", "")),
                    "what": f"by {entry.get('actor', '')}",
                }
            )
    return sorted(events, key=lambda e: e["at"])


class IncidentView(w.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """An incident's timeline: signals, alerts, updates, runbook runs, audit entries."""

    def __init__(self, incident_id: str, *, project: Project | None = None) -> None:
        self.project = _project(project)
        self.incident_id = incident_id
        self.table = w.HTML()
        self.refresh_button = w.Button(description="Refresh", layout=w.Layout(width="auto"))
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([self.table, self.refresh_button])
        self.add_class("opsloop-incident-view")
        self.refresh()

    def refresh(self) -> None:
        from opsloop.respond import incident_view

        view = incident_view(self.project, self.incident_id)
        rows = "".join(
            f"<tr><td>{html.escape(e['at'][:19])}</td><td>{html.escape(e['kind'])}</td>"
            f"<td><code>{html.escape(e['id'])}</code></td><td>{html.escape(e['what'])}</td></tr>"
            for e in incident_timeline(self.project, self.incident_id)
        )
        self.table.value = (
            f"<b>{html.escape(view.incident.title)}</b> — status <b>{html.escape(view.status)}</b>"
            "<table class='opsloop-timeline'>"
            f"<tr><th>time</th><th>what</th><th>id</th><th></th></tr>{rows}</table>"
        )


# --------------------------------------------------------------------------- plots
def _signal_series(project: Project, model: str, types: tuple[str, ...]) -> list[Any]:
    from opsloop.records import Signal

    return [
        s
        for s in project.records.list(Signal)
        if s.subject == model and s.type in types and s.value is not None
    ]


def _plot(signals: list[Any], title: str, ylabel: str) -> Any:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3))
    if not signals:
        ax.text(
            0.5, 0.5, "no signals recorded yet", ha="center", va="center", transform=ax.transAxes
        )
    else:
        xs = list(range(len(signals)))
        ax.plot(xs, [s.value for s in signals], marker="o", label=ylabel)
        thresholds = [s.threshold for s in signals if s.threshold is not None]
        if thresholds:
            ax.axhline(thresholds[-1], color="#b00020", linestyle="--", label="threshold")
        ax.set_xticks(xs, [s.created_at[5:16] for s in signals], rotation=30, fontsize=7)
        ax.legend()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    plt.close(fig)
    return fig


def drift_plot(model: str, *, project: Project | None = None) -> Any:
    """A matplotlib figure of a model's drift signals over time, with the threshold."""
    project = _project(project)
    return _plot(_signal_series(project, model, ("drift",)), f"drift: {model}", "drift score")


def quality_plot(model: str, *, project: Project | None = None) -> Any:
    """A matplotlib figure of a model's quality and data-quality signals over time."""
    project = _project(project)
    series = _signal_series(project, model, ("model_quality", "data_quality"))
    return _plot(series, f"quality: {model}", "quality")
