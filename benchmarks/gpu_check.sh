#!/usr/bin/env bash
# The GPU check as one prepared script: every figure the GPU issue asks for, within about 8 minutes.
#
#   1. bf16:   experiment=gru4rec_diginetica (the official Diginetica parameters) on the GPU with the
#              trainer=gpu preset (bf16-mixed), 10 epochs, then the full evaluation of the test set
#              (every position, all items), timed twice (cold and warm). The official GRU4Rec measured
#              HR@20 0.5428 / MRR@20 0.1825 in 283 s on an H200 (../shared/data/README.md); the
#              evaluation took it 0.75 s. `batches_s` is the training from the first batch's start to
#              the last batch's end; `load_s` and `before_first_batch_s` are the data preparation.
#   2. fp32:   the same with precision 32-true, to show what bf16 costs (accuracy) and saves (time).
#   3. speed:  one epoch of `gru` (its defaults) and `sasrec` on the GPU: `batch_transitions_per_s`.
#   4. ddp:    `python -m recframe trainer=ddp trainer.devices=1` (one process): data from the files,
#              one epoch, test (tester=metrics), the artifact written (deployer=none).
#
# Each step writes one log to $OUT whose last line is its JSON result, and $OUT/summary.json gathers
# them (with each step's exit code, seconds and error). A failing or slow step does not stop the
# later ones: each runs under `timeout`, sized from what is left of GPU_CHECK_BUDGET_S (default 460 s)
# after keeping a minimum for the steps after it, and the training steps stop themselves (Lightning
# max_time) early enough to still evaluate and report the epochs they trained.
#
# The GPU image has torch, lightning, pandas and pyarrow but not Hydra. Carry its wheels, prepared
# once on the development machine from the repository root (pure Python; unpacked here without pip):
#   echo /.whl/ >> "$(git rev-parse --git-common-dir)/info/exclude"
#   python -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl hydra-core==1.3.8 omegaconf==2.3.1
#   python -m pip wheel --no-deps -w .whl antlr4-python3-runtime==4.9.3   # published as an sdist only
# and copy the data set into the repository (ignored), e.g. `mkdir -p .data && cp -r ../shared/data/diginetica .data/`.
# Then, with the device tool: run(command="bash benchmarks/gpu_check.sh .data/diginetica", carry=[".whl", ".data"]).
#
# Settings (environment): OUT (results folder; default /tmp/recframe-gpu), PYTHON (default python3),
# GPU_CHECK_DEVICE (cuda, or cpu to rehearse the script), GPU_CHECK_EPOCHS (default 10),
# GPU_CHECK_BUDGET_S (default 460), GPU_CHECK_STEPS (default "bf16 fp32 speed ddp"), GPU_CHECK_OVERRIDES
# (Hydra overrides for the preset runs, steps 1, 2 and 4, e.g. "model.layers=[32] model.n_sample=64" to
# rehearse on a CPU with a small sample; empty on the GPU, which runs the published parameters).
set -uo pipefail
DATA=${1:-../shared/data/diginetica}
OUT_DIR=${OUT:-/tmp/recframe-gpu}
PY=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
EPOCHS=${GPU_CHECK_EPOCHS:-10}
BUDGET=${GPU_CHECK_BUDGET_S:-460}
STEPS=${GPU_CHECK_STEPS:-bf16 fp32 speed ddp}
read -r -a OVERRIDES <<<"${GPU_CHECK_OVERRIDES:-}"
PRESET_SET=()
for o in "${OVERRIDES[@]}"; do PRESET_SET+=(--set "$o"); done
# seconds a train_speed.py process spends besides training (imports, reading, evaluating twice)
OVERHEAD=${GPU_CHECK_OVERHEAD_S:-45}
mkdir -p "$OUT_DIR"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/recframe-gpu-check.XXXXXX")
RECORDS="$WORK/steps.tsv"
: >"$RECORDS"
export PYTHONUNBUFFERED=1 DO_NOT_TRACK=true HYDRA_FULL_ERROR=1

# --- set-up: Hydra's wheels, what the machine is ------------------------------------------------
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" - "$WORK/site" .whl/*.whl <<'EOF'
import sys, zipfile
for wheel in sys.argv[2:]:  # pure-Python wheels: unpacking is installing
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
EOF
    export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 || echo "no nvidia-smi"
    "$PY" -c "import sys, torch, lightning, hydra, omegaconf; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, torch.cuda.is_available(), 'lightning', lightning.__version__, 'hydra', hydra.__version__, \
'omegaconf', omegaconf.__version__)" 2>&1 | tail -3
    echo "data: $DATA ($(ls "$DATA" 2>&1 | tr '\n' ' '))"
    echo "cpus: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

# --- step plumbing ---------------------------------------------------------------------------------
ORDER="bf16 fp32 speed ddp"
# the least time worth giving a step (what a later step keeps back for it)
min_seconds() { case $1 in fp32) echo 60 ;; speed) echo 45 ;; ddp) echo 60 ;; *) echo 0 ;; esac; }
selected() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }

# step_timeout NAME CAP: seconds for step NAME, at most CAP, keeping the minimum of each selected later step
step_timeout() {
    local reserve=0 after=0 s
    for s in $ORDER; do
        if [ "$after" = 1 ] && selected "$s"; then reserve=$((reserve + $(min_seconds "$s"))); fi
        [ "$s" = "$1" ] && after=1
    done
    local left=$((BUDGET - SECONDS - reserve))
    if [ "$left" -gt "$2" ]; then echo "$2"; else echo "$left"; fi
}

# train_cap TIMEOUT: seconds of training that leave a step of TIMEOUT seconds time to evaluate and report
train_cap() {
    local cap=$(($1 - OVERHEAD))
    if [ "$cap" -lt 10 ]; then echo 10; else echo "$cap"; fi
}

# run_step NAME TIMEOUT CMD...: run CMD under timeout, its output in $OUT/NAME.log; never fails the script
run_step() {
    local name=$1 limit=$2
    shift 2
    selected "$name" || return 0
    local log="$OUT_DIR/$name.log"
    if [ "$limit" -lt 20 ]; then
        echo "skipped: ${limit}s left of the ${BUDGET}s budget" >"$log"
        printf '%s\t%s\t%s\t%s\n' "$name" skipped 0 "$limit" >>"$RECORDS"
        echo "== $name: skipped (${limit}s left)"
        return 0
    fi
    echo "== $name (timeout ${limit}s): $*"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" >"$log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$limit" >>"$RECORDS"
    echo "== $name: exit $rc after $((SECONDS - t0))s"
    tail -n 3 "$log" | cut -c1-1000
}

SPEED=(benchmarks/train_speed.py --dataset "$DATA" --device "$DEVICE")

# --- 1. bf16, the preset, 10 epochs, evaluated (cold + warm) ---------------------------------------
T=$(step_timeout bf16 270)
run_step bf16 "$T" "$PY" "${SPEED[@]}" --models gru --experiment gru4rec_diginetica --epochs "$EPOCHS" "${PRESET_SET[@]}" \
    --precision bf16-mixed --max-seconds "$(train_cap "$T")" --evaluate --eval-repeats 2

# --- 2. fp32, the same ------------------------------------------------------------------------------
T=$(step_timeout fp32 200)
run_step fp32 "$T" "$PY" "${SPEED[@]}" --models gru --experiment gru4rec_diginetica --epochs "$EPOCHS" "${PRESET_SET[@]}" \
    --precision 32-true --max-seconds "$(train_cap "$T")" --evaluate --eval-repeats 2

# --- 3. one epoch of gru (defaults) and sasrec ----------------------------------------------------
T=$(step_timeout speed 75)
run_step speed "$T" "$PY" "${SPEED[@]}" --models gru,sasrec --epochs 1 --max-seconds $(((T - 25) / 2))

# --- 4. trainer=ddp, one process, through the CLI; then what it left -------------------------------
# The CLI finds its configs as the package recframe.conf, which the wheel maps from conf/
# ([tool.setuptools.package-dir] in pyproject.toml). The GPU image has no recframe installed, so the
# step runs from that layout, staged from this checkout as the wheel would lay it out.
RUN_DIR="$WORK/ddp_run"
STAGE="$WORK/stage"
mkdir -p "$STAGE"
cp -r recframe hydra_plugins "$STAGE"/ && cp -r conf "$STAGE/recframe/conf" && cp -r dbt "$STAGE/recframe/dbt_project"
DATA_ABS=$(cd "$DATA" 2>/dev/null && pwd || echo "$DATA")
T=$(step_timeout ddp 90)
DDP_ARGS=(trainer=ddp trainer.devices=1 trainer.max_epochs=1 experiment=gru4rec_diginetica datasource=files
    "datasource.train=$DATA_ABS/train.tsv.gz" "datasource.test=$DATA_ABS/test.tsv.gz" tester=metrics deployer=none
    tracker=none run.progress=false "hydra.run.dir=$RUN_DIR" "+trainer.max_time={seconds:$(train_cap "$T")}"
    "${OVERRIDES[@]}")
[ "$DEVICE" = cpu ] && DDP_ARGS+=(trainer.accelerator=cpu)
cat >"$WORK/ddp_artifact.py" <<'EOF'
"""The ddp step's result: the artifact's files, the run's metrics and timings, the epoch log."""
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
read = lambda p: json.loads((run / p).read_text()) if (run / p).exists() else None
model = {p.name: p.stat().st_size for p in sorted((run / "model").glob("*"))}
csv = run / "train" / "metrics.csv"
print(json.dumps({"benchmark": "gpu_check_ddp", "artifact": model, "artifact_ok": "weights.pt" in model,
                  "metrics": read("metrics.json"), "timings": read("timings.json"),
                  "train_metrics_csv": csv.read_text().splitlines() if csv.exists() else None}))
sys.exit(0 if "weights.pt" in model else 1)
EOF
{
    printf 'cd %q || exit 2\n' "$STAGE"
    printf '%q ' "$PY" -m recframe "${DDP_ARGS[@]}"
    printf '|| exit $?\n'
    printf '%q ' "$PY" "$WORK/ddp_artifact.py" "$RUN_DIR"
    printf '\n'
} >"$WORK/ddp.sh"
run_step ddp "$T" bash "$WORK/ddp.sh"

# --- summary -----------------------------------------------------------------------------------------
"$PY" - "$RECORDS" "$OUT_DIR" "$SECONDS" <<'EOF'
import json, re, sys
from pathlib import Path
records, out, total = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
steps = {}
for line in records.read_text().splitlines():
    name, rc, seconds, limit = line.split("\t")
    lines = (out / f"{name}.log").read_text(errors="replace").splitlines()
    result = None
    for text in reversed(lines):
        if text.startswith("{"):
            try:
                result = json.loads(text)
            except ValueError:
                pass
            break
    entry = {"exit": rc if rc == "skipped" else int(rc), "seconds": int(seconds), "timeout_s": int(limit)}
    if entry["exit"] in (124, 137):
        entry["error"] = f"timed out after {limit}s"
    elif entry["exit"] != 0:
        errs = [t for t in lines if re.match(r"([\w.]*(Error|Exception)|recframe: error):", t)]
        entry["error"] = (errs[-1] if errs else (lines[-1] if lines else "no output"))[:500]
    entry["result"] = result
    steps[name] = entry
KEYS = ("precision", "epochs", "hr@20", "mrr@20", "load_s", "before_first_batch_s", "batches_s", "train_s",
        "batch_transitions_per_s", "eval_s_runs", "targets", "gpu_peak_mib")
headline = {}
for name, entry in steps.items():
    res = entry["result"] or {}
    brief = {"exit": entry["exit"], "seconds": entry["seconds"]}
    if entry.get("error"):
        brief["error"] = entry["error"]
    for model, side in (res.get("sides") or {}).items():
        brief[model] = {k: side[k] for k in KEYS if k in side}
    if res.get("errors"):
        brief["errors"] = res["errors"]
    if "artifact_ok" in res:
        m = res.get("metrics") or {}
        brief.update(artifact_ok=res["artifact_ok"], timings=res.get("timings"),
                     **{k: m.get(k) for k in ("hr@20", "mrr@20")})
    headline[name] = brief
summary = {"total_s": total, "headline": headline, "steps": steps}
(out / "summary.json").write_text(json.dumps(summary, indent=1))
print(json.dumps(headline, indent=1))
EOF
echo "results in $OUT_DIR after ${SECONDS}s"
rm -rf "$WORK"
exit 0
