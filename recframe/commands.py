"""The commands beside the pipeline: ``recframe score | promote | rollback | reproduce``.

Each is a plain function (``score``, ``promote``, ``rollback``, ``reproduce``) usable from Python,
plus ``main(name, argv)`` that parses the command line, prints a short JSON summary on stdout and
turns every :class:`~recframe.interfaces.RecframeError` into one line on stderr with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recframe.interfaces import ConfigError, RecframeError

COMMANDS = ("score", "promote", "rollback", "reproduce")


def score(run_dir: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Score the run's sessions with its artifact into the warehouse's ``recommendations`` table."""
    from recframe.production import _block
    from recframe.run_context import open_run
    from recframe.score import ScoreSettings, score_run

    ctx = open_run(run_dir, overrides)
    return score_run(ctx, ScoreSettings.from_config(_block(ctx.cfg, "score")))


def _tracking_uri(ctx: Any) -> str | None:
    node = ctx.cfg.get("tracker")
    if node is None or "MLflowTracker" not in str(node.get("_target_", "")):
        return None
    from recframe.app import instantiate_group

    return instantiate_group("tracker", node).tracking_uri


def promote(run_dir: str | Path, overrides: Sequence[str] = (), force: bool = False) -> dict[str, Any]:
    """Make the run's model version its tenant's champion (registering it first when needed).

    A run whose gates failed is refused unless ``force``.
    """
    from recframe.production import _block
    from recframe.registry import _version, model_version, promote_version, register
    from recframe.run_context import open_run
    from recframe.runinfo import read_runinfo
    from recframe.warehouse_writer import writer_for

    ctx = open_run(run_dir, overrides)
    gates = ctx.gates() or {}
    if not gates.get("passed") and not force:
        failures = "; ".join(gates.get("failures", [])) or "the run has no gate verdict (run its 'test' step)"
        raise RecframeError(f"not promoting {ctx.run_id}: {failures} (use --force to promote anyway)")
    warehouse = (_block(ctx.cfg, "score") or {}).get("warehouse")
    uri = _tracking_uri(ctx)
    with writer_for(ctx.datasource, warehouse) as writer:
        version = model_version(ctx.model_dir)
        if _version(writer, ctx.tenant, version) is None:
            register(writer, ctx.tenant, ctx.run_dir, ctx.model_dir, ctx.metrics(), read_runinfo(ctx.run_dir),
                     bool(gates.get("passed")), promote="never")  # fmt: skip
        v = promote_version(writer, ctx.tenant, version, tracking_uri=uri)
        return {"tenant": ctx.tenant, "champion": v.model_version, "run_id": v.run_id, "warehouse": writer.where}


def rollback(run_dir: str | Path | None = None, warehouse: str | None = None, tenant: str = "default") -> dict:
    """Give the tenant's champion back to the version it replaced.

    The warehouse is the one of ``run_dir`` (any run of the tenant), or the DuckDB file ``warehouse``.
    """
    from recframe.registry import rollback as do_rollback
    from recframe.warehouse_writer import DuckDBWriter, writer_for

    uri = None
    if run_dir is not None:
        from recframe.run_context import open_run

        ctx = open_run(run_dir)
        writer, tenant, uri = writer_for(ctx.datasource, warehouse), ctx.tenant, _tracking_uri(ctx)
    elif warehouse:
        if not Path(warehouse).exists():
            raise ConfigError("--warehouse", warehouse, "must be an existing DuckDB file")
        writer = DuckDBWriter(warehouse)
    else:
        raise ConfigError.plain("rollback needs a RUN_DIR of the tenant or --warehouse FILE")
    with writer:
        old, new = do_rollback(writer, tenant, tracking_uri=uri)
        return {"tenant": tenant, "from": old, "champion": new, "warehouse": writer.where}


def reproduce(run_dir: str | Path, out_dir: str | Path | None = None, tolerance: float = 1e-6) -> dict[str, Any]:
    """Re-run ``run_dir`` from its recorded overrides and compare; see :mod:`recframe.reproduce`."""
    from recframe.reproduce import reproduce as do_reproduce

    return do_reproduce(run_dir, out_dir, tolerance)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, no usage block
        raise ConfigError.plain(f"{self.prog}: {message} (see {self.prog} --help)")


def _parser(name: str) -> argparse.ArgumentParser:
    p = _Parser(
        prog=f"recframe {name}", description=(sys.modules[__name__].__dict__[name].__doc__ or "").split("\n")[0]
    )
    if name == "rollback":
        p.add_argument("run_dir", nargs="?", help="a run of the tenant (its warehouse and tenant are used)")
        p.add_argument("--warehouse", help="DuckDB file holding model_registry (instead of RUN_DIR)")
        p.add_argument("--tenant", default="default", help="tenant (with --warehouse)")
        return p
    p.add_argument("run_dir", help="a finished run directory")
    if name in ("score", "promote"):
        p.add_argument("overrides", nargs="*", help="score.KEY=VALUE settings, e.g. score.k=10")
    if name == "promote":
        p.add_argument("--force", action="store_true", help="promote even though the run's gates failed")
    if name == "reproduce":
        p.add_argument("--out", help="run directory of the re-run (default: RUN_DIR-reproduce-TIMESTAMP)")
        p.add_argument("--tolerance", type=float, default=1e-6, help="relative tolerance on each metric")
    return p


def main(name: str, argv: Sequence[str]) -> int:
    """Run command ``name`` with ``argv``; print its summary as JSON; 0 on success, 2 on a user error."""
    from recframe.app import set_offline_env

    set_offline_env()
    try:
        args = _parser(name).parse_args(list(argv))
        if name == "score":
            out = score(args.run_dir, args.overrides)
        elif name == "promote":
            out = promote(args.run_dir, args.overrides, force=args.force)
        elif name == "rollback":
            out = rollback(args.run_dir, args.warehouse, args.tenant)
        else:
            out = reproduce(args.run_dir, args.out, args.tolerance)
    except RecframeError as e:
        print(f"recframe: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recframe: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(out, indent=2, default=str))
    if name == "reproduce" and not out.get("reproduced"):
        print(f"recframe: error: run not reproduced: {'; '.join(out.get('mismatches', []))}", file=sys.stderr)
        return 1
    return 0
