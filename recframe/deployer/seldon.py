"""``deployer=seldon``: MLServer (Seldon's inference server) locally, Seldon Core manifests for Kubernetes.

``deploy`` writes one self-contained *model folder* into the run directory
(``seldon/models/NAME/``: ``model-settings.json`` naming :class:`RecframeRuntime` plus the artifact
files), starts a real ``mlserver start`` subprocess on 127.0.0.1 (free HTTP and gRPC ports, the
metrics server off) over it, waits for readiness and smoke-tests it over the V2 REST protocol.

The same folder is what a cluster serves: ``seldon/manifests/`` gets a Seldon Core v2 ``Server`` and
``Model`` (``storageUri`` = ``deployer.storage_uri``, where you copy the folder) and a v1
``SeldonDeployment``. They are applied with ``kubectl --context CTX apply`` only when
``deployer.kube_context`` is set; otherwise they are only rendered.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from recframe import validation as v
from recframe.deployer.smoke import example_session, failed_checks, run_smoke
from recframe.interfaces import ConfigError, Deployer, DeployError, Deployment, RecframeError

log = logging.getLogger(__name__)

RUNTIME = "recframe.deployer.mlserver_runtime.RecframeRuntime"
ARTIFACT_FILES = ("model.json", "vocab.json", "weights.pt", "checksums.json")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class SeldonDeployer(Deployer):
    """Serve the artifact with MLServer's V2 protocol; render (and optionally apply) Seldon manifests."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        http_port: int = 0,
        grpc_port: int = 0,
        model_name: str = "recframe",
        namespace: str = "seldon",
        storage_uri: str | None = None,
        image: str = "recframe-serving:latest",
        replicas: int = 1,
        kube_context: str | None = None,
        parallel_workers: int = 0,
        keep_alive: bool = False,
        force: bool = False,
        smoke_k: int = 10,
        startup_timeout_s: float = 60.0,
        torch_threads: int | None = 1,
    ) -> None:
        self.host = str(host)
        self.http_port = v.integer("deployer.http_port", http_port, 0, 65535)
        self.grpc_port = v.integer("deployer.grpc_port", grpc_port, 0, 65535)
        if not isinstance(model_name, str) or not model_name.replace("-", "").isalnum() or not model_name.islower():
            raise ConfigError("deployer.model_name", model_name, "must be lower-case letters, digits and hyphens")
        self.model_name = model_name
        self.namespace = str(namespace)
        self.storage_uri = storage_uri or None
        self.image = str(image)
        self.replicas = v.integer("deployer.replicas", replicas, 1)
        self.kube_context = kube_context or None
        self.parallel_workers = v.integer("deployer.parallel_workers", parallel_workers, 0, 64)
        self.keep_alive = v.boolean("deployer.keep_alive", keep_alive)
        self.force = v.boolean("deployer.force", force)
        self.smoke_k = v.integer("deployer.smoke_k", smoke_k, 1)
        self.startup_timeout_s = v.positive("deployer.startup_timeout_s", startup_timeout_s)
        self.torch_threads = None if torch_threads is None else v.integer("deployer.torch_threads", torch_threads, 1)
        self.url: str | None = None
        self._proc: subprocess.Popen | None = None
        self._log_file: Any = None

    def check(self) -> None:
        """MLServer must be installed; kubectl too when manifests are to be applied."""
        import importlib.util

        if importlib.util.find_spec("mlserver") is None:
            raise RecframeError("deployer=seldon needs MLServer: pip install 'recframe[seldon]'")
        if self.kube_context and shutil.which("kubectl") is None:
            raise RecframeError(f"deployer.kube_context={self.kube_context} is set but kubectl is not on PATH")

    # ------------------------------------------------------------------ files

    def write_model_folder(self, artifact_dir: Path, root: Path) -> Path:
        """``root/models/NAME/``: model-settings.json + the artifact, servable by MLServer anywhere."""
        folder = root / "models" / self.model_name
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for name in ARTIFACT_FILES:
            shutil.copy2(Path(artifact_dir) / name, folder / name)
        extra: dict[str, Any] = {}
        if self.torch_threads:
            extra["torch_threads"] = self.torch_threads
        settings = {
            "name": self.model_name,
            "implementation": RUNTIME,
            "parallel_workers": self.parallel_workers,
            "parameters": {"uri": "./", "extra": extra},
        }
        (folder / "model-settings.json").write_text(json.dumps(settings, indent=2))
        return folder

    def write_server_settings(self, root: Path, http_port: int, grpc_port: int) -> Path:
        settings = {
            "host": self.host,
            "http_port": http_port,
            "grpc_port": grpc_port,
            "metrics_endpoint": None,  # no third listener; MLServer's metrics server binds all interfaces
            "parallel_workers": self.parallel_workers,
            "debug": False,
            "load_models_at_startup": True,
            "model_repository_root": str((root / "models").resolve()),
        }
        path = root / "models" / "settings.json"
        path.write_text(json.dumps(settings, indent=2))
        return path

    def render_manifests(self, out: Path) -> list[Path]:
        """Seldon Core v2 ``Server`` + ``Model`` and a v1 ``SeldonDeployment`` as YAML files."""
        import yaml

        storage = self.storage_uri or f"s3://YOUR-BUCKET/recframe/{self.model_name}"  # placeholder, documented
        server_name = f"{self.model_name}-server"
        labels = {"app.kubernetes.io/part-of": "recframe"}
        server = {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Server",
            "metadata": {"name": server_name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "serverConfig": "mlserver",
                "capabilities": ["recframe"],
                "replicas": self.replicas,
                "podSpec": {"containers": [{"name": "mlserver", "image": self.image}]},
            },
        }
        model = {
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": self.model_name, "namespace": self.namespace, "labels": labels},
            "spec": {"storageUri": storage, "requirements": ["recframe"], "server": server_name},
        }
        v1 = {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": {"name": self.model_name, "namespace": self.namespace, "labels": labels},
            "spec": {
                "protocol": "v2",
                "predictors": [
                    {
                        "name": "default",
                        "replicas": self.replicas,
                        "graph": {
                            "name": self.model_name,
                            "type": "MODEL",
                            "implementation": "CUSTOM_INFERENCE_SERVER",
                            "modelUri": storage,
                        },
                        "componentSpecs": [{"spec": {"containers": [{"name": self.model_name, "image": self.image}]}}],
                    }
                ],
            },
        }
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, doc in (("server.yaml", server), ("model.yaml", model), ("seldondeployment-v1.yaml", v1)):
            p = out / name
            p.write_text(yaml.safe_dump(doc, sort_keys=False))
            paths.append(p)
        return paths

    # ------------------------------------------------------------------ lifecycle

    def deploy(self, artifact_dir: Path, run_dir: Path) -> Deployment:
        self.check()
        if self._proc is not None:
            raise DeployError(f"MLServer already serving at {self.url}; call teardown() before deploying again")
        root = Path(run_dir) / "seldon"
        self.write_model_folder(Path(artifact_dir), root)
        manifests = self.render_manifests(root / "manifests")
        http_port = self.http_port or _free_port(self.host)
        grpc_port = self.grpc_port or _free_port(self.host)
        while grpc_port == http_port:
            grpc_port = _free_port(self.host)
        settings = self.write_server_settings(root, http_port, grpc_port)
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        self.url = f"http://{host}:{http_port}"
        env = dict(os.environ)
        env.setdefault("DO_NOT_TRACK", "true")
        self._log_path = root / "mlserver.log"
        self._log_file = self._log_path.open("ab")
        mlserver = Path(sys.executable).with_name("mlserver")
        cmd = [str(mlserver)] if mlserver.exists() else [sys.executable, "-m", "mlserver.cli.main"]
        self._proc = subprocess.Popen(
            [*cmd, "start", str(settings.parent)], env=env, stdout=self._log_file, stderr=subprocess.STDOUT, cwd=root
        )
        self._wait_ready()
        smoke = run_smoke(self.v2_post(), example_session(artifact_dir), self.smoke_k)
        smoke["checks"]["v2_native"] = self._native_check(example_session(artifact_dir))
        smoke["passed"] = smoke["passed"] and smoke["checks"]["v2_native"]["passed"]
        if not smoke["passed"]:
            self.teardown()
            raise DeployError(f"MLServer failed its smoke test ({failed_checks(smoke)}); log: {self._log_path}")
        applied = self._apply(manifests) if self.kube_context else False
        details = {
            "deployer": "seldon",
            "infer_url": f"{self.url}/v2/models/{self.model_name}/infer",
            "http_port": http_port,
            "grpc_port": grpc_port,
            "pid": self._proc.pid if self._proc else None,
            "model_folder": str(root / "models" / self.model_name),
            "manifests": [str(p) for p in manifests],
            "applied_to": self.kube_context if applied else None,
            "log": str(self._log_path),
        }
        return Deployment(url=self.url, smoke=smoke, details=details)

    def _wait_ready(self) -> None:
        from recframe.deployer.smoke import http_get_status

        deadline = time.monotonic() + self.startup_timeout_s
        ready = f"{self.url}/v2/models/{self.model_name}/ready"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.teardown()
                raise DeployError(f"mlserver exited with code {code} during startup; see {self._log_path}")
            if http_get_status(ready) == 200:
                return
            time.sleep(0.1)
        self.teardown()
        raise DeployError(f"MLServer did not report {self.model_name} ready within {self.startup_timeout_s:g} s")

    def v2_post(self) -> Any:
        """``post`` speaking the contract over V2: the body travels as the ``request`` BYTES tensor."""
        from recframe.deployer.smoke import http_post

        raw_post = http_post(f"{self.url}/v2/models/{self.model_name}/infer")

        def post(body: bytes) -> tuple[int, Any]:
            text = body.decode("utf-8", errors="replace")
            v2 = {"inputs": [{"name": "request", "shape": [1], "datatype": "BYTES", "data": [text]}]}
            status, answer = raw_post(json.dumps(v2).encode())
            if status != 200:
                return status, answer
            outputs = {o["name"]: o for o in answer.get("outputs", [])}
            return status, json.loads(outputs["response"]["data"][0])

        return post

    def _native_check(self, session: list[str]) -> dict[str, Any]:
        from recframe.deployer.smoke import http_post

        post = http_post(f"{self.url}/v2/models/{self.model_name}/infer")
        body = {
            "inputs": [
                {"name": "session", "shape": [len(session)], "datatype": "BYTES", "data": session},
                {"name": "k", "shape": [1], "datatype": "INT64", "data": [self.smoke_k]},
            ]
        }
        t0 = time.perf_counter()
        try:
            status, answer = post(json.dumps(body).encode())
            outputs = {o["name"]: o["data"] for o in answer.get("outputs", [])} if status == 200 else {}
            items = outputs.get("items", [])
            ok = status == 200 and 0 < len(items) <= self.smoke_k and len(outputs.get("scores", [])) == len(items)
            problem = None if ok else f"status {status}: {str(answer)[:200]}"
        except Exception as e:
            status, problem = None, f"{type(e).__name__}: {e}"
        check = {"passed": problem is None, "status": status, "ms": round((time.perf_counter() - t0) * 1000, 2)}
        return {**check, **({"problem": problem} if problem else {})}

    def _apply(self, manifests: list[Path]) -> bool:
        for path in manifests:
            if path.name == "seldondeployment-v1.yaml":
                continue  # v1 and v2 are alternatives; v2 is applied, v1 is for Seldon Core 1.x clusters
            cmd = ["kubectl", "--context", self.kube_context, "apply", "-f", str(path)]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if res.returncode != 0:
                raise DeployError(f"kubectl apply -f {path.name} failed: {res.stderr.strip().splitlines()[-1:]}")
        return True

    def wait(self) -> None:
        """Serve until Ctrl-C (or until MLServer exits), then stop it."""
        try:
            while self._proc is not None and self._proc.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            log.info("stopping MLServer")
        finally:
            self.teardown()

    def teardown(self) -> None:
        """Stop the local MLServer (SIGTERM, then SIGKILL); cluster resources are left as they are."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
