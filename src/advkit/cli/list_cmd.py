"""``advkit list attacks|presets|checks|zoo|data``."""
from __future__ import annotations

import click

from . import render

SUBJECTS = ("attacks", "presets", "checks", "zoo", "data")


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
                [(e.name, e.data, e.threat, f"{e.description} ({e.arch})") for e in list_zoo()])
    from ..sources.data import list_data
    return ["ref", "description"], list_data()


@click.command("list")
@click.argument("subject", type=click.Choice(SUBJECTS))
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_(subject, as_json):
    """List registered attacks, attack presets, evaluation checks, zoo models or data sources."""
    columns, rows = _rows(subject)
    if as_json:
        render.print_json([dict(zip(columns, r)) for r in rows])
    else:
        from .report import esc_rows
        render.console.print(render.table(subject, columns, esc_rows(rows)))  # "[stages.pgd]" is text
