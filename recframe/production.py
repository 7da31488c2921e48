"""What a pipeline run does for production beside its four steps, attached by :func:`attach`.

* ``config.resolved.yaml`` when the pipeline is built, ``runinfo.json`` when it finishes
  (:mod:`recframe.runinfo`);
* the ``score`` step (``steps=[data,train,test,score]``): batch recommendations into the warehouse
  (:mod:`recframe.score`), its summary in ``score.json``;
* a run whose gates pass registers its artifact as a model version (:mod:`recframe.registry`), the
  outcome in ``registry.json``. ``registry.enabled=false`` turns that off; a files data source
  registers only where ``score.warehouse`` names a DuckDB file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from recframe import validation as v
from recframe.interfaces import ConfigError

log = logging.getLogger("recframe")


@dataclass(frozen=True)
class RegistrySettings:
    """The ``registry`` block of the config."""

    enabled: bool = True
    promote: str = "first"
    metric: str = "mrr@20"
    margin: float = 0.0

    @classmethod
    def from_config(cls, block: Any) -> RegistrySettings:
        from recframe.registry import PROMOTE_POLICIES

        b = dict(block or {})
        from recframe.champion_gate import metric_k

        known = ("enabled", "promote", "metric", "margin")
        unknown = sorted(set(b) - set(known))
        if unknown:
            raise ConfigError(f"registry.{unknown[0]}", b[unknown[0]], f"unknown key; known: {', '.join(known)}")
        metric = str(b.get("metric", "mrr@20"))
        metric_k(metric)
        return cls(
            enabled=v.boolean("registry.enabled", b.get("enabled", True)),
            promote=v.choice("registry.promote", b.get("promote", "first"), PROMOTE_POLICIES),
            metric=metric,
            margin=v.number("registry.margin", b.get("margin", 0.0), 0.0),
        )


def check_settings(cfg: DictConfig, steps: list[str]) -> None:
    """Validate the ``score`` and ``registry`` blocks before any work (one :class:`ConfigError` line)."""
    from recframe.score import ScoreSettings

    score = ScoreSettings.from_config(_block(cfg, "score"))
    RegistrySettings.from_config(_block(cfg, "registry"))
    target = str((cfg.get("datasource") or {}).get("_target_", ""))
    if "score" in steps and target.endswith("FilesSource") and not score.warehouse:
        raise ConfigError("score.warehouse", None, "is required by the score step with datasource=files: a DuckDB file")


def _block(cfg: DictConfig, key: str) -> dict[str, Any]:
    node = cfg.get(key)
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node or {})  # type: ignore[return-value]


def attach(pipeline: Any, cfg: DictConfig) -> None:
    """Write ``config.resolved.yaml`` and hook the run record and the registry into ``pipeline``."""
    from recframe.runinfo import write_resolved_config
    from recframe.score import ScoreSettings

    pipeline.score_settings = ScoreSettings.from_config(_block(cfg, "score"))
    registry = RegistrySettings.from_config(_block(cfg, "registry"))
    resolved = write_resolved_config(cfg, pipeline.run_dir)
    write_hydra_record(cfg, pipeline.run_dir)

    def finish(p: Any, result: Any) -> None:
        from recframe.runinfo import write_runinfo

        info = write_runinfo(p.run_dir, resolved, data_dir=p._source("data"))
        if registry.enabled:
            register_run(p, result, info, registry)

    pipeline.finishers.append(finish)


def write_hydra_record(cfg: DictConfig, run_dir: Path) -> None:
    """For a run started from Python, the ``.hydra/`` files a CLI run gets from Hydra itself.

    ``config.yaml`` (interpolations kept, as Hydra writes it) and ``overrides.yaml`` are what the
    commands acting on a finished run read; a CLI run already has them and they are left alone.
    """
    import contextlib
    import copy

    import yaml
    from omegaconf import open_dict

    folder = Path(run_dir) / ".hydra"
    if (folder / "config.yaml").exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    overrides: list[str] = []
    with contextlib.suppress(Exception):  # composed without the hydra section: no overrides recorded
        overrides = list(cfg.hydra.overrides.task)
    plain = copy.deepcopy(cfg)
    with open_dict(plain):
        plain.pop("hydra", None)
    OmegaConf.save(plain, folder / "config.yaml", resolve=False)
    (folder / "overrides.yaml").write_text(yaml.safe_dump(overrides))


def _context(pipeline: Any) -> Any:
    from recframe.run_context import RunContext

    cfg = OmegaConf.create({"run": {"resume_from": str(pipeline.resume_from) if pipeline.resume_from else None}})
    tenant = str(getattr(pipeline.datasource, "tenant", None) or "default")
    return RunContext(run_dir=pipeline.run_dir, cfg=cfg, datasource=pipeline.datasource, tenant=tenant)


def score_step(pipeline: Any) -> dict[str, Any]:
    """The pipeline's ``score`` step: score with this run's artifact; summary in ``score.json``."""
    from recframe.pipeline import write_json
    from recframe.score import ScoreSettings, score_run

    settings = pipeline.score_settings or ScoreSettings()
    summary = score_run(_context(pipeline), settings)
    write_json(pipeline.run_dir / "score.json", summary)
    return summary


def _champion_gate(pipeline: Any, writer: Any, tenant: str, model_dir: Path, settings: RegistrySettings) -> dict:
    """Score the champion and this run's model on this run's test split (see :mod:`recframe.champion_gate`)."""
    from recframe.champion_gate import challenge
    from recframe.registry import champion, champion_run_dir

    current = champion(writer, tenant)
    run_dir = champion_run_dir(writer, tenant)
    champ_dir = run_dir / "model" if run_dir is not None else None
    if current is None or champ_dir is None or not (champ_dir / "checksums.json").exists():
        log.warning("champion gate: the champion's artifact is gone (%s); not promoting", champ_dir)
        return {"wins": False, "reason": f"the champion's artifact is missing: {champ_dir}"}
    serving = getattr(pipeline.tester, "serving", None) or {}  # judge what the endpoint serves
    test = pipeline.dataset().test
    out = challenge(champ_dir, model_dir, test, settings.metric, settings.margin, bool(serving.get("exclude_seen")))
    out["champion_version"] = current.model_version
    verdict = "promoted" if out["wins"] else "kept the champion"
    log.info("champion gate on %s: challenger %.4f vs champion %.4f: %s", settings.metric,
             out["challenger"][settings.metric], out["champion"][settings.metric], verdict)  # fmt: skip
    return out


def register_run(pipeline: Any, result: Any, info: dict[str, Any], settings: RegistrySettings) -> dict | None:
    """Register the run's artifact when its gates passed; the outcome goes to ``registry.json``."""
    from recframe.pipeline import write_json
    from recframe.registry import register
    from recframe.warehouse_writer import writer_for

    gates = result.gates
    model_dir = pipeline._source("model")
    if not gates or not gates.get("passed") or not (model_dir / "checksums.json").exists():
        return None
    if pipeline.datasource is None:
        return None
    warehouse = getattr(pipeline.score_settings, "warehouse", None)
    has_warehouse = isinstance(getattr(pipeline.datasource, "warehouse", None), Path)
    if not (warehouse or has_warehouse or type(pipeline.datasource).__name__ == "SnowflakeSource"):
        log.info("not registering the model: the data source has no warehouse (set score.warehouse)")
        return None
    tracker = pipeline.tracker
    mlflow = None
    if type(tracker).__name__ == "MLflowTracker" and getattr(tracker, "client", None) is not None:
        mlflow = (tracker.tracking_uri, tracker.run_id)
    tenant = str(getattr(pipeline.datasource, "tenant", None) or "default")
    with writer_for(pipeline.datasource, warehouse) as writer:
        version, new = register(
            writer, tenant, pipeline.run_dir, model_dir, result.metrics, info, True, settings.promote, mlflow
        )
        gate = None
        if settings.promote == "if_better" and not version.is_champion:
            gate = _champion_gate(pipeline, writer, tenant, model_dir, settings)
            if gate.get("wins"):
                from recframe.registry import promote_version

                version = promote_version(
                    writer, tenant, version.model_version, action="gate", tracking_uri=mlflow[0] if mlflow else None
                )
        where = writer.where
    record = {
        "tenant": tenant,
        "model_version": version.model_version,
        "new": new,
        "champion": bool(version.is_champion),
        "warehouse": where,
        "mlflow_model": version.mlflow_model,
        "mlflow_version": version.mlflow_version,
    }
    if gate is not None:
        record["champion_gate"] = gate
    write_json(pipeline.run_dir / "registry.json", record)
    if gate is not None:  # the report shows champion and challenger side by side
        pipeline._refresh_report()
    return record
