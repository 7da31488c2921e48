"""Every ``recframe`` run command shown in the README and the docs composes and passes validation.

A renamed config key, or a rule that refuses a documented setting, would otherwise break the first
command a user copies. Each command is checked the way ``recframe ... --cfg job`` checks it (values
validated, no credentials or input files needed, nothing run), in this process.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from recframe.cli import precheck, split_overrides

ROOT = Path(__file__).resolve().parents[1]
#: sub-commands (not runs of the pipeline) and sweeps: their own tests cover them
OTHER_COMMANDS = {"score", "promote", "rollback", "serve", "reproduce", "sweep", "report", "compare", "docs",
                  "leaderboard", "--help", "-h"}  # fmt: skip
#: commands that need something the docs ask the reader to create first: a plugin package, a module
#: of their own, a finished run, or a placeholder (`...`)
NEEDS_THE_READER = re.compile(r"my_model|my_module|run\.resume_from=|\.\.\.|\$|<")


def documented_runs() -> list[tuple[str, str]]:
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                line = line.split("  #")[0].strip()
                words = shlex.split(line) if line.startswith(("recframe ", "python -m recframe ")) else []
                args = words[3:] if words[:1] == ["python"] else words[1:]
                if (not args or args[0] in OTHER_COMMANDS or "-m" in args or "--multirun" in args
                        or NEEDS_THE_READER.search(line)):  # fmt: skip
                    continue
                found.append((page.relative_to(ROOT).as_posix(), line))
    return found


RUNS = documented_runs()


def test_the_docs_show_run_commands() -> None:
    pages = {page for page, _ in RUNS}
    assert len(RUNS) >= 30 and {"README.md", "docs/howto_in_place.md", "docs/howto_snowflake.md"} <= pages


@pytest.mark.parametrize(("page", "line"), RUNS, ids=[f"{p}:{i}" for i, (p, _) in enumerate(RUNS)])
def test_a_documented_run_command_validates(page: str, line: str, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    words = shlex.split(line)
    overrides, _ = split_overrides([*(words[3:] if words[0] == "python" else words[1:]), "--cfg", "job"])
    precheck(overrides, dry=True)
