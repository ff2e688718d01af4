"""Model cards: what a version is for, what it was made from, how it was evaluated.

`opsloop model card NAME [VERSION]` writes the card as Markdown and JSON. The fields are
the ones the EU AI Act's technical documentation (Annex IV) and the NIST AI RMF 1.0 ask
for; :data:`FIELDS` maps each one. The card is built only from what the registry, the
record store and the audit log hold: a field nobody recorded is listed under "gaps" with
how to fill it, never invented.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError
from opsloop.names import safe_name

if TYPE_CHECKING:
    from opsloop.project import Project

CARD_FORMAT = 1

#: Governance metadata a person sets (``opsloop model meta``): key -> (title, question).
GOVERNANCE: dict[str, tuple[str, str]] = {
    "owner": ("Owner", "the accountable person for this model (name and contact)"),
    "intended_use": ("Intended use", "what the model is for, for whom, in which setting"),
    "limitations": ("Limitations", "known limits, out-of-scope uses, foreseeable misuse"),
    "risk_class": (
        "Risk class",
        "the risk classification (e.g. EU AI Act: minimal, limited, high)",
    ),
    "human_oversight": ("Human oversight", "how people oversee, override or stop the model"),
}


@dataclass(frozen=True)
class Field:
    """One card field and where the frameworks ask for it."""

    key: str
    title: str
    eu_ai_act: str
    nist_ai_rmf: str


FIELDS: tuple[Field, ...] = (
    Field("model", "Model and version", "Annex IV 1(a), 1(c)", "GOVERN 1.6"),
    Field("owner", "Owner", "Annex IV 1(a); Art. 17(1)(m)", "GOVERN 2.1"),
    Field("intended_use", "Intended use", "Annex IV 1(a); Art. 13(3)(b)(i)", "MAP 1.1"),
    Field("risk_class", "Risk class", "Art. 6, Annex III; Annex IV 5", "MAP 1.5, GOVERN 1.3"),
    Field("limitations", "Limitations", "Annex IV 3; Art. 13(3)(b)(ii)-(iii)", "MAP 2.2"),
    Field("human_oversight", "Human oversight", "Annex IV 2(e), 3; Art. 14", "MAP 3.5"),
    Field("training_data", "Training data", "Annex IV 2(d)", "MAP 4.1, MEASURE 2.1"),
    Field("lineage", "Lineage and code version", "Annex IV 2(a), 2(b), 6", "GOVERN 1.6, MAP 4.1"),
    Field("parameters", "Parameters", "Annex IV 2(b)", "MEASURE 2.1"),
    Field("training_metrics", "Training metrics", "Annex IV 2(g), 4", "MEASURE 2.3"),
    Field("evaluation", "Evaluation", "Annex IV 2(g), 3, 4", "MEASURE 2.1, MEASURE 2.3"),
    Field("security", "Security and load evidence", "Annex IV 2(h); Art. 15", "MEASURE 2.7"),
    Field("signature", "Inputs and outputs", "Annex IV 1(b), 3", "MAP 2.1"),
    Field("environment", "Environment", "Annex IV 1(c), 1(e)", "MAP 4.1"),
    Field("integrity", "Artifact integrity", "Annex IV 2(h); Art. 15(5)", "MEASURE 2.7"),
    Field(
        "deployment", "Deployment and rollback", "Annex IV 6, 9; Art. 72", "MANAGE 2.4, MANAGE 4.1"
    ),
)


def _verdict(passed: bool | None) -> str | None:
    """ "passed", "failed" or None (not a ``passed`` key: redaction masks keys like it)."""
    return {True: "passed", False: "failed", None: None}[passed]


def _gap(field: str, why: str, fix: str) -> dict[str, str]:
    return {"field": field, "why": why, "fix": fix}


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()}


def build_card(project: Project, name: str, version: str | None = None) -> dict[str, Any]:
    """The card of ``name`` (default: the @champion, else the latest version) as a dict."""
    from opsloop import readiness, registry
    from opsloop.records import utcnow
    from opsloop.redact import redact

    store = registry.get_store(project)
    if version is None:
        current = registry.current_version(project, name, "champion")
        version = current or "latest"
    ref = store.resolve(name, version)
    name, version = ref.name, ref.version
    prov = registry.governance(store, "a model card").provenance(ref)
    meta = registry.metadata(project, name, version)
    gaps: list[dict[str, str]] = []
    meta_cmd = f"opsloop model meta {name}"

    card: dict[str, Any] = {
        "card_format": CARD_FORMAT,
        "generated_at": utcnow(),
        "generated_by": project.audit.actor,
        "model": {
            "name": name,
            "version": version,
            "uri": ref.uri,
            "store": ref.store,
            "aliases": list(ref.aliases),
            "registered_at": prov.get("registered_at") or None,
            "registered_by": prov.get("registered_by") or None,
            "run_id": prov.get("run_id") or ref.run_id,
            "imported_from": prov.get("imported_from") or None,
        },
    }
    for key, (title, question) in GOVERNANCE.items():
        value = meta.get(key) or None
        card[key] = value
        if not value:
            option = "--" + key.replace("_", "-")
            gaps.append(
                _gap(key, f"{title} is not recorded ({question})", f"{meta_cmd} {option} TEXT")
            )

    data = dict(prov.get("training_data") or {})
    card["training_data"] = {
        "dataset": data.get("dataset") or None,
        "load_ids": list(data.get("load_ids") or []),
        "content_hash": data.get("content_hash") or None,
        "target": data.get("target") or None,
    }
    if not card["training_data"]["dataset"]:
        gaps.append(
            _gap(
                "training_data.dataset",
                "the training data set is not recorded",
                "register with --training-data dataset.table",
            )
        )
    if not card["training_data"]["load_ids"] and not card["training_data"]["content_hash"]:
        gaps.append(
            _gap(
                "training_data.lineage",
                "neither load ids nor a content hash of the training data is recorded",
                "register from data read through the ingest plugin (--training-data)",
            )
        )
    code = dict(prov.get("code") or {})
    card["lineage"] = {
        "git_commit": code.get("git_commit") or None,
        "git_dirty": code.get("git_dirty"),
        "run_id": prov.get("run_id") or ref.run_id,
        "imported_from": prov.get("imported_from") or None,
    }
    if not card["lineage"]["git_commit"]:
        gaps.append(
            _gap(
                "lineage.git_commit",
                "no code version: the project was not in a git work tree at registration",
                "keep the training code in git and register from its work tree",
            )
        )
    card["parameters"] = dict(prov.get("parameters") or {})
    card["training_metrics"] = _finite(dict(prov.get("metrics") or ref.metrics or {}))
    if not card["parameters"]:
        gaps.append(
            _gap("parameters", "no training parameters are recorded", "log them with the run")
        )

    evaluation = registry.latest_evidence(project, name, version, "evaluation")
    if evaluation is None:
        card["evaluation"] = None
        gaps.append(
            _gap(
                "evaluation",
                "no evaluation on a holdout is recorded",
                f"opsloop model evaluate {name} {version}",
            )
        )
    else:
        card["evaluation"] = {
            "id": evaluation.id,
            "at": evaluation.created_at,
            "by": evaluation.actor,
            "verdict": _verdict(evaluation.passed),
            "holdout": evaluation.data.get("holdout"),
            "rows": evaluation.data.get("rows"),
            "metrics": evaluation.data.get("metrics"),
            "thresholds": evaluation.data.get("thresholds"),
            "holdout_content_hash": evaluation.data.get("holdout_content_hash"),
        }
    card["security"] = {}
    for kind in ("load_test", "security_scan"):
        found = registry.latest_evidence(project, name, version, kind)
        card["security"][kind] = (
            None
            if found is None
            else {
                "id": found.id,
                "at": found.created_at,
                "by": found.actor,
                "verdict": _verdict(found.passed),
                "summary": found.summary,
                "source": found.source,
                "sha256": found.sha256,
            }
        )
        if found is None:
            gaps.append(
                _gap(
                    f"security.{kind}",
                    f"no {kind.replace('_', ' ')} result is recorded",
                    f"opsloop model evidence {name} {version} --kind {kind} --file result.json",
                )
            )

    signature = dict(prov.get("signature") or ref.signature or {})
    card["signature"] = signature or None
    card["input_example"] = prov.get("input_example")
    if not signature.get("inputs"):
        gaps.append(
            _gap(
                "signature", "the input signature is not recorded", "register with an input example"
            )
        )
    env = dict(prov.get("environment") or {})
    card["environment"] = env or None
    if not env:
        gaps.append(
            _gap("environment", "the package versions are not recorded", "register through opsloop")
        )

    artifacts = dict(prov.get("artifacts") or {})
    problems = registry.governance(store, "a model card").verify(ref)
    card["integrity"] = {
        "algorithm": "sha256",
        "files": dict(artifacts.get("files") or {}),
        "manifest_sha256": artifacts.get("manifest_sha256"),
        "verified_at": utcnow(),
        "intact": not problems,
        "problems": problems,
    }
    if not card["integrity"]["files"]:
        gaps.append(
            _gap(
                "integrity.files", "no per-file hashes were recorded at registration", "re-register"
            )
        )

    verdict = readiness.latest_verdict(project, name, version)
    card["deployment"] = {
        "readiness": None
        if verdict is None
        else {"id": verdict.id, "at": verdict.created_at, "go": verdict.go, "items": verdict.items},
        "rollback_target": registry.rollback_target(project, name, "champion")
        if "champion" in ref.aliases
        else registry.current_version(project, name, "champion"),
        "alias_moves": [
            {
                "at": m.created_at,
                "by": m.actor,
                "alias": m.alias,
                "from": m.from_version,
                "to": m.to_version,
                "forced": m.forced,
                "rollback": m.rollback,
                "reason": m.reason,
            }
            for m in registry.alias_moves(project, name)
            if version in (m.from_version, m.to_version)
        ],
    }
    if verdict is None:
        gaps.append(
            _gap(
                "deployment.readiness",
                "no readiness verdict",
                f"opsloop model ready {name} {version}",
            )
        )
    card["frameworks"] = {
        f.key: {"title": f.title, "eu_ai_act": f.eu_ai_act, "nist_ai_rmf": f.nist_ai_rmf}
        for f in FIELDS
    }
    card["gaps"] = gaps
    return redact(card)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------- markdown
def _value(value: Any) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "*gap: not recorded*"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list | dict):
        return "`" + json.dumps(value, sort_keys=True, default=str) + "`"
    return str(value).replace("\n", " ")


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    out = ["| | |", "|---|---|"]
    out += ["| " + str(k) + " | " + _value(v).replace("|", "\\|") + " |" for k, v in rows]
    return out


def to_markdown(card: dict[str, Any]) -> str:
    """The card as Markdown: one section per field, gaps listed, framework references."""
    model = card["model"]
    refs = card["frameworks"]

    def head(key: str) -> str:
        f = refs[key]
        return f"## {f['title']}\n\n*EU AI Act {f['eu_ai_act']} · NIST AI RMF {f['nist_ai_rmf']}*\n"

    lines = [
        f"# Model card: {model['name']} version {model['version']}",
        "",
        f"Generated {card['generated_at'][:19]} UTC by {card['generated_by']} from the registry "
        "and opsloop's records. A field nobody recorded reads *gap: not recorded*; see Gaps.",
        "",
        head("model"),
    ]
    lines += _table(
        [
            ("uri", model["uri"]),
            ("registry", model["store"]),
            ("aliases", ", ".join(f"@{a}" for a in model["aliases"]) or "none"),
            ("registered", model["registered_at"]),
            ("registered by", model["registered_by"]),
            ("run", model["run_id"]),
        ]
        + ([("imported from", model["imported_from"])] if model.get("imported_from") else [])
    )
    for key in GOVERNANCE:
        lines += ["", head(key), _value(card.get(key)), ""]
    data = card["training_data"]
    lines += ["", head("training_data")]
    lines += _table(
        [
            ("dataset", data["dataset"]),
            ("target", data["target"]),
            ("load ids", ", ".join(data["load_ids"]) or None),
            ("content hash", data["content_hash"]),
        ]
    )
    lin = card["lineage"]
    lines += ["", head("lineage")]
    lines += _table(
        [
            ("git commit", lin["git_commit"]),
            (
                "uncommitted changes",
                None if lin["git_dirty"] is None else str(lin["git_dirty"]).lower(),
            ),
            ("training run", lin["run_id"]),
        ]
    )
    lines += ["", head("parameters")]
    lines += _table(sorted(card["parameters"].items())) if card["parameters"] else [_value(None)]
    lines += ["", head("training_metrics")]
    lines += (
        _table(sorted(card["training_metrics"].items()))
        if card["training_metrics"]
        else [_value(None)]
    )
    lines += ["", head("evaluation")]
    ev = card["evaluation"]
    if ev is None:
        lines.append(_value(None))
    else:
        verdict = {"passed": "passed", "failed": "FAILED"}.get(ev["verdict"], "no verdict")
        lines.append(
            f"On holdout `{ev['holdout']}` ({ev['rows']} rows), {ev['at'][:19]} UTC by "
            f"{ev['by']}: **{verdict}** against thresholds `{json.dumps(ev['thresholds'])}`."
        )
        lines.append("")
        lines += _table(sorted((ev["metrics"] or {}).items()))
    lines += ["", head("security")]
    for kind, found in card["security"].items():
        label = kind.replace("_", " ")
        if found is None:
            lines.append(f"- {label}: *gap: not recorded*")
        else:
            verdict = {"passed": "passed", "failed": "FAILED"}.get(found["verdict"], "recorded")
            lines.append(
                f"- {label}: {verdict} ({found['id']}, {found['at'][:19]} UTC, by {found['by']})"
                + (f": {found['summary']}" if found["summary"] else "")
            )
    lines += ["", head("signature")]
    sig = card["signature"] or {}
    if sig.get("inputs"):
        inputs = ", ".join(f"{c['name']} ({c['type']})" for c in sig["inputs"])
        outputs = ", ".join(f"{c['name']} ({c['type']})" for c in sig.get("outputs", []))
        lines += [f"- inputs ({len(sig['inputs'])}): {inputs}", f"- outputs: {outputs or '-'}"]
    else:
        lines.append(_value(None))
    lines += ["", head("environment")]
    env = card["environment"] or {}
    if env:
        packages = env.get("packages") or {}
        lines += _table(
            [
                ("python", env.get("python")),
                ("platform", env.get("platform")),
                *sorted(packages.items()),
            ]
        )
    else:
        lines.append(_value(None))
    integ = card["integrity"]
    lines += ["", head("integrity")]
    state = "all files match" if integ["intact"] else "PROBLEMS: " + "; ".join(integ["problems"])
    lines.append(f"SHA-256 per artifact file, checked when the card was written: {state}.")
    lines.append("")
    lines += _table(sorted(integ["files"].items())) if integ["files"] else [_value(None)]
    dep = card["deployment"]
    lines += ["", head("deployment")]
    rd = dep["readiness"]
    lines.append(
        "- readiness: "
        + (
            _value(None)
            if rd is None
            else f"{'GO' if rd['go'] else 'NO-GO'} ({rd['id']}, {rd['at'][:19]} UTC)"
        )
    )
    if rd:
        lines += [
            f"  - {'ok' if i['ok'] else 'missing'}: {i['item']} — {i['detail']}"
            for i in rd["items"]
        ]
    lines.append(f"- rollback target (@champion): {_value(dep['rollback_target'])}")
    for m in dep["alias_moves"]:
        what = "rollback" if m["rollback"] else ("forced move" if m["forced"] else "move")
        why = f" — {m['reason']}" if m["reason"] else ""
        lines.append(
            f"- {m['at'][:19]} {what} @{m['alias']}: {m['from'] or '-'} -> {m['to']} "
            f"by {m['by']}{why}"
        )
    lines += ["", "## Gaps", ""]
    if card["gaps"]:
        lines += [f"- **{g['field']}**: {g['why']} (fix: `{g['fix']}`)" for g in card["gaps"]]
    else:
        lines.append("None: every field is recorded.")
    return "\n".join(lines) + "\n"


def write_card(
    project: Project, name: str, version: str | None = None, out_dir: Path | None = None
) -> tuple[Path, Path, dict[str, Any]]:
    """Write ``<name>-v<version>.md`` and ``.json``; audited. Returns both paths and the card."""
    card = build_card(project, name, version)
    folder = out_dir if out_dir is not None else project.home / project.config.registry.cards
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpsloopError(
            f"cannot create the model card folder {folder}: {exc.strerror}"
        ) from None
    stem = safe_name(f"{card['model']['name']}-v{card['model']['version']}", "model card name")
    md, js = folder / f"{stem}.md", folder / f"{stem}.json"
    md.write_text(to_markdown(card), encoding="utf-8")
    js.write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    project.audit.append(
        "model.card",
        f"{card['model']['name']}/{card['model']['version']}",
        after={"markdown": str(md), "json": str(js), "gaps": [g["field"] for g in card["gaps"]]},
    )
    return md, js, card
