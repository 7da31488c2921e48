"""The one rule for what counts as a secret, and the one masker every output goes through.

A value is masked when its key looks like a credential (:data:`SECRET_PATTERN`), and any string
that contains the value of a secret-looking environment variable has that value replaced. The
same rule serves every place a config or its parameters leave the process: tracker params (CSV,
Comet, MLflow), the HTML run report, the run comparison, the sweep's leaderboard and ``best.yaml``,
and connection errors that could echo a password. One rule means a key masked in one output is
masked in all of them.

Why scrub values too: a secret can reach a value under an innocent key (``datasource.dsn`` built
from ``${oc.env:DB_PASSWORD}`` by a caller), and once it is in a remote experiment or a shared
report it cannot be taken back.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

# "pass" covers password, passwd and passphrase; api-key and access-key in every spelling
SECRET_PATTERN = re.compile(
    r"(pass|secret|token|api[_-]?key|private[_-]?key|credential|access[_-]?key)",
    re.IGNORECASE,
)
REDACTED = "***"

# Secret-looking environment variables shorter than this are not matched inside values: a 1-3
# character "secret" would mask half of the config by accident.
MIN_SECRET_LEN = 4


def is_secret_key(key: object) -> bool:
    """Whether ``key`` (a config key, a dotted path, an environment variable name) names a secret."""
    return bool(SECRET_PATTERN.search(str(key)))


def mask_value(key: object, value: Any) -> Any:
    """``value`` itself, or :data:`REDACTED` when ``key`` names a secret and a value is set.

    An unset value (None or "") stays as it is: it hides nothing and tells the reader it is unset.
    """
    return REDACTED if _hides(key, value) else value


def _hides(key: object, value: Any) -> bool:
    return is_secret_key(key) and value is not None and not (isinstance(value, str) and value == "")


def env_secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose *name* looks secret (``*_PASSWORD``, ``*_API_KEY``...)."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_key(k) and len(v) >= MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)  # longest first, so overlapping secrets mask fully


def scrub_value(value: Any, secrets: list[str]) -> Any:
    """``value`` with every known secret string replaced by :data:`REDACTED` (non-strings as they are)."""
    if not isinstance(value, str) or not secrets:
        return value
    for s in secrets:
        if s in value:
            value = value.replace(s, REDACTED)
    return value


def _mask(obj: Any, secrets: list[str]) -> Any:
    if isinstance(obj, Mapping):
        return {k: REDACTED if _hides(k, v) else _mask(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_mask(x, secrets) for x in obj]
    return scrub_value(obj, secrets)


def mask_secrets(obj: Any, environ: Mapping[str, str] | None = None) -> Any:
    """A copy of a config tree (or a flat params dict) with the rule applied at every level.

    Values under secret-looking keys become :data:`REDACTED`, and secret environment values found
    inside any other string are replaced. Interpolations (``${oc.env:...}``) are plain strings here
    and stay as written unless their key is a secret one.
    """
    return _mask(obj, env_secret_values(environ))


def scrub_params(params: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Tracker params (flat ``a.b.c: value``) with the rule applied; what every tracker sends."""
    return dict(mask_secrets(params, environ))


def mask_override(override: str) -> str:
    """A Hydra override ``key=value`` with the value masked when the key names a secret."""
    key, sep, value = override.partition("=")
    return f"{key}={REDACTED}" if sep and _hides(key, value) else override
