"""Snowflake logins besides the password, with the real connector and dbt-snowflake against fakesnow.

fakesnow accepts any login, so each test records the login request the connector sends (an ASGI
wrapper around fakesnow's app) and checks what it proves: a key-pair login carries a JWT that
verifies with the test key's public half, an OAuth login carries the token. Browser SSO needs a
browser and Snowflake's SSO endpoints, so only its connector arguments and profile fields are checked.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("snowflake.connector")
pytest.importorskip("fakesnow")
pytest.importorskip("dbt.adapters.snowflake")

import fakesnow.server  # noqa: E402
import jwt  # noqa: E402 - PyJWT, a dependency of the connector
import uvicorn  # noqa: E402 - fakesnow[server]'s ASGI server
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

from recframe.app import compose, redacted_params  # noqa: E402
from recframe.cli import main  # noqa: E402
from recframe.datasource import snowflake_auth, transform  # noqa: E402
from recframe.datasource.snowflake import SnowflakeSource  # noqa: E402
from recframe.interfaces import ConfigError  # noqa: E402
from recframe.secrets import REDACTED, scrub_params  # noqa: E402

pytestmark = pytest.mark.snowflake

PASSPHRASE = "pp-Xk3-never-on-disk"
TOKEN = "oauth-Tq7-never-on-disk"
LOGIN_ENV = (*snowflake_auth.PROFILE_ENV.values(), "SNOWFLAKE_CONNECTION_NAME", "SNOWFLAKE_HOME")


class _LoginRecorder:
    """ASGI wrapper that keeps the ``data`` block of every login request fakesnow receives."""

    def __init__(self, app) -> None:
        self.app, self.logins = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/session/v1/login-request":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []

        async def recording_receive():
            msg = await receive()
            if msg["type"] == "http.request":
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    raw = b"".join(chunks)
                    if dict(scope["headers"]).get(b"content-encoding") == b"gzip":
                        raw = gzip.decompress(raw)
                    self.logins.append(json.loads(raw)["data"])
            return msg

        return await self.app(scope, recording_receive, send)


@pytest.fixture
def clean_env(monkeypatch):
    for k in LOGIN_ENV:
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


@pytest.fixture
def server(clean_env):
    """fakesnow's ASGI app served in-process on 127.0.0.1 (as ``fakesnow.server()`` does), logins recorded.

    Started here rather than through ``fakesnow.server()`` because importing ``fakesnow.server`` (the
    module) replaces that function on the package, and the recorder must wrap the app.
    """
    recorder = _LoginRecorder(fakesnow.server.app)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(recorder, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, name="fakesnow", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert thread.is_alive() and time.monotonic() < deadline, "fakesnow did not start"
        time.sleep(0.05)
    try:
        yield port, recorder
    finally:
        srv.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write_key(path: Path, key, passphrase: str | None) -> Path:
    enc = serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc))
    path.chmod(0o600)
    return path


def _source(port: int | None = None, **kw) -> SnowflakeSource:
    where = {"host": "127.0.0.1", "port": port, "protocol": "http"} if port else {}
    args = {"account": "fakesnow", "user": "recframe", "login_timeout": 10, "network_timeout": 10, **where}
    return SnowflakeSource(**{**args, **kw})


def _query_one(src: SnowflakeSource) -> list:
    con = src.connect()
    try:
        return con.cursor().execute("select 41 + 1").fetchall()
    finally:
        con.close()


def _assert_jwt_from(login: dict, key, account: str = "FAKESNOW", user: str = "RECFRAME") -> None:
    assert login["AUTHENTICATOR"] == "SNOWFLAKE_JWT"
    claims = jwt.decode(login["TOKEN"], key.public_key(), algorithms=["RS256"])
    assert claims["sub"] == f"{account}.{user}"
    assert "PASSWORD" not in login


def _assert_not_under(root: Path, *secrets: str) -> None:
    for f in root.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for s in secrets:
                assert s.encode() not in data, f"secret written to {f}"


# ------------------------------------------------------------------------------------------------
# real logins against fakesnow


def test_encrypted_key_pair_logs_in_with_a_jwt_signed_by_that_key(server, rsa_key, tmp_path):
    port, recorder = server
    key_file = _write_key(tmp_path / "rsa_key.p8", rsa_key, PASSPHRASE)
    src = _source(port, private_key_path=str(key_file), private_key_passphrase=PASSPHRASE)
    kwargs = snowflake_auth.connector_kwargs(src._login())
    assert "password" not in kwargs and isinstance(kwargs["private_key"], bytes)
    assert _query_one(src) == [(42,)]
    _assert_jwt_from(recorder.logins[-1], rsa_key)
    assert PASSPHRASE not in repr(src)


def test_dbt_snowflake_logs_in_with_the_same_key_pair(server, rsa_key, tmp_path):
    """The packaged profiles.yml, fed by the source's environment, makes dbt-snowflake log in with the key."""
    from dbt.cli.main import dbtRunner

    port, recorder = server
    key_file = _write_key(tmp_path / "rsa_key.p8", rsa_key, PASSPHRASE)
    src = _source(
        port, authenticator="snowflake_jwt", private_key_path=str(key_file), private_key_passphrase=PASSPHRASE
    )
    project = transform.prepare_project(tmp_path / "state")
    logs = tmp_path / "logs"
    with src.dbt_environment():
        assert os.environ["SNOWFLAKE_PRIVATE_KEY_PASSPHRASE"] == PASSPHRASE
        assert "SNOWFLAKE_AUTHENTICATOR" not in os.environ and "SNOWFLAKE_PASSWORD" not in os.environ
        res = dbtRunner().invoke(
            ["debug", "--connection", "--project-dir", str(project), "--profiles-dir", str(project),
             "--target", "snowflake", "--log-path", str(logs), "--quiet"]
        )  # fmt: skip
    assert res.success, res.exception
    assert "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" not in os.environ  # restored after dbt
    _assert_jwt_from(recorder.logins[-1], rsa_key)
    _assert_not_under(tmp_path / "state", PASSPHRASE)
    _assert_not_under(logs, PASSPHRASE)


@pytest.mark.parametrize("authenticator", ["oauth", "programmatic_access_token"])
def test_token_logins_send_the_token_and_no_password(server, authenticator):
    port, recorder = server
    src = _source(port, user=None, authenticator=authenticator, token=TOKEN, password="ignored-password")
    assert _query_one(src) == [(42,)]
    login = recorder.logins[-1]
    assert login["AUTHENTICATOR"] == authenticator.upper() and login["TOKEN"] == TOKEN
    assert "PASSWORD" not in login
    fields = snowflake_auth.dbt_profile_fields(src._login())
    assert fields["authenticator"] == authenticator and fields["token"] == TOKEN and fields["password"] is None


def _connections_toml(home: Path, body: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    f = home / "connections.toml"
    f.write_text(body)
    f.chmod(stat.S_IRUSR | stat.S_IWUSR)  # the connector warns about files others can read


def test_named_connection_from_connections_toml(server, tmp_path, clean_env):
    """``connection_name`` with SNOWFLAKE_HOME: the connector reads the entry, dbt gets the same fields."""
    port, recorder = server
    home = tmp_path / "snowflake_home"
    _connections_toml(
        home,
        f'[other]\naccount = "nowhere"\n\n[fake]\naccount = "fakesnow"\nuser = "tomluser"\npassword = "toml-pw-123"\n'
        f'host = "127.0.0.1"\nport = {port}\nprotocol = "http"\n',
    )
    clean_env.setenv("SNOWFLAKE_HOME", str(home))
    src = _source(account=None, user=None, connection_name="fake")
    kwargs = snowflake_auth.connector_kwargs(src._login())
    assert kwargs["connection_name"] == "fake" and Path(kwargs["connections_file_path"]) == home / "connections.toml"
    assert "account" not in kwargs and "password" not in kwargs  # the connector takes them from the file
    assert _query_one(src) == [(42,)]
    assert recorder.logins[-1]["LOGIN_NAME"] == "tomluser" and recorder.logins[-1]["PASSWORD"] == "toml-pw-123"
    env = snowflake_auth.dbt_env(src._login())
    assert env["SNOWFLAKE_ACCOUNT"] == "fakesnow" and env["SNOWFLAKE_USER"] == "tomluser"
    assert env["SNOWFLAKE_HOST"] == "127.0.0.1" and env["SNOWFLAKE_PORT"] == str(port)
    # a setting given to recframe overrides the entry, as the connector does
    _query_one(_source(account=None, user="override", connection_name="fake"))
    assert recorder.logins[-1]["LOGIN_NAME"] == "override"


def test_named_connection_with_an_encrypted_key_file(server, rsa_key, tmp_path, clean_env):
    port, recorder = server
    key_file = _write_key(tmp_path / "rsa_key.p8", rsa_key, PASSPHRASE)
    home = tmp_path / "sfhome"
    _connections_toml(
        home,
        f'[kp]\naccount = "fakesnow"\nuser = "recframe"\nauthenticator = "SNOWFLAKE_JWT"\n'
        f'private_key_file = "{key_file}"\nprivate_key_file_pwd = "{PASSPHRASE}"\n'
        f'host = "127.0.0.1"\nport = {port}\nprotocol = "http"\n',
    )
    clean_env.setenv("SNOWFLAKE_HOME", str(home))
    src = _source(account=None, user=None, connection_name="kp")
    assert _query_one(src) == [(42,)]
    _assert_jwt_from(recorder.logins[-1], rsa_key)
    fields = snowflake_auth.dbt_profile_fields(src._login())
    assert fields["private_key_path"] == str(key_file) and fields["private_key_passphrase"] == PASSPHRASE
    assert fields["authenticator"] is None  # dbt's key-pair form: path + passphrase, no authenticator


# ------------------------------------------------------------------------------------------------
# arguments only (no server answers these logins)


def test_externalbrowser_passes_only_the_authenticator_and_user(clean_env):
    src = _source(authenticator="ExternalBrowser", password="unused-pw")
    kwargs = snowflake_auth.connector_kwargs(src._login())
    assert kwargs["authenticator"] == "EXTERNALBROWSER" and kwargs["user"] == "recframe"
    assert not {"password", "token", "private_key"} & set(kwargs)
    env = snowflake_auth.dbt_env(src._login())
    assert env["SNOWFLAKE_AUTHENTICATOR"] == "externalbrowser" and env["SNOWFLAKE_PASSWORD"] is None


def test_okta_url_logs_in_with_the_password(clean_env):
    src = _source(authenticator="HTTPS://acme.okta.com", password="okta-pw-1")
    kwargs = snowflake_auth.connector_kwargs(src._login())
    assert kwargs["authenticator"] == "https://acme.okta.com" and kwargs["password"] == "okta-pw-1"
    assert "SNOWFLAKE_PASSWORD" in _config_error(_source(authenticator="https://acme.okta.com"))


def test_unencrypted_key_needs_no_passphrase(rsa_key, tmp_path, clean_env):
    key_file = _write_key(tmp_path / "plain.p8", rsa_key, None)
    kwargs = snowflake_auth.connector_kwargs(_source(private_key_path=str(key_file))._login())
    assert kwargs["authenticator"] == "SNOWFLAKE_JWT"
    loaded = serialization.load_der_private_key(kwargs["private_key"], password=None)
    assert loaded.private_numbers() == rsa_key.private_numbers()


# ------------------------------------------------------------------------------------------------
# missing or wrong credentials: one line naming what to set, before any connection


def _config_error(src: SnowflakeSource) -> str:
    with pytest.raises(ConfigError) as e:
        src.check()
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_credentials_name_the_variable_to_set(rsa_key, tmp_path, clean_env):
    assert "SNOWFLAKE_PASSWORD" in _config_error(_source())
    assert "SNOWFLAKE_TOKEN" in _config_error(_source(authenticator="oauth"))
    assert "SNOWFLAKE_USER" in _config_error(_source(user=None, authenticator="externalbrowser"))
    assert "SNOWFLAKE_PRIVATE_KEY_PATH" in _config_error(_source(authenticator="snowflake_jwt"))
    msg = _config_error(_source(private_key_path=str(tmp_path / "absent.p8")))
    assert "datasource.private_key_path" in msg and "absent.p8" in msg
    encrypted = _write_key(tmp_path / "enc.p8", rsa_key, PASSPHRASE)
    msg = _config_error(_source(private_key_path=str(encrypted)))
    assert "SNOWFLAKE_PRIVATE_KEY_PASSPHRASE" in msg and "encrypted" in msg
    msg = _config_error(_source(private_key_path=str(encrypted), private_key_passphrase="wrong-pass"))
    assert "does not decrypt" in msg and "wrong-pass" not in msg
    (tmp_path / "junk.p8").write_text("not a key")
    assert "is not a PEM private key" in _config_error(_source(private_key_path=str(tmp_path / "junk.p8")))


def test_named_connection_errors(tmp_path, clean_env):
    clean_env.setenv("SNOWFLAKE_HOME", str(tmp_path / "nohome"))
    msg = _config_error(_source(account=None, user=None, connection_name="prod"))
    assert "connections.toml" in msg and "SNOWFLAKE_HOME" in msg
    _connections_toml(tmp_path / "nohome", '[dev]\naccount = "a"\nuser = "u"\n')
    msg = _config_error(_source(account=None, user=None, connection_name="prod"))
    assert "'prod'" in msg and "known: dev" in msg
    msg = _config_error(_source(account=None, user=None, connection_name="dev"))
    assert "SNOWFLAKE_PASSWORD" in msg and "[dev] entry of connections.toml" in msg


def test_unknown_authenticator_fails_at_construction(clean_env):
    with pytest.raises(ConfigError) as e:
        _source(authenticator="kerberos")
    assert "datasource.authenticator" in str(e.value) and "snowflake_jwt" in str(e.value)


def test_cli_oauth_without_token_exits_2_naming_the_variable(tmp_path, clean_env, capsys):
    clean_env.setenv("SNOWFLAKE_ACCOUNT", "acme-prod")
    clean_env.setenv("SNOWFLAKE_AUTHENTICATOR", "oauth")
    clean_env.setenv("RECFRAME_HOME", str(tmp_path))
    code = main(["datasource=snowflake", "steps=[data]", f"hydra.run.dir={tmp_path / 'run'}"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "datasource.token" in err and "SNOWFLAKE_TOKEN" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------------
# secrets stay out of trackers and logs


def test_new_secret_keys_are_masked_for_trackers(tmp_path, clean_env):
    clean_env.setenv("SNOWFLAKE_PRIVATE_KEY_PATH", str(tmp_path / "k.p8"))
    clean_env.setenv("SNOWFLAKE_PRIVATE_KEY_PASSPHRASE", PASSPHRASE)
    clean_env.setenv("SNOWFLAKE_TOKEN", TOKEN)
    cfg = compose(["datasource=snowflake"])
    params = redacted_params(cfg)
    for key in ("private_key_path", "private_key_passphrase", "token"):
        assert params[f"datasource.{key}"] == REDACTED, key
    assert params["datasource.connection_name"] != REDACTED
    # a secret that reaches a value under an innocent key is scrubbed by its environment variable
    scrubbed = scrub_params({"note": f"token={TOKEN} pp={PASSPHRASE}"})
    assert TOKEN not in scrubbed["note"] and PASSPHRASE not in scrubbed["note"]


def test_connect_errors_mask_the_token(clean_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = _source(port, authenticator="oauth", token=TOKEN, login_timeout=3, network_timeout=3)
    with pytest.raises(Exception) as e:
        src.check()
    assert TOKEN not in str(e.value) and TOKEN not in repr(src)
