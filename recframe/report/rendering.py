"""The Jinja2 environment every report page is rendered with.

Autoescaping is on for every template, so a SKU, a category name, a dbt description or a config
value can never become markup: only values wrapped in :class:`markupsafe.Markup` on purpose (the
SVG charts, which escape their own labels) are inserted as they are. Undefined names raise, so a
typo in a template fails the tests instead of printing nothing. Templates ship as package data in
``recframe/report/templates/``.
"""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    """The shared environment (built once: template compilation is the slow part)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("recframe.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **context: object) -> str:
    """Render the template ``name`` (e.g. ``"run_report.html.j2"``) with ``context``."""
    return environment().get_template(name).render(**context)
