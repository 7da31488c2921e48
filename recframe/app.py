"""Turn a composed config into a ready pipeline, without the command line.

This is the seam between Hydra and the library: :func:`compose` builds a config from overrides the
same way the CLI does, :func:`build_pipeline` instantiates every component *before* any work (so a
bad value fails in a second with one line), and :func:`run` does both. The CLI, the tests and users'
notebooks all go through here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recframe.interfaces import ConfigError, RecframeError
from recframe.pipeline import DEFAULT_STEPS, STEPS, Pipeline, RunResult
from recframe.secrets import mask_value

GROUPS = ("datasource", "model", "tester", "deployer", "tracker")

# Opt-outs of telemetry and cloud-metadata probes: recframe itself never reaches beyond what the
# user configured, and the libraries it drives must not either.
OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "SNOWFLAKE_DISABLE_PLATFORM_DETECTION": "true",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def set_offline_env() -> None:
    """Apply :data:`OFFLINE_ENV` (without overriding what the user set) and keep Comet offline without a key."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    if not os.environ.get("COMET_API_KEY"):
        os.environ.setdefault("COMET_START_ONLINE", "0")


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the config exactly as ``python -m recframe OVERRIDES`` would (hydra section included).

    The configs are the package ``recframe.conf``; installed plugins' configs join the search path
    through recframe's Hydra search-path plugin, as they do for the command line.
    """
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from recframe.shipped import CONFIG_MODULE

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except Exception as e:  # Hydra's own errors are multi-line; make them one actionable line
        raise ConfigError.plain(one_line_hydra_error(e)) from None
    finally:
        GlobalHydra.instance().clear()


def one_line_hydra_error(e: BaseException) -> str:
    """Collapse a Hydra composition error into one line that names the bad key and the options."""
    from hydra.errors import MissingConfigException

    if isinstance(e, MissingConfigException) and getattr(e, "options", None):
        missing = getattr(e, "missing_cfg_file", "") or ""
        group = missing.split("/")[0] if "/" in missing else missing
        return f"unknown option {missing!r}; available for {group}: {', '.join(sorted(e.options))}"
    text = str(e).split("\nConfig search path", 1)[0]
    text = " ".join(text.split())
    return text.replace("Use '+", "to add a new key use '+") if text else type(e).__name__


def choices(cfg: DictConfig) -> dict[str, str]:
    """Which option was chosen in each group (``model: gru``), when the hydra section is present."""
    try:
        return {k: v for k, v in dict(cfg.hydra.runtime.choices).items() if v is not None}
    except Exception:
        return {}


def redacted_params(cfg: DictConfig) -> dict[str, Any]:
    """The config as flat ``a.b.c: value`` params with secrets masked (for trackers and logs)."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    out: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if prefix == "" and k == "hydra":
                    continue
                walk(f"{prefix}{k}." if not isinstance(v, (dict, list)) else f"{prefix}{k}.", v)
        elif isinstance(node, list):
            out[prefix.rstrip(".")] = str(node)
        else:
            key = prefix.rstrip(".")
            out[key] = mask_value(key, node)

    walk("", plain)
    return out


def instantiate_group(group: str, node: Any) -> Any:
    """Instantiate one group's config; turn every failure into a one-line RecframeError."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    if node is None:
        return None
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(group, "...", "must be a config with a _target_ (choose an option of the group)")
    from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

    try:
        return instantiate(node, _convert_="all")
    except MissingMandatoryValue as e:
        key = getattr(e, "full_key", None) or group
        raise ConfigError(key, "???", f"is required: set it, e.g. {key}=VALUE") from None
    except OmegaConfBaseException as e:  # interpolation or type errors inside the group
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(getattr(e, "full_key", None) or group, "...", msg) from None
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, RecframeError):
            raise cause from None
        if isinstance(cause, TypeError) and "argument" in str(cause):
            raise ConfigError(group, node.get("_target_"), f"does not accept these settings: {cause}") from None
        if isinstance(cause, (ImportError, ModuleNotFoundError)):
            msg = " ".join(str(cause).split())
            raise RecframeError(f"{group}: {msg} (is the extra for this option installed?)") from None
        msg = " ".join(str(cause or e).split())
        raise ConfigError(group, node.get("_target_"), f"could not be built: {msg}") from None


def check_settings(
    cfg: DictConfig, run_dir: str | Path | None = None, require_inputs: bool = True
) -> tuple[list[str], int]:
    """Check the top-level keys (steps, seed, run.resume_from); return the steps and the seed.

    ``require_inputs`` also checks that skipped steps have a run to read from (off for ``--cfg``).
    """
    from recframe import validation

    steps = list(cfg.get("steps", DEFAULT_STEPS))
    for s in steps:
        validation.choice("steps", s, STEPS)
    seed = validation.integer("seed", cfg.get("seed", 42), 0)
    resume_from = (cfg.get("run") or {}).get("resume_from")
    if resume_from is not None and not Path(resume_from).is_dir():
        raise ConfigError("run.resume_from", resume_from, "must be an existing run directory")
    has_data = run_dir is not None and (Path(run_dir) / "data" / "manifest.json").exists()
    if require_inputs and "data" not in steps and resume_from is None and not has_data:
        raise ConfigError("steps", steps, "without the 'data' step, set run.resume_from to a finished run directory")
    return steps, seed


def instantiate_parts(cfg: DictConfig) -> dict[str, Any]:
    """One instance per group (None for a group set to null); no component does any work yet."""
    return {g: instantiate_group(g, cfg.get(g)) for g in GROUPS}


def validate(
    cfg: DictConfig, run_dir: str | Path | None = None, require_inputs: bool = True
) -> tuple[dict[str, Any], list[str], int]:
    """Check the top-level keys and instantiate every group: (components, steps, seed)."""
    steps, seed = check_settings(cfg, run_dir, require_inputs)
    from recframe.production import check_settings as check_production_settings

    check_production_settings(cfg, steps)  # the score and registry blocks
    return instantiate_parts(cfg), steps, seed


def build_pipeline(
    cfg: DictConfig,
    run_dir: str | Path | None = None,
    on_step: Callable[[str, str, float], None] | None = None,
    check: bool = True,
    parts: dict[str, Any] | None = None,
) -> Pipeline:
    """Instantiate every component (validating them) and return a pipeline ready to run.

    With ``check`` the components of the selected steps also run their fail-fast ``check()``
    (credentials, input files). ``parts`` are components already instantiated from this very config
    and checked (the CLI's pre-check, before Hydra creates the run directory): they are used as they
    are, so each component is built once per run.
    """
    if run_dir is None:
        run_dir = Path("outputs") / "runs" / datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")
    if parts is None:
        parts, steps, seed = validate(cfg, run_dir)
    else:
        steps, seed = check_settings(cfg, run_dir)
        check = False
    if parts["tester"] is not None and hasattr(parts["tester"], "tracker") and parts["tracker"] is not None:
        parts["tester"].tracker = parts["tracker"]  # e.g. RecList's Comet logger writes to the run's experiment
    if parts["tester"] is not None and hasattr(parts["tester"], "serving"):
        from recframe.tester.served import serving_settings

        parts["tester"].serving = serving_settings(cfg.get("deployer"))  # gates judge what the endpoint serves
    name = choices(cfg).get("model")
    if parts["model"] is not None and name and "/" not in name:
        parts["model"].name = name
    trainer = OmegaConf.to_container(cfg.trainer, resolve=True) if cfg.get("trainer") is not None else {}
    run = cfg.get("run", {}) or {}
    resume_from = run.get("resume_from")
    pipeline = Pipeline(
        datasource=parts["datasource"],
        model=parts["model"],
        tester=parts["tester"],
        deployer=parts["deployer"],
        tracker=parts["tracker"],
        trainer=trainer,
        steps=steps,
        run_dir=run_dir,
        resume_from=resume_from,
        seed=seed,
        progress=bool(run.get("progress", True)),
        params=redacted_params(cfg),
        on_step=on_step,
    )
    from recframe.production import attach

    attach(pipeline, cfg)  # config.resolved.yaml, the score step's settings, run record and registry
    if check:
        run_checks(parts, steps)
    return pipeline


def run_checks(parts: dict[str, Any], steps: Sequence[str]) -> None:
    """Run the fail-fast ``check()`` of the components whose steps will run."""
    for step, part in (("data", parts["datasource"]), ("deploy", parts["deployer"])):
        if step in steps and part is not None:
            part.check()


def check_writable(path: str | Path, key: str) -> None:
    """Refuse an output directory that cannot be created or written, before anything is written."""
    p = Path(path).absolute()
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(key, str(path), f"is not writable ({existing} cannot be written): choose another directory")


def run(overrides: Sequence[str] = (), run_dir: str | Path | None = None) -> RunResult:
    """Compose, build and run a pipeline from Python: ``recframe.run(["model=pop"], run_dir="out")``."""
    set_offline_env()
    cfg = compose(overrides)
    return build_pipeline(cfg, run_dir).run()
