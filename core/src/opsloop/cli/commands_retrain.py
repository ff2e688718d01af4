"""`opsloop retrain NAME`: run a model's retraining policy by hand, or list its runs."""

from __future__ import annotations

import typer

from opsloop.cli import context


def retrain_command(
    name: str = typer.Argument(..., help="The model whose [respond.retrain.NAME] policy runs."),
    approved_by: str = typer.Option(
        "",
        "--approved-by",
        help="Who approves the alias moves (challenger, promote, roll back); recorded. "
        "Default: the policy when auto_approve is true, else the moves are dry runs.",
    ),
    runs: bool = typer.Option(False, "--runs", help="List the model's past runs; run nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of lines."),
) -> None:
    """Retrain NAME, evaluate it, canary it as challenger, then promote or roll back."""
    from opsloop.retrain import describe, list_runs, policy_for, retrain

    project = context.open_project()
    console = context.console
    if runs:
        found = list_runs(project, name)
        if as_json:
            context.print_json([r.to_dict() for r in found])
            return
        console.print(f"{len(found)} retraining run(s) of {name}", style="bold", highlight=False)
        for run in found:
            console.print(describe(run), highlight=False, markup=False, soft_wrap=True)
        return
    policy_for(project, name)  # a missing policy is one line before anything runs
    run = retrain(project, name, approved_by=approved_by)
    if as_json:
        context.print_json(run.to_dict())
    else:
        for step in run.steps:
            extra = step.get("reason") or step.get("error") or ""
            console.print(
                f"  {step['step']:<10} {step['status']:<9} {step['seconds']:>7.2f} s  {extra}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        console.print(describe(run), highlight=False, markup=False, soft_wrap=True)
    if run.verdict not in ("promoted", "dry_run"):
        raise typer.Exit(1)


def register_cli(cli: typer.Typer) -> None:
    cli.command("retrain")(retrain_command)
