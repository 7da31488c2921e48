"""Every ``recframe`` command shown in the README and the docs is one recframe accepts.

A renamed config key or option, or a rule that refuses a documented setting, would otherwise break
the first command a user copies. A run is checked the way ``recframe ... --cfg job`` checks it
(values validated, no credentials or input files needed, nothing run); a sub-command (``score``,
``promote``, ``rollback``, ``reproduce``, ``serve``) by its own argument parser. All in this process.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from recframe import commands, serve
from recframe.cli import precheck, split_overrides

ROOT = Path(__file__).resolve().parents[1]
#: sub-commands checked by their argument parsers
SUB_COMMANDS = ("score", "promote", "rollback", "reproduce", "serve")
#: not runs of the pipeline, and not parsed here: their own tests cover them
OTHER_COMMANDS = {"sweep", "report", "compare", "docs", "leaderboard", "--help", "-h"}
#: commands that need something the docs ask the reader to create first: a plugin package, a module
#: of their own, a finished run, or a placeholder (`...`)
NEEDS_THE_READER = re.compile(r"my_model|my_module|run\.resume_from=|\.\.\.|\$|<")


def documented_commands() -> list[tuple[str, list[str]]]:
    """(page, arguments after ``recframe``) of every command line in the docs' bash blocks."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split("  #")[0].strip()
                words = shlex.split(line) if line.startswith(("recframe ", "python -m recframe ")) else []
                args = words[3:] if words[:1] == ["python"] else words[1:]
                if not args or args[0] in OTHER_COMMANDS or NEEDS_THE_READER.search(line):
                    continue
                found.append((page.relative_to(ROOT).as_posix(), args))
    return found


COMMANDS = documented_commands()
RUNS = [(p, a) for p, a in COMMANDS if a[0] not in SUB_COMMANDS and "-m" not in a and "--multirun" not in a]
SUBS = [(p, a) for p, a in COMMANDS if a[0] in SUB_COMMANDS]


def test_the_docs_show_commands() -> None:
    pages = {page for page, _ in RUNS}
    assert len(RUNS) >= 30 and {"README.md", "docs/howto_in_place.md", "docs/howto_snowflake.md"} <= pages
    assert {"score", "promote", "serve"} <= {a[0] for _, a in SUBS}


@pytest.mark.parametrize(("page", "args"), RUNS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(RUNS)])
def test_a_documented_run_command_validates(page: str, args: list[str], tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    overrides, _ = split_overrides([*args, "--cfg", "job"])
    precheck(overrides, dry=True)


@pytest.mark.parametrize(("page", "args"), SUBS, ids=[f"{p}:{' '.join(a)[:40]}" for p, a in SUBS])
def test_a_documented_sub_command_parses(page: str, args: list[str]) -> None:
    if args[0] == "serve":
        serve.parse_args(args[1:])
    else:
        commands._parser(args[0]).parse_args(args[1:])
