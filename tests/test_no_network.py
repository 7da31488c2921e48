"""Zero outbound traffic: the whole default loop, traced at the syscall level, connects only to loopback."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

INET = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6?, "([^"]+)"')
LOOPBACK = ("127.", "::1", "::ffff:127.")


def outbound_addresses(trace: str) -> set[str]:
    """Every non-loopback address a traced process tried to connect to."""
    found = set()
    for line in trace.splitlines():
        if "connect(" not in line:
            continue
        for m in INET.finditer(line):
            addr = m.group(1) or m.group(2)
            if not addr.startswith(LOOPBACK):
                found.add(addr)
    return found


def test_parser_flags_remote_addresses():
    trace = (
        'connect(5, {sa_family=AF_INET, sin_port=htons(80), sin_addr=inet_addr("169.254.169.254")}, 16)\n'
        'connect(6, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16)\n'
        "connect(7, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), "
        'inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28)\n'
    )
    assert outbound_addresses(trace) == {"169.254.169.254", "2001:db8::1"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_default_loop_connects_only_to_loopback(tmp_path):
    trace_file = tmp_path / "trace.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DO_NOT_TRACK", "SNOWFLAKE_", "AWS_EC2"))}
    env["RECFRAME_HOME"] = str(tmp_path / "home")
    cmd = [
        "strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace_file),
        sys.executable, "-m", "recframe", "model=pop", "tester=metrics", "datasource.synthetic.n_sessions=3000",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "run" / "deploy.json").exists()
    assert outbound_addresses(trace_file.read_text()) == set()
