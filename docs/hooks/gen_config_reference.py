"""Build the configuration reference page from the comments of the YAML files under ``conf/``.

The comments in ``conf/`` are the one description of every option and key (``--cfg job`` and a
reader of the files see them too), so the reference is generated from them instead of being kept by
hand beside them. Run as a mkdocs hook (``hooks:`` in ``mkdocs.yml``), the page is rebuilt on every
``mkdocs build``/``serve`` and can never fall behind the files; ``python docs/hooks/gen_config_reference.py``
prints it.

The reader is line based on purpose: a YAML parser drops comments, and the files follow one layout
(a comment block on top describing the option, then ``key: value  # meaning`` or a comment line above
the key; deeper mappings are indented).
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"
PAGE = "reference/configuration.md"

log = logging.getLogger("mkdocs.hooks.gen_config_reference")

# Groups in the order of the pipeline, then the helpers; any other folder follows in name order.
GROUP_ORDER = [
    "datasource",
    "model",
    "tester",
    "deployer",
    "tracker",
    "trainer",
    "paths",
    "experiment",
    "hparams_search",
]
GROUP_INTRO = {
    "datasource": "Where sessions come from: ingest raw events, build session sequences, split by time.",
    "model": "The recommender: fit on the train split, score every item for the next event.",
    "tester": "Full-ranking metrics against the popularity baseline, behavioural tests, deployment gates.",
    "deployer": "Serve the model artifact over HTTP, smoke-test it, tear it down.",
    "tracker": "Copy parameters, metrics and artifacts of a run into a tracking system.",
    "trainer": "Lightning `Trainer` arguments for the neural models.",
    "paths": "Where recframe keeps state between runs and where a run writes.",
    "experiment": "Named presets: several groups and values changed in one versioned file (`experiment=NAME`).",
    "hparams_search": "Hyperparameter searches with Hydra's Optuna sweeper (`hparams_search=NAME`).",
}


@dataclass
class Entry:
    """One key of an option file: its dotted path, its value as written, and its comment."""

    key: str
    value: str
    meaning: str


@dataclass
class Option:
    """One YAML file: the comment block on top, and its keys."""

    name: str
    about: str
    entries: list[Entry]


def _split_comment(text: str) -> tuple[str, str]:
    """Split ``value  # comment`` at the first ``#`` outside quotes that starts a comment."""
    quote = ""
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].strip(), text[i + 1 :].strip()
    return text.strip(), ""


def parse_option(path: Path) -> Option:
    """Read one option file into its description and its keys (nested keys dotted)."""
    lines = path.read_text().splitlines()
    about: list[str] = []
    entries: list[Entry] = []
    pending: list[str] = []  # comment lines waiting for the key below them
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    block_indent: int | None = None  # inside a `key: |` block scalar deeper than this
    seen_key = False
    last: Entry | None = None
    last_indent = -1
    last_inline = False  # the last key had a value and a comment on its own line
    for raw in lines:
        stripped = raw.strip()
        indent = len(raw) - len(raw.lstrip())
        if block_indent is not None:
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        if not stripped:
            if not seen_key and about:
                about.append("")
            pending = []
            continue
        if stripped.startswith("#"):
            body = stripped[1:]
            text = body.strip()
            if text.startswith("@package"):
                continue
            if not seen_key:
                # a line indented inside the comment is an example command: keep it as code
                about.append(CODE + text if body.startswith("   ") else text)
            elif last is not None and last_inline and indent > last_indent and not pending:
                last.meaning = f"{last.meaning} {text}".strip()  # an indented continuation line
            else:
                pending.append(text)
            continue
        seen_key = True
        if stripped.startswith("- "):
            item, comment = _split_comment(stripped[2:])
            if last is not None and indent >= last_indent:
                last.value = f"{last.value}, {item}" if last.value else item
                if comment and not last.meaning:
                    last.meaning = comment
            pending = []
            last_inline = False
            continue
        key, sep, rest = stripped.partition(":")
        if not sep:
            continue
        value, comment = _split_comment(rest)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([k for _, k in stack] + [key.strip()])
        meaning = comment or " ".join(pending)
        pending = []
        if value in ("|", "|-", ">", ">-"):
            block_indent = indent
            value = "(text)"
        if dotted == "_target_" and not meaning:
            meaning = "the class built"
        last = Entry(dotted, value, meaning)
        last_indent = indent
        last_inline = bool(value and comment)
        entries.append(last)
        if not value:
            stack.append((indent, key.strip()))
    return Option(path.stem, _paragraphs(about), entries)


CODE = "\x00"  # marks a comment line that is an example command


def _paragraphs(lines: list[str]) -> str:
    """Join comment lines into paragraphs; runs of example commands become a code block."""
    out: list[str] = []
    words: list[str] = []
    code: list[str] = []

    def flush() -> None:
        if words:
            out.append(" ".join(words))
            words.clear()
        if code:
            out.append("```\n" + "\n".join(code) + "\n```")
            code.clear()

    for line in lines:
        if line.startswith(CODE):
            if words:
                flush()
            code.append(line[1:])
        elif not line:
            flush()
        else:
            if code:
                flush()
            words.append(line)
    flush()
    return "\n\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _code(text: str) -> str:
    return f"`{text.replace('|', chr(92) + '|')}`" if text else ""


def option_table(option: Option) -> list[str]:
    """The key/default/meaning table of one option."""
    if not option.entries:
        return []
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for e in option.entries:
        if e.key == "defaults":
            rows.append(f"| `defaults` | {_code(e.value)} | options of other groups this file selects |")
            continue
        rows.append(f"| `{e.key}` | {_code(e.value)} | {_cell(e.meaning)} |")
    return rows + [""]


def _options(folder: Path) -> list[Option]:
    return [parse_option(p) for p in sorted(folder.glob("*.yaml"))]


def _groups() -> list[str]:
    found = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra", "local", "__pycache__"))
    return [g for g in GROUP_ORDER if g in found] + [g for g in found if g not in GROUP_ORDER]


def build_page() -> str:
    """The whole configuration reference as Markdown."""
    root = parse_option(CONF / "config.yaml")
    out = [
        "# Configuration reference",
        "",
        "Generated from the comments of the YAML files under `conf/` on every docs build: the comment",
        "above or beside a key is its description. recframe's config is composed by Hydra from",
        "`conf/config.yaml` and one option per group. Pick an option with `group=option`, change a key",
        "with `group.key=value`, add a key an option lacks with `+group.key=value`, and print the",
        "composed result with `recframe --cfg job`. How configuration works:",
        "[Concepts](../concepts.md#config-groups-an-option-is-a-constructor-call).",
        "",
        "## Top level (`conf/config.yaml`)",
        "",
        root.about,
        "",
        *option_table(root),
    ]
    for group in _groups():
        options = _options(CONF / group)
        out += [f"## `{group}`", "", GROUP_INTRO.get(group, ""), ""]
        out += ["Options: " + ", ".join(f"`{o.name}`" for o in options) + ".", ""]
        for option in options:
            out += [f"### `{group}={option.name}`", "", option.about, "", *option_table(option)]
    out += ["## `hydra`", "", "recframe's settings of Hydra itself (`conf/hydra/`).", ""]
    hydra = parse_option(CONF / "hydra" / "default.yaml")
    hydra.entries = [e for e in hydra.entries if e.key.split(".")[0] not in ("help", "job_logging", "hydra_logging")]
    out += ["### `hydra` (`conf/hydra/default.yaml`)", "", hydra.about, "", *option_table(hydra)]
    for option in _options(CONF / "hydra" / "launcher"):
        out += [f"### `hydra/launcher={option.name}`", "", option.about, "", *option_table(option)]
    out += [
        "## `local`",
        "",
        "`conf/local/default.yaml` is optional and git-ignored: machine-specific settings and secrets",
        "that should never be committed. It is composed last, so it overrides the defaults above, and",
        "takes the same keys (`# @package _global_` on its first line, then e.g. `datasource:` ...).",
        "",
    ]
    return "\n".join(out)


def on_files(files, config):  # noqa: ANN001, ANN201 - mkdocs hook signature
    """mkdocs hook: add the generated page to the site's files."""
    from mkdocs.structure.files import File

    files.append(File.generated(config, PAGE, content=build_page()))
    return files


if __name__ == "__main__":
    sys.stdout.write(build_page())
