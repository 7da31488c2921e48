# recframe serving image: the local endpoint (uvicorn) by default, MLServer for Seldon on Kubernetes.
# Documented in docs/deployment.md; not built in CI.
#
#   docker build -t recframe-serving:latest .
#   docker run --rm -p 8080:8080 -v "$PWD/outputs/runs/<run>/model:/opt/ml/model:ro" recframe-serving:latest
#   curl -s localhost:8080/invocations -d '{"session": ["sku1", "sku2"], "k": 10}'
#
# As a Seldon Core server image (deployer.image) it runs `mlserver start /mnt/models` instead:
#   docker run ... recframe-serving:latest mlserver start /mnt/models

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
# One virtualenv, copied whole into the runtime stage: pip then sees the CPU torch installed first
# (with --prefix it would not, and would resolve `torch>=2.3` to a multi-GB CUDA build).
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"
COPY pyproject.toml README.md ./
COPY recframe ./recframe
COPY conf ./conf
COPY dbt ./dbt
COPY hydra_plugins ./hydra_plugins
RUN pip install ".[seldon]"

FROM python:3.11-slim
# No telemetry, no cloud-metadata probes, one torch thread (the event loop needs the other core).
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    DO_NOT_TRACK=true AWS_EC2_METADATA_DISABLED=true \
    RECFRAME_ARTIFACT=/opt/ml/model RECFRAME_TORCH_THREADS=1 RECFRAME_MAX_BATCH=64
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 recframe
USER recframe
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s CMD \
    python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/ping').status != 200)"
# 0.0.0.0 inside the container only: publish the port on the host as you see fit (-p 127.0.0.1:8080:8080).
# SIGTERM (docker stop) lets uvicorn finish in-flight requests, then exit.
CMD ["uvicorn", "recframe.deployer.serving:app_from_env", "--factory", "--host", "0.0.0.0", "--port", "8080", \
     "--workers", "1", "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "10"]
