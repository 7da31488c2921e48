"""The AWS PyTorch container image for a region, an instance type and a use (training or inference).

Both ``trainer=sagemaker`` and ``deployer=sagemaker`` look their image up here, through the
``sagemaker`` SDK's ``image_uris.retrieve``: it reads the image table the SDK ships (accounts per
region, China and GovCloud domains, CPU/GPU tags, Python versions per PyTorch release), so the
lookup makes no network call, and a newer SDK knows newer regions and releases without a change
here. The SDK builds AWS clients when some of its modules are imported, so it is imported in
:func:`_sdk` only, never when recframe is.

Versions: with ``framework_version`` unset, the image is the newest release the SDK lists that is
not newer than the torch installed here (the SDK's table trails PyTorch releases), and a log line
says which was taken. The training job re-installs the client's own torch on top of it; an
endpoint serves with the image's torch, which loads artifacts saved by newer releases because
they are plain ``state_dict`` tensors. Set ``image_uri`` to use any other image.
"""

from __future__ import annotations

import functools
import logging
from importlib import metadata
from typing import Any

from recframe.interfaces import ConfigError, RecframeError

log = logging.getLogger("recframe")

FRAMEWORK = "pytorch"
SCOPES = ("training", "inference")


@functools.cache
def _sdk() -> Any:
    try:
        from sagemaker.core import image_uris
    except ImportError:
        raise RecframeError(
            "SageMaker image lookup needs the sagemaker SDK: pip install 'recframe[aws]', or set image_uri"
        ) from None
    return image_uris


def sdk_version() -> str:
    try:
        return metadata.version("sagemaker")
    except metadata.PackageNotFoundError:
        return "not installed"


def client_torch() -> str:
    """The torch release installed here, without a local build tag (``2.13.0+cpu`` -> ``2.13.0``)."""
    return metadata.version("torch").split("+")[0]


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


def listed_versions(scope: str) -> list[str]:
    """Full PyTorch releases (``2.6.0``, not the ``2.6`` aliases) the SDK has images for, oldest first."""
    versions = {v for v in _sdk().list_versions(FRAMEWORK, scope) if v.count(".") == 2}
    return sorted(versions, key=_release)


def newest_not_after(scope: str, torch_version: str) -> str | None:
    """The newest listed release not newer than ``torch_version`` (None if all are newer)."""
    older = [v for v in listed_versions(scope) if _release(v) <= _release(torch_version)]
    return older[-1] if older else None


def resolve_version(scope: str, prefix: str, framework_version: str | None) -> str:
    """``framework_version`` when the SDK lists it, else the newest release the client's torch allows."""
    if framework_version:
        version = str(framework_version)
        if version not in listed_versions(scope):
            recent = ", ".join(listed_versions(scope)[-4:])
            raise ConfigError(
                f"{prefix}.framework_version",
                version,
                f"the sagemaker SDK {sdk_version()} lists no PyTorch {scope} image for it (newest: {recent}); "
                f"leave it unset to follow the installed torch, or set {prefix}.image_uri",
            )
        return version
    torch_version = client_torch()
    version = newest_not_after(scope, torch_version)
    if version is None:
        raise ConfigError(
            f"{prefix}.framework_version", None, f"no PyTorch {scope} image as old as torch {torch_version}"
        )
    if version != torch_version:
        log.info(
            "torch %s is installed; the newest AWS PyTorch %s image the sagemaker SDK %s lists is %s: using it "
            "(set %s.framework_version or %s.image_uri to choose another)",
            torch_version, scope, sdk_version(), version, prefix, prefix,
        )  # fmt: skip
    return version


def pytorch_image_uri(
    region: str | None,
    instance_type: str,
    scope: str,
    prefix: str,
    framework_version: str | None = None,
    py_version: str | None = None,
) -> str:
    """The ECR URI of the AWS PyTorch ``scope`` image; errors name the setting under ``prefix`` to change."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if not region:
        raise ConfigError.plain(
            f"{prefix}.region is not set (nor AWS_DEFAULT_REGION): the container image depends on the region"
        )
    sdk = _sdk()
    version = resolve_version(scope, prefix, framework_version)
    if not py_version:
        # the newest Python of that release (py38 < py312: longer is newer, then by digits)
        py_version = max(sdk.list_py_versions(FRAMEWORK, version, scope), key=lambda p: (len(p), p))
    try:
        return sdk.retrieve(
            framework=FRAMEWORK,
            region=region,
            version=version,
            py_version=py_version,
            instance_type=instance_type,
            image_scope=scope,
        )
    except ValueError as e:
        raise _config_error(str(e), prefix, region, version, py_version, instance_type, scope) from None


def _config_error(
    message: str, prefix: str, region: str, version: str, py_version: str, instance_type: str, scope: str
) -> ConfigError:
    """The SDK's ValueError as one line naming the setting to change."""
    fix = f"or set {prefix}.image_uri"
    if message.startswith("Unsupported region"):
        return ConfigError(
            f"{prefix}.region", region, f"the sagemaker SDK {sdk_version()} knows no PyTorch image there; {fix}"
        )
    if message.startswith("Unsupported Python version"):
        known = message.rsplit(":", 1)[-1].strip().rstrip(".")
        return ConfigError(f"{prefix}.py_version", py_version, f"PyTorch {version} {scope} images have {known}; {fix}")
    if message.startswith("Invalid SageMaker instance type"):
        return ConfigError(f"{prefix}.instance_type", instance_type, "must be a SageMaker type such as ml.g5.xlarge")
    return ConfigError(f"{prefix}.image_uri", None, f"no PyTorch {scope} image found ({message.splitlines()[0]})")
