"""Built-in plugin: ``opsloop model ...`` and the promotion gates ``[registry.gate]`` and
``[registry.readiness]`` ask for.

The evaluation gate scores the candidate (and the alias's current holder) on a named
holdout table, read through the ``read_dataset`` hook and loaded hash-checked through the
``model_store`` hook, so it works with any ingest and registry plugin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    import typer

    from opsloop.project import Project


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="registry",
        stage="registry",
        summary="model commands; promotion gates: holdout thresholds, no regression, readiness",
    )


@hookimpl
def register_commands(cli: typer.Typer) -> None:
    from opsloop.cli.commands_model import register_cli

    register_cli(cli)


@hookimpl
def register_promotion_gates(project: Project) -> list[Any]:
    """Gates for the configured holdout evaluation and readiness requirement (maybe none)."""
    settings = project.config.registry
    gates: list[Any] = []
    if settings.gate is not None:
        from opsloop.evaluation import make_gates

        gates.extend(make_gates(project, settings.gate))
    if settings.readiness.required_for:
        from opsloop.readiness import ReadinessGate

        gates.append(ReadinessGate(project, settings.readiness.required_for))
    return gates


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    """`opsloop doctor`: the gate's metric names are known (the holdout is read at promotion)."""
    gate = project.config.registry.gate
    if gate is None:
        return [CheckResult("promotion gate", True, "no gate configured", "registry")]
    from opsloop.errors import ConfigError
    from opsloop.evaluation import LOWER_IS_BETTER, check_metric_names

    try:
        check_metric_names(list(gate.thresholds), "[registry.gate] thresholds")
        check_metric_names(list(gate.max_regression), "[registry.gate] max_regression")
    except ConfigError as exc:
        return [CheckResult("promotion gate", False, str(exc), "registry")]
    figures = ", ".join(
        [
            f"{k} {'<=' if k in LOWER_IS_BETTER else '>='} {v:g}"
            for k, v in sorted(gate.thresholds.items())
        ]
        + [f"{k} regression <= {v:g}" for k, v in sorted(gate.max_regression.items())]
    )
    return [
        CheckResult(
            "promotion gate",
            True,
            f"holdout {gate.holdout} ({figures or 'evaluation only'}) for @"
            + ", @".join(gate.aliases),
            "registry",
        )
    ]
