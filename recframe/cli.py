"""The command line: ``recframe [overrides]`` / ``python -m recframe``, ``recframe compare``, and the
production commands ``recframe score | promote | rollback | reproduce`` (:mod:`recframe.commands`).

Thin on purpose: it validates the overrides (one line and exit 2 on a bad one, before Hydra prints
anything), instantiates and checks every component once, hands the arguments to Hydra, and inside
the Hydra job runs those same components through :mod:`recframe.app`. Everything it does is also
reachable from Python.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from recframe.app import (
    check_writable,
    compose,
    one_line_hydra_error,
    run_checks,
    set_offline_env,
    validate,
)
from recframe.interfaces import RecframeError
from recframe.shipped import config_search_path

# Hydra flags that take a value in the next argument
_FLAGS_WITH_VALUE = {
    "-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir",
    "-c", "--cfg", "-p", "--package", "--experimental-rerun",
}  # fmt: skip
_NO_PRECHECK = {"-m", "--multirun", "-h", "--help", "--hydra-help", "--info", "--version", "--shell-completion", "-sc"}


def fail(message: str, code: int = 1) -> int:
    """Print a user error as one line on stderr."""
    print(f"recframe: error: {message}", file=sys.stderr)
    return code


def split_overrides(argv: Sequence[str]) -> tuple[list[str], bool]:
    """The ``key=value`` overrides in ``argv``, and whether pre-checking them makes sense.

    Hydra's own keys are kept only for the output directories (checked for writability) and the
    mode (a sweep's jobs build their own components).
    """
    overrides: list[str] = []
    precheck = True
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _FLAGS_WITH_VALUE:
            skip = True
            if arg in ("-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"):
                precheck = False  # a different primary config: let Hydra handle it
            continue
        if arg in _NO_PRECHECK or arg.startswith("--info"):
            precheck = False
            continue
        if arg.startswith("-"):
            continue
        key = arg.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.") and key not in ("hydra.run.dir", "hydra.sweep.dir", "hydra.mode"):
            continue
        overrides.append(arg)
    return overrides, precheck


@dataclass(frozen=True)
class Prechecked:
    """The components the pre-check built and checked, and the job config they were built from."""

    config: dict[str, Any]
    parts: dict[str, Any]

    def parts_for(self, cfg: DictConfig) -> dict[str, Any] | None:
        """These components when ``cfg`` is the config they were built from (a single run), else None."""
        return self.parts if job_config(cfg) == self.config else None


def job_config(cfg: DictConfig) -> dict[str, Any]:
    """The config as a Hydra job receives it: no hydra section, interpolations unresolved."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return plain


def precheck(overrides: list[str], dry: bool = False) -> Prechecked | None:
    """Compose, instantiate and ``check()`` everything before Hydra creates the run directory.

    Returns the checked components, which the Hydra job of a single run then uses (each component is
    built once); a sweep's jobs, possibly in other processes, build their own.
    ``dry`` (``--cfg``: print the config, run nothing) validates values but skips the checks of
    credentials and settings, so a cloud option's config can be inspected before it is set up.
    """
    cfg = compose(overrides)
    if not dry:
        check_writable(cfg.hydra.run.dir, "hydra.run.dir")
    parts, steps, _ = validate(cfg, cfg.hydra.run.dir, require_inputs=not dry)
    if dry:
        return None
    run_checks(parts, steps)
    if cfg.hydra.get("mode") == RunMode.MULTIRUN:  # a sweep preset: each job builds its own components
        return None
    return Prechecked(job_config(cfg), parts)


@contextmanager
def hydra_arguments(argv: Sequence[str]) -> Iterator[None]:
    """Hydra reads its command line from ``sys.argv`` only: show it ``argv`` while it runs."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "recframe", *argv]
    try:
        yield
    finally:
        sys.argv = saved


def run_hydra(argv: Sequence[str], prechecked: Prechecked | None) -> None:
    """Hand ``argv`` to Hydra (single run, multirun, --help, --cfg) with the pre-checked components."""
    import hydra

    @hydra.main(config_path=config_search_path(), config_name="config", version_base="1.3")
    def task(cfg: DictConfig) -> float | None:
        from recframe.console import run_with_console

        return run_with_console(cfg, parts=prechecked.parts_for(cfg) if prechecked else None)

    with hydra_arguments(argv):
        task()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recframe`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "compare":
        from recframe.report.compare import main as compare_main

        return compare_main(argv[1:]) or 0
    if argv and argv[0] == "serve":
        from recframe.serve import main as serve_main

        return serve_main(argv[1:])
    if argv and argv[0] in ("score", "promote", "rollback", "reproduce"):
        from recframe.commands import main as command_main

        return command_main(argv[0], argv[1:])
    set_offline_env()
    logging.getLogger("hydra").setLevel(logging.WARNING)
    overrides, do_precheck = split_overrides(argv)
    prechecked = None
    if do_precheck:
        try:
            prechecked = precheck(overrides, dry=any(a in ("-c", "--cfg") for a in argv))
        except RecframeError as e:  # before any work: a bad config, a missing setting or credential
            return fail(str(e), 2)
    from hydra.errors import HydraException

    try:
        run_hydra(argv, prechecked)
    except RecframeError as e:  # raised inside the Hydra job
        return fail(str(e), getattr(e, "exit_code", 1))
    except HydraException as e:  # e.g. --help or --cfg over a config that does not compose
        return fail(one_line_hydra_error(e), 2)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    return 0


if __name__ == "__main__":
    sys.exit(main())
