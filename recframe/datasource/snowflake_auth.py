"""How recframe logs in to Snowflake: password, key pair, OAuth/PAT token, browser SSO or a named connection.

One set of login settings (``conf/datasource/snowflake.yaml``, secrets read from ``SNOWFLAKE_*``
environment variables) feeds two clients that must log in the same way: the Snowflake connector
(:func:`connector_kwargs`) and dbt-snowflake (:func:`dbt_profile_fields`, handed to dbt as the
environment variables its ``profiles.yml`` reads, see :data:`PROFILE_ENV`).

A named connection (``connection_name``) is read from the connector's own ``connections.toml``
(``$SNOWFLAKE_HOME/connections.toml``, else ``~/.snowflake/connections.toml``): the connector gets the
name and the file, dbt gets the same entry's values, and any setting given to recframe overrides it,
as the connector itself does. Every missing credential is one :class:`ConfigError` naming the
environment variable to set, raised before any connection is tried.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recframe.interfaces import ConfigError

#: Authenticators recframe validates (besides an Okta URL ``https://<org>.okta.com``, which logs in with a password).
AUTHENTICATORS = ("snowflake", "snowflake_jwt", "externalbrowser", "oauth", "programmatic_access_token")
#: Login and endpoint settings, each with the environment variable ``snowflake.yaml`` and ``profiles.yml`` read.
PROFILE_ENV = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "password": "SNOWFLAKE_PASSWORD",
    "authenticator": "SNOWFLAKE_AUTHENTICATOR",
    "private_key_path": "SNOWFLAKE_PRIVATE_KEY_PATH",
    "private_key_passphrase": "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
    "token": "SNOWFLAKE_TOKEN",
    "role": "SNOWFLAKE_ROLE",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "host": "SNOWFLAKE_HOST",
    "port": "SNOWFLAKE_PORT",
    "protocol": "SNOWFLAKE_PROTOCOL",
}
SECRET_KEYS = ("password", "private_key_passphrase", "token")
_TOML_ALIASES = {"private_key_file": "private_key_path", "private_key_file_pwd": "private_key_passphrase"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_TOKEN_AUTH = ("oauth", "programmatic_access_token")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def normalise_authenticator(value: Any, key: str = "datasource.authenticator") -> str | None:
    """``authenticator`` lower-cased and checked (no I/O); null means: inferred from the other settings."""
    if _blank(value):
        return None
    text = str(value).strip()
    if text.lower().startswith("https://"):  # native Okta SSO: the URL of the Okta account
        return "https://" + text[len("https://") :]
    if text.lower() not in AUTHENTICATORS:
        raise ConfigError(key, value, f"must be one of {', '.join(AUTHENTICATORS)} or an https:// Okta URL")
    return text.lower()


def check_connection_name(value: Any) -> str | None:
    """``connection_name`` checked for shape (no I/O)."""
    if _blank(value):
        return None
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise ConfigError("datasource.connection_name", value, "must be a name of a table in connections.toml")
    return value


def connections_file() -> Path:
    """The ``connections.toml`` the connector reads: under ``$SNOWFLAKE_HOME``, else ``~/.snowflake``."""
    home = os.environ.get("SNOWFLAKE_HOME")
    if home:
        return Path(home).expanduser() / "connections.toml"
    default = Path("~/.snowflake").expanduser()
    if default.exists():
        return default / "connections.toml"
    try:  # the connector falls back to the platform's config folder when ~/.snowflake does not exist
        from snowflake.connector.constants import CONNECTIONS_FILE

        return Path(CONNECTIONS_FILE)
    except ImportError:
        return default / "connections.toml"


def named_connection(name: str) -> tuple[Path, dict[str, Any]]:
    """The file and the ``[name]`` entry of ``connections.toml``, keys in recframe's spelling."""
    path = connections_file()
    key = "datasource.connection_name"
    if not path.is_file():
        raise ConfigError(key, name, f"no connections.toml at {path}: create it or set SNOWFLAKE_HOME to its folder")
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(key, name, f"cannot read {path}: {' '.join(str(e).split())}") from None
    entry = doc.get(name)
    if not isinstance(entry, dict):
        known = ", ".join(sorted(k for k, v in doc.items() if isinstance(v, dict))) or "none"
        raise ConfigError(key, name, f"is not a connection in {path} (known: {known})")
    return path, {_TOML_ALIASES.get(k.lower(), k.lower()): v for k, v in entry.items()}


def resolve(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The effective login: the named connection's entry overridden by recframe's own settings.

    ``settings`` holds the keys of :data:`PROFILE_ENV` plus ``connection_name`` (null or ``""`` =
    unset). The result has the same keys, ``authenticator`` filled in (``snowflake_jwt`` when only a
    private key is given, as the connector infers) and only the credential the authenticator uses.
    Raises a one-line :class:`ConfigError` for anything missing, before any connection.
    """
    name = check_connection_name(settings.get("connection_name"))
    base: dict[str, Any] = {}
    if name:
        _, base = named_connection(name)
    login = {k: base.get(k) for k in PROFILE_ENV}
    login.update({k: settings[k] for k in PROFILE_ENV if not _blank(settings.get(k))})
    if _blank(login["token"]) and isinstance(base.get("token_file_path"), str):  # the connector's own key
        try:
            login["token"] = Path(base["token_file_path"]).expanduser().read_text().strip()
        except OSError as e:
            raise ConfigError("datasource.connection_name", name, f"token_file_path: {e.strerror}") from None
    auth = normalise_authenticator(login["authenticator"])
    if auth is None:
        auth = "snowflake_jwt" if not _blank(login["private_key_path"]) else "snowflake"
    login["authenticator"] = auth
    where = f" or the [{name}] entry of connections.toml" if name else ""

    def need(key: str) -> None:
        if _blank(login.get(key)):
            shown = "<missing>" if key in SECRET_KEYS else login.get(key)
            detail = f"authenticator={auth} needs it: " if key != "account" else ""
            raise ConfigError(f"datasource.{key}", shown, f"is required: {detail}set {PROFILE_ENV[key]}{where}")

    need("account")
    if auth not in _TOKEN_AUTH:
        need("user")
    if auth == "snowflake" or auth.startswith("https://"):
        need("password")
        keep = ("password",)
    elif auth == "snowflake_jwt":
        need("private_key_path")
        keep = ("private_key_path", "private_key_passphrase")
    elif auth in _TOKEN_AUTH:
        need("token")
        keep = ("token",)
    else:  # externalbrowser: the browser holds the credential
        keep = ()
    for key in SECRET_KEYS + ("private_key_path",):
        if key not in keep:
            login[key] = None
    if auth == "snowflake_jwt":
        login["private_key_path"] = str(Path(str(login["private_key_path"])).expanduser())
    return login


def load_private_key(path: str, passphrase: str | None) -> bytes:
    """The PEM key at ``path`` (PKCS#8 or PKCS#1, encrypted or not) as unencrypted DER, for ``private_key``.

    This is the connector's documented key-pair recipe; the decrypted key lives only in memory.
    """
    from cryptography.hazmat.primitives import serialization

    key = "datasource.private_key_path"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        why = f"cannot read the private key ({e.strerror}): set SNOWFLAKE_PRIVATE_KEY_PATH"
        raise ConfigError(key, path, why) from None
    secret = passphrase.encode() if not _blank(passphrase) else None
    try:
        pkey = serialization.load_pem_private_key(data, password=secret)
    except TypeError:  # encrypted without a passphrase, or a passphrase for a plain key
        if secret is None:
            raise ConfigError(
                "datasource.private_key_passphrase", "<missing>",
                f"is required: the key {path} is encrypted; set SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
            ) from None  # fmt: skip
        raise ConfigError(
            "datasource.private_key_passphrase", "***",
            f"the key {path} is not encrypted: unset SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
        ) from None  # fmt: skip
    except ValueError as e:
        if secret is not None and ("password" in str(e).lower() or "decrypt" in str(e).lower()):
            raise ConfigError(
                "datasource.private_key_passphrase", "***",
                f"does not decrypt {path}: check SNOWFLAKE_PRIVATE_KEY_PASSPHRASE",
            ) from None  # fmt: skip
        raise ConfigError(key, path, "is not a PEM private key (expected -----BEGIN ... PRIVATE KEY-----)") from None
    except Exception as e:  # unsupported algorithm or key type
        raise ConfigError(key, path, f"cannot load the private key: {' '.join(str(e).split())}") from None
    return pkey.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def connector_kwargs(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Login and endpoint keyword arguments for ``snowflake.connector.connect``.

    With ``connection_name`` the connector reads the entry itself (``connection_name`` and
    ``connections_file_path``); only recframe's own non-empty settings are passed on top, because
    explicit arguments override the file's values. The private key is loaded here, so a bad path
    or passphrase is a config error rather than a failed login.
    """
    login = resolve(settings)
    kw: dict[str, Any] = {}
    name = check_connection_name(settings.get("connection_name"))
    if name:
        kw["connection_name"] = name
        kw["connections_file_path"] = connections_file()
        own = {k for k in PROFILE_ENV if not _blank(settings.get(k))}
    else:
        own = set(PROFILE_ENV)
    for key in ("account", "user", "role", "warehouse", "host", "port", "protocol"):
        if key in own and not _blank(login[key]):
            kw[key] = login[key]
    auth = login["authenticator"]
    if not name or "authenticator" in own or auth == "snowflake_jwt":
        kw["authenticator"] = auth.upper() if not auth.startswith("https://") else auth
    if auth == "snowflake_jwt":
        if not name or own & {"private_key_path", "private_key_passphrase"}:
            kw["private_key"] = load_private_key(login["private_key_path"], login["private_key_passphrase"])
        else:  # validate the file's key now; the connector loads it again from the entry
            load_private_key(login["private_key_path"], login["private_key_passphrase"])
    for key in ("password", "token"):
        if key in own and not _blank(login[key]):
            kw[key] = login[key]
    return kw


def dbt_profile_fields(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The dbt-snowflake profile fields of the same login (``None`` = leave the field empty).

    dbt-snowflake has no named connections, so the entry's values are passed field by field. A key
    pair is ``private_key_path`` + ``private_key_passphrase`` with no authenticator (dbt's own form);
    a token travels as ``token`` with ``authenticator`` ``oauth`` or ``programmatic_access_token``.
    """
    login = resolve(settings)
    auth = login["authenticator"]
    if auth == "snowflake_jwt":
        load_private_key(login["private_key_path"], login["private_key_passphrase"])
    fields = dict(login)
    fields["authenticator"] = None if auth in ("snowflake", "snowflake_jwt") else auth
    if fields.get("port") is not None:
        fields["port"] = str(fields["port"])
    return fields


def dbt_env(settings: Mapping[str, Any]) -> dict[str, str | None]:
    """:func:`dbt_profile_fields` as the environment variables the packaged ``profiles.yml`` reads."""
    return {PROFILE_ENV[k]: (None if _blank(v) else str(v)) for k, v in dbt_profile_fields(settings).items()}


def secrets_of(settings: Mapping[str, Any]) -> list[str]:
    """The secret values among ``settings`` (to mask them in error messages), longest first."""
    values = {str(settings[k]) for k in SECRET_KEYS if not _blank(settings.get(k))}
    return sorted(values, key=len, reverse=True)
