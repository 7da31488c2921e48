"""The expected AWS PyTorch image URI, read straight from the image table the sagemaker SDK ships
(``sagemaker/core/image_uri_config/pytorch.json``), independently of recframe's lookup."""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any


@cache
def table() -> dict[str, Any]:
    spec = importlib.util.find_spec("sagemaker.core")
    return json.loads((Path(spec.origin).parent / "image_uri_config" / "pytorch.json").read_text())


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def newest_listed(scope: str) -> str:
    """The newest full release in the table not newer than the installed torch."""
    torch_version = _release(metadata.version("torch").split("+")[0])
    full = [v for v in table()[scope]["versions"] if v.count(".") == 2 and _release(v) <= torch_version]
    return max(full, key=_release)


def expected_uri(region: str, instance_type: str, scope: str, version: str | None = None, py: str | None = None) -> str:
    version = version or newest_listed(scope)
    entry = table()[scope]["versions"][version]
    py = py or max(entry["py_versions"], key=lambda p: (len(p), p))
    domain = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    processor = "gpu" if instance_type.startswith(("ml.g", "ml.p")) else "cpu"
    account = entry["registries"][region]
    return f"{account}.dkr.ecr.{region}.{domain}/{entry['repository']}:{version}-{processor}-{py}"
