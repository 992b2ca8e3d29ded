"""``advkit list attacks|presets|checks|zoo|data|profiles``."""
from __future__ import annotations

import click

from . import render

SUBJECTS = ("attacks", "presets", "checks", "zoo", "data", "profiles")


def _rows(subject: str):
    if subject == "attacks":
        from ..attacks.registry import list_attacks
        return ["name", "description"], list_attacks()
    if subject == "presets":
        from ..attacks.presets import list_presets
        return ["name", "description"], list_presets()
    if subject == "checks":
        import advkit.evaluation.checks  # noqa: F401  (registers the pipeline's finding codes)
        from ..findings import CATALOGUE
        return ["code", "title", "remedy"], [(c.code, c.title, c.remedy) for c in CATALOGUE.values()]
    if subject == "zoo":
        from ..zoo import list_zoo
        return (["name", "data", "threat", "description"],
                [(e.name, e.data, _zoo_threat(e.name), f"{e.description} ({e.arch})") for e in list_zoo()])
    if subject == "profiles":
        return _profile_rows()
    from ..sources.data import list_data
    return ["ref", "description"], list_data()


def _profile_rows():
    from ..profiles import list_profiles

    def grades(tp) -> str:
        mark = "*" if tp.convention == "advkit" else ""
        return "/".join(f"{100 * g.min:g}" for g in tp.grades) + "%" + mark if tp.grades else "none"

    def eps(tp, v: float) -> str:
        return f"{round(v * 255)}/255" if "/255" in str(tp.threat) else f"{v:g}"

    rows = []
    for p in list_profiles():
        floor = "" if p.clean_floor is None else f"{100 * p.clean_floor:g}%"
        for i, tp in enumerate(p.threats):
            rows.append((p.name if i == 0 else "", str(tp.threat), f"0\u2026{eps(tp, tp.curve[-1])} ({len(tp.curve)})",
                         grades(tp), floor if i == 0 else "", " ".join(p.data) if i == 0 else ""))
    return ["profile", "threat", "curve (points)", "grades", "clean floor", "default for"], rows


_CAPTIONS = {"profiles": "grades: competitive/strong/state of the art, AutoAttack robust accuracy; "
                         "* = advkit's choice, not a published convention (docs/profiles.md)"}


def _zoo_threat(name: str) -> str:
    """The threat ``advkit evaluate --model zoo:NAME`` uses: its profile's first threat."""
    from ..profiles.profile import load_profile, profile_for_model
    profile = profile_for_model(f"zoo:{name}")
    return ", ".join(map(str, load_profile(profile).default_threats()[:1])) if profile else ""


@click.command("list")
@click.argument("subject", type=click.Choice(SUBJECTS))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(subject, as_json):
    """List registered attacks, attack presets, evaluation checks, zoo models, data sources or domain profiles."""
    columns, rows = _rows(subject)
    if as_json:
        render.print_json([dict(zip(columns, r)) for r in rows])
    else:
        from .report import esc_rows
        t = render.table(subject, columns, esc_rows(rows))  # "[stages.pgd]" is text, not markup
        t.caption = _CAPTIONS.get(subject)
        render.console.print(t)
