"""dbt's parsed manifest, kept between processes so that a daily build starts without a parse.

Why: dbt's partial parsing still reads its saved state, hashes every project file and rebuilds the
manifest's objects on each run, about half a second of single-threaded Python before the first
model, which on an incremental build of a day's events is a tenth of the whole build. dbt accepts
a ready ``Manifest`` (``dbtRunner(manifest=...)``, its documented way to skip the parse); this
module keeps the one from the last parse, pickled beside dbt's own ``target/`` state, and hands it
back while nothing it was parsed from has changed.

What it was parsed from is hashed into the cache key: the versions of Python, dbt and its adapters
(their macros are part of the manifest), every file of the project (``profiles.yml`` included), the
command line (vars, target, paths), and every environment variable a project or profile may read
through ``env_var()`` (the ``RECFRAME_``, ``SNOWFLAKE_`` and ``DBT_`` ones, with the parse's own
overrides applied; only their hash is stored). On any other key, or an unreadable file, dbt parses
as before and the cache is replaced. The file is recframe's own, written atomically in the
warehouse's dbt folder, which also holds the project the builds run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import pickle
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recframe import atomic

CACHE_FILE = "recframe_parsed_manifest.pkl"
#: environment variables that may reach the parse (``env_var()`` in the project or the profile)
ENV_PREFIXES = ("RECFRAME_", "SNOWFLAKE_", "DBT_")
_PACKAGES = ("dbt-core", "dbt-common", "dbt-adapters", "dbt-duckdb", "dbt-snowflake")
_SKIPPED = ("target", "logs", "dbt_packages")


def cache_key(project_dir: Path, cli: list[str], env: Mapping[str, str | None]) -> str:
    """A hash of everything the parse of ``project_dir`` with ``cli`` under ``env`` depends on."""
    from importlib import metadata

    h = hashlib.sha256()
    versions = []
    for name in _PACKAGES:
        try:
            versions.append(f"{name}={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name}=-")
    h.update(json.dumps([sys.version, versions, str(Path(project_dir).resolve()), cli]).encode())
    root = Path(project_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if rel.parts[0] in _SKIPPED or "__pycache__" in rel.parts:
            continue
        h.update(rel.as_posix().encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    merged: dict[str, str | None] = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
    merged.update(env)
    h.update(json.dumps(sorted((k, v) for k, v in merged.items() if v is not None)).encode())
    return h.hexdigest()


def parsed_manifest(
    cache_dir: Path,
    project_dir: Path,
    cli: list[str],
    env: Mapping[str, str | None],
    parse: Callable[[], Any],
) -> Any:
    """The manifest cached in ``cache_dir`` for this project, command line and environment, else ``parse()``'s.

    ``parse`` runs ``dbt parse``; its manifest is cached for the next call. A cache that cannot be
    read or written is ignored (dbt then simply parses).
    """
    path = Path(cache_dir) / CACHE_FILE
    key = cache_key(project_dir, cli, env)
    try:
        with open(path, "rb") as f:
            stored_key, cls, state = pickle.load(f)  # noqa: S301 - recframe's own file, see the module docstring
        if stored_key == key:
            return cls(**state)
    except Exception:  # noqa: BLE001 - missing, older or damaged: parse instead
        pass
    manifest = parse()
    with contextlib.suppress(Exception):  # a cache that cannot be written costs the next build a parse
        atomic.write_bytes(path, pickle.dumps((key, type(manifest), _state(manifest)), pickle.HIGHEST_PROTOCOL))
    return manifest


def _state(manifest: Any) -> dict[str, Any]:
    """The manifest's public fields, by name.

    Not the manifest itself: dbt's ``Manifest.__reduce_ex__`` passes its fields by position and
    leaves one out, so an unpickled manifest gets its lookup caches in the wrong fields. The private
    fields (lookup caches, a lock) are rebuilt on demand by a new manifest.
    """
    return {f.name: getattr(manifest, f.name) for f in dataclasses.fields(manifest) if not f.name.startswith("_")}
