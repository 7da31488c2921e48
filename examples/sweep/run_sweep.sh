#!/usr/bin/env bash
# A small grid sweep on the embedded synthetic data, then the leaderboard.
#   bash examples/sweep/run_sweep.sh [SWEEP_DIR] [EXTRA OVERRIDES...]
set -euo pipefail
SWEEP_DIR=${1:-outputs/multiruns/example_sweep}
shift || true
python -m recframe -m model=sknn,vsknn model.k=50,100 'steps=[data,train,test]' run.progress=false \
  datasource.synthetic.n_sessions=3000 datasource.synthetic.n_items=300 \
  hydra.sweep.dir="$SWEEP_DIR" "$@"
echo
column -s, -t < "$SWEEP_DIR/leaderboard.csv" | cut -c1-140
echo
head -4 "$SWEEP_DIR/best.yaml"
