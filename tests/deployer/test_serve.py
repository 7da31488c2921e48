"""``recframe serve``: a real uvicorn server on 127.0.0.1 serving real artifacts, in this process or
as a ``python -m recframe serve`` subprocess (signals). Loads are bounded in count and time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from recframe.console import deployment_line
from recframe.deployer.champion import artifact_version, resolve_champion
from recframe.deployer.predictor import Predictor
from recframe.deployer.probe_model import ProbeGRUModel
from recframe.serve import ModelServer, ModelSource, ServeSettings
from recframe.serve import main as serve_main
from tests.deployer.conftest import make_events
from tests.helpers.slow_model import SlowProbeModel

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ServeSettings(port=0, watch_s=0.2, drain_timeout_s=20)


def make_run(folder: Path, model) -> Path:
    """A run directory holding a model artifact, as the train step leaves it."""
    model.fit(make_events(n_sessions=120, n_items=40)).save(folder / "model")
    return folder


def wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/ping", trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} not ready within {timeout} s")


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """``/metrics`` parsed: ``{(sample name, sorted labels): value}``."""
    r = httpx.get(f"{url}/metrics", trust_env=False)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def requests_total(metrics: dict, route: str, status: int) -> float:
    return metrics.get(("recframe_requests_total", (("route", route), ("status", str(status)))), 0.0)


@pytest.fixture
def server_in_thread():
    """``start(source, settings)`` -> a ModelServer running on a thread; stopped after the test."""
    running: list[tuple[ModelServer, threading.Thread]] = []

    def start(source: ModelSource, settings: ServeSettings = SETTINGS) -> ModelServer:
        server = ModelServer(source, settings)
        server.start()
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        return server

    yield start
    for server, thread in running:
        server.stop()
        thread.join(30)


def test_metrics_count_what_was_sent(tmp_path: Path, server_in_thread) -> None:
    run = make_run(tmp_path / "run", ProbeGRUModel(dim=8, seed=1))
    server = server_in_thread(ModelSource(str(run)))
    wait_ready(server.url)
    before = scrape(server.url)
    pings_ok = requests_total(before, "/ping", 200)
    sent = {200: 0, 400: 0, 413: 0, 422: 0}
    items = unknown = sessions = 0
    with httpx.Client(base_url=server.url, trust_env=False) as c:
        for i in range(7):
            session = ["sku1", f"sku{i + 2}", "no-such-sku"]
            assert c.post("/invocations", json={"session": session, "k": 5}).status_code == 200
            sent[200] += 1
            items, unknown, sessions = items + 3, unknown + 1, sessions + 1
        for _ in range(3):
            body = {"sessions": [["sku3"], ["ghost-1", "ghost-2"]], "k": 3}
            assert c.post("/invocations", json=body).status_code == 200
            sent[200] += 1
            items, unknown, sessions = items + 3, unknown + 2, sessions + 2
        for content in (b"{", b"not json", b"\xff\xfe", b""):
            assert c.post("/invocations", content=content).status_code == 400
            sent[400] += 1
        for body in ({"session": ["sku1"], "k": 0}, {"session": "sku1"}):
            assert c.post("/invocations", json=body).status_code == 422
            sent[422] += 1
        assert c.post("/invocations", content=b'{"session": ["' + b"x" * (2 << 20) + b'"]}').status_code == 413
        sent[413] += 1
        assert c.get("/no-such-route").status_code == 404
        assert c.get("/ping").status_code == 200
    m = scrape(server.url)
    for status, n in sent.items():
        assert requests_total(m, "/invocations", status) == n, status
    assert requests_total(m, "other", 404) == 1
    assert requests_total(m, "/ping", 200) == pings_ok + 1
    assert m[("recframe_request_duration_seconds_count", ())] == sum(sent.values())
    assert m[("recframe_batch_sessions_sum", ())] == sessions  # only valid requests reach the model
    assert m[("recframe_session_items_total", ())] == items
    assert m[("recframe_unknown_items_total", ())] == unknown
    assert m[("recframe_unknown_item_share", ())] == pytest.approx(unknown / items)
    version = artifact_version(run / "model")
    assert m[("recframe_model_info", (("model", "probe_gru"), ("version", version)))] == 1


class GatedSource(ModelSource):
    """A run directory whose first resolution waits for the test to open the gate (a slow load)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.gate = threading.Event()

    def resolve(self, wait_s: float = 30) -> Path:
        assert self.gate.wait(30)
        return super().resolve(wait_s)


def test_ping_is_not_ready_before_the_model_is_loaded(tmp_path: Path, server_in_thread) -> None:
    run = make_run(tmp_path / "run", ProbeGRUModel(dim=8, seed=1))
    source = GatedSource(str(run))
    server = server_in_thread(source)
    with httpx.Client(base_url=server.url, trust_env=False) as c:
        for _ in range(3):
            r = c.get("/ping")
            assert r.status_code == 503 and r.json()["error"] == "model not loaded"
        assert c.post("/invocations", json={"session": ["sku1"]}).status_code == 503
        assert c.get("/docs").status_code == 503
        assert requests_total(scrape(server.url), "/ping", 503) == 3
        source.gate.set()
        wait_ready(server.url)
        r = c.get("/ping").json()
        assert r["version"] == artifact_version(run / "model")
        assert c.post("/invocations", json={"session": ["sku1"]}).status_code == 200


def make_registry(path: Path, rows: list[tuple[str, str, Path, bool]]) -> None:
    """A warehouse's ``model_registry`` with the columns serving reads (tenant, version, run, champion)."""
    con = duckdb.connect(str(path))
    con.execute(
        "create or replace table model_registry (tenant varchar, model_version varchar, run_id varchar, "
        "run_dir varchar, is_champion boolean)"
    )
    for tenant, version, run, champion in rows:
        row = [tenant, version, run.name, str(run), champion]
        con.execute("insert into model_registry values (?, ?, ?, ?, ?)", row)
    con.close()


def promote(path: Path, version: str) -> None:
    """What a promotion does to the registry: move the champion flag, in one transaction."""
    from recframe.datasource.warehouse import warehouse_lock

    with warehouse_lock(path):
        con = duckdb.connect(str(path))
        con.execute("begin")
        con.execute("update model_registry set is_champion = (model_version = ?) where tenant = 'default'", [version])
        con.execute("commit")
        con.close()


def test_a_promotion_under_load_swaps_the_model_and_loses_no_request(tmp_path: Path, server_in_thread) -> None:
    run_a = make_run(tmp_path / "a", ProbeGRUModel(dim=8, seed=1))
    run_b = make_run(tmp_path / "b", ProbeGRUModel(dim=8, seed=2))
    va, vb = artifact_version(run_a / "model"), artifact_version(run_b / "model")
    assert va != vb
    wh = tmp_path / "warehouse.duckdb"
    make_registry(wh, [("default", va, run_a, True), ("default", vb, run_b, False)])
    assert resolve_champion("default", wh) == run_a
    session = ["sku1", "sku2"]
    expected = {
        v: Predictor.from_artifact(run / "model").predict(session, k=5)["items"]
        for v, run in ((va, run_a), (vb, run_b))
    }
    assert expected[va] != expected[vb]
    server = server_in_thread(ModelSource("champion", wh, "default"))
    wait_ready(server.url)
    swapped = threading.Event()
    stop_at = time.monotonic() + 40  # bounded: at most this long and 1,500 requests per client

    def client(_: int) -> list[tuple[int, list[str] | None]]:
        out, after_swap = [], 0
        with httpx.Client(base_url=server.url, trust_env=False, timeout=30) as c:
            while len(out) < 1500 and after_swap < 30 and time.monotonic() < stop_at:
                after_swap += swapped.is_set()
                r = c.post("/invocations", json={"session": session, "k": 5})
                out.append((r.status_code, r.json().get("items") if r.status_code == 200 else None))
        return out

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client, i) for i in range(4)]
        time.sleep(0.5)
        promote(wh, vb)
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.url}/ping", trust_env=False).json().get("version") != vb:
            assert time.monotonic() < deadline, "the promoted model was not swapped in"
            time.sleep(0.05)
        swapped.set()
        answers = [a for f in futures for a in f.result()]
    assert answers and all(status == 200 for status, _ in answers)
    seen = {tuple(items) for _, items in answers}
    assert seen == {tuple(expected[va]), tuple(expected[vb])}  # both models answered, nothing else
    m = scrape(server.url)
    assert requests_total(m, "/invocations", 200) == len(answers)
    assert sum(v for (name, labels), v in m.items() if name == "recframe_requests_total" and
               dict(labels)["route"] == "/invocations") == len(answers)  # fmt: skip
    assert m[("recframe_model_swaps_total", ())] == 1
    assert m[("recframe_model_info", (("model", "probe_gru"), ("version", vb)))] == 1
    assert m[("recframe_model_info", (("model", "probe_gru"), ("version", va)))] == 0


def test_a_broken_new_artifact_leaves_the_current_model_serving(
    tmp_path: Path, server_in_thread, caplog: pytest.LogCaptureFixture
) -> None:
    run = make_run(tmp_path / "run", ProbeGRUModel(dim=8, seed=1))
    good = artifact_version(run / "model")
    server = server_in_thread(ModelSource(str(run)))
    wait_ready(server.url)
    replacement = ProbeGRUModel(dim=8, seed=2).fit(make_events(n_sessions=120, n_items=40))
    broken = replacement.save(tmp_path / "broken")
    (broken / "weights.pt").write_bytes((broken / "weights.pt").read_bytes()[:-10])  # fails its checksum
    (run / "model").rename(tmp_path / "previous")
    broken.rename(run / "model")
    with caplog.at_level("ERROR", logger="recframe.serve"):
        deadline = time.monotonic() + 20
        while "checksum mismatch" not in caplog.text:
            assert time.monotonic() < deadline, "the broken artifact was not noticed"
            time.sleep(0.1)
    with httpx.Client(base_url=server.url, trust_env=False) as c:
        assert c.get("/ping").json()["version"] == good
        assert c.post("/invocations", json={"session": ["sku1"]}).status_code == 200
        replacement.save(run / "model")  # repaired: swapped in at the next check
        fixed, deadline = artifact_version(run / "model"), time.monotonic() + 20
        while c.get("/ping").json()["version"] != fixed:
            assert time.monotonic() < deadline, "the repaired artifact was not swapped in"
            time.sleep(0.1)


def _serve_subprocess(args: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recframe", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, line.split("listening on ")[1].split()[0]


@pytest.mark.timeout(180)
def test_sighup_swaps_and_sigterm_drains_requests_in_flight(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", SlowProbeModel(dim=8, seed=1, delay_s=0.5))
    proc, url = _serve_subprocess([str(run), "--watch", "0"])
    try:
        wait_ready(url)
        body = {"session": ["sku1", "sku2"], "k": 5}

        def in_flight(n: int, then) -> list[tuple[int, float, float]]:
            """``n`` requests on connections opened beforehand, and ``then()`` while they are being answered."""
            ready = threading.Barrier(n + 1)

            def call(_: int) -> tuple[int, float, float]:
                with httpx.Client(base_url=url, trust_env=False, timeout=60) as c:
                    assert c.get("/ping").status_code == 200  # connected and accepted
                    ready.wait(30)
                    t0 = time.monotonic()
                    return c.post("/invocations", json=body).status_code, t0, time.monotonic()

            with ThreadPoolExecutor(n) as pool:
                futures = [pool.submit(call, i) for i in range(n)]
                ready.wait(30)
                time.sleep(0.3)  # sent; the slow model takes 0.5 s per batch
                then()
                return [f.result() for f in futures]

        # SIGHUP with requests in flight: a new artifact in the run directory is swapped in
        old = artifact_version(run / "model")
        SlowProbeModel(dim=8, seed=2, delay_s=0.5).fit(make_events(n_sessions=120, n_items=40)).save(run / "model")
        new = artifact_version(run / "model")
        results = in_flight(6, lambda: proc.send_signal(signal.SIGHUP))
        assert [s for s, _, _ in results] == [200] * 6
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}/ping", trust_env=False).json().get("version") != new:
            assert time.monotonic() < deadline, f"still serving {old} after SIGHUP"
            time.sleep(0.1)

        # SIGTERM with requests in flight: every one is answered, then the process exits 0
        signalled: list[float] = []
        results = in_flight(8, lambda: (signalled.append(time.monotonic()), proc.send_signal(signal.SIGTERM)))
        sent_at = signalled[0]
        assert [s for s, _, _ in results] == [200] * 8
        assert all(start < sent_at < end for _, start, end in results)  # in flight when SIGTERM came
        assert proc.wait(30) == 0
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/ping", trust_env=False)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_bad_targets_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    wh = tmp_path / "wh.duckdb"
    cases = [
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path)], "holds no model artifact"),
        (["champion", "--warehouse", str(wh)], "does not exist"),
        (["champion", "--port", "99999"], "--port must be in"),
        (["champion", "--no-such-flag"], "unrecognized arguments"),
    ]
    for argv, message in cases:
        assert serve_main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    duckdb.connect(str(wh)).close()
    assert serve_main(["champion", "--warehouse", str(wh)]) == 2
    assert "has no model_registry table" in capsys.readouterr().err
    make_registry(wh, [("other", "v1", tmp_path, True)])
    assert serve_main(["champion", "--warehouse", str(wh)]) == 2
    assert "tenant 'default' has no champion" in capsys.readouterr().err


def test_an_artifact_that_fails_to_load_stops_the_server_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setenv("RECFRAME_TORCH_THREADS", str(torch.get_num_threads()))  # leave this process as it was
    run = make_run(tmp_path / "run", ProbeGRUModel(dim=8, seed=1))
    weights = run / "model" / "weights.pt"
    weights.write_bytes(weights.read_bytes()[:-10])
    assert serve_main([str(run), "--port", "0", "--watch", "0"]) == 1
    out, err = capsys.readouterr()
    assert "listening on http://127.0.0.1:" in out
    assert "checksum mismatch" in err and len(err.strip().splitlines()) == 1, err


def test_summary_says_when_the_deploy_was_skipped() -> None:
    skipped = {"url": "", "smoke": {"passed": True, "skipped": True}, "deployer": "none"}
    assert deployment_line(skipped) == "deploy skipped (deployer=none)"
    served = {"url": "http://127.0.0.1:1234", "smoke": {"passed": True}, "deployer": "local"}
    assert deployment_line(served) == "http://127.0.0.1:1234 (smoke test passed)"


@pytest.mark.timeout(240)
def test_workers_share_metrics_and_are_replaced_on_a_new_artifact(tmp_path: Path) -> None:
    from recframe.artifact import load_model, save_model

    run = make_run(tmp_path / "run", ProbeGRUModel(dim=8, seed=1))
    other = make_run(tmp_path / "other", ProbeGRUModel(dim=8, seed=2))
    proc, url = _serve_subprocess([str(run), "--workers", "2", "--watch", "0.3"])
    try:
        wait_ready(url, timeout=120)
        answers: list[int] = []
        with httpx.Client(base_url=url, trust_env=False, timeout=30) as c:
            answers += [c.post("/invocations", json={"session": ["sku1"]}).status_code for _ in range(20)]
            assert c.post("/invocations", content=b"{").status_code == 400
            save_model(load_model(other / "model"), run / "model")  # a new artifact in the served run
            new, deadline = artifact_version(run / "model"), time.monotonic() + 150

            def served_versions() -> set[str]:
                m = scrape(url)
                return {dict(k[1])["version"] for k, v in m.items() if k[0] == "recframe_model_info" and v == 1}

            while served_versions() != {new}:  # bounded load while the workers are replaced one by one
                assert time.monotonic() < deadline, "workers were not replaced"
                answers += [c.post("/invocations", json={"session": ["sku1"]}).status_code for _ in range(5)]
                time.sleep(0.2)
            assert c.get("/ping").json()["version"] == new
            m = scrape(url)
        assert set(answers) == {200}
        assert requests_total(m, "/invocations", 200) == len(answers)  # summed over old and new workers
        assert requests_total(m, "/invocations", 400) == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
