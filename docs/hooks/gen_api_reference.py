"""Generate the API reference: one page per recframe package, one ``:::`` block per module in it.

The package tree is read at build time, so a module that is added, moved or renamed shows up (or
goes) without anyone editing ``mkdocs.yml``: the nav entry ``API reference`` is expanded here into
one page per package. mkdocstrings renders each page from the docstrings, reading the source
statically (griffe), so a module whose optional dependency is missing still gets its page.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "recframe"
NAV_TITLE = "API reference"
PREFIX = "reference/api"
MARKER = "<!-- package-map -->"


def packages() -> list[str]:
    """Dotted names of recframe and its subpackages (folders with an ``__init__.py``), sorted."""
    base = ROOT / PACKAGE
    found = []
    for init in sorted(base.rglob("__init__.py")):
        rel = init.parent.relative_to(ROOT)
        if any(part.startswith((".", "_")) for part in rel.parts):
            continue
        found.append(".".join(rel.parts))
    return found


def modules(package: str) -> list[str]:
    """Dotted names of the modules directly inside ``package`` (no ``__main__``, no private ones)."""
    folder = ROOT.joinpath(*package.split("."))
    return [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if not p.stem.startswith("_")]


def summary(path: Path) -> str:
    """The first line of a module's docstring (empty when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text()))
    return doc.strip().splitlines()[0] if doc else ""


def package_map() -> str:
    """One line per package, then one per core module: the map ``architecture.md`` shows."""
    rows = ["| package | what it does |", "|---|---|"]
    for package in packages():
        folder = ROOT.joinpath(*package.split("."))
        text = summary(folder / "__init__.py")
        if not text:
            text = "modules: " + ", ".join(f"`{m.rpartition('.')[2]}`" for m in modules(package))
        rows.append(f"| [`{package}`]({PREFIX}/{package}.md) | {text.replace('|', chr(92) + '|')} |")
    rows += ["", "| core module | what it does |", "|---|---|"]
    for module in modules(PACKAGE):
        text = summary(ROOT / PACKAGE / f"{module.rpartition('.')[2]}.py")
        rows.append(f"| `{module}` | {text.replace('|', chr(92) + '|')} |")
    return "\n".join(rows) + "\n"


def page_path(package: str) -> str:
    return f"{PREFIX}/{package}.md"


def page(package: str) -> str:
    """One package's page: its own docstring, then every module's members."""
    lines = [
        f"# `{package}`",
        "",
        f"::: {package}",
        "    options:",
        "      members: false",
        "      show_root_heading: false",
        "",
    ]
    subpackages = [p for p in packages() if p.rpartition(".")[0] == package]
    if subpackages:
        lines += ["Subpackages: " + ", ".join(f"[`{p}`]({p}.md)" for p in subpackages) + ".", ""]
    for module in modules(package):
        lines += [f"::: {module}", ""]
    return "\n".join(lines)


def index() -> str:
    lines = [
        "# API reference",
        "",
        "Generated from the docstrings on every docs build, one page per package. The public names",
        "a user needs first (`recframe.run`, `recframe.Pipeline`, the interfaces and errors) are on",
        f"the [`{PACKAGE}`]({PACKAGE}.md) page; [Architecture](../../architecture.md) says which",
        "package does what.",
        "",
    ]
    lines += [f"* [`{p}`]({p}.md)" for p in packages()]
    return "\n".join(lines) + "\n"


def _expand(nav: list) -> bool:
    for i, item in enumerate(nav):
        if not isinstance(item, dict):
            continue
        for title, value in item.items():
            if title == NAV_TITLE:
                nav[i] = {title: [{"Overview": f"{PREFIX}/index.md"}] + [{p: page_path(p)} for p in packages()]}
                return True
            if isinstance(value, list) and _expand(value):
                return True
    return False


def on_config(config):  # noqa: ANN001, ANN201 - mkdocs hook signature
    """mkdocs hook: replace the ``API reference`` nav entry by one page per package."""
    if config.nav:
        _expand(config.nav)
    return config


def on_page_markdown(markdown, page, config, files):  # noqa: ANN001, ANN201 - mkdocs hook signature
    """mkdocs hook: put the current package map where a page has ``<!-- package-map -->``."""
    if MARKER in markdown:
        depth = page.file.src_uri.count("/")
        table = package_map().replace(f"]({PREFIX}/", f"]({'../' * depth}{PREFIX}/")
        markdown = markdown.replace(MARKER, table)
    return markdown


def on_files(files, config):  # noqa: ANN001, ANN201 - mkdocs hook signature
    """mkdocs hook: add the generated pages to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, f"{PREFIX}/index.md", content=index()))
    for package in packages():
        files.append(File.generated(config, page_path(package), content=page(package)))
    return files
