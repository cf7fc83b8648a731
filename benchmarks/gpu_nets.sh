#!/usr/bin/env bash
# One-shot GPU session for the strong-GAN nets: training speed of every CIFAR-10 preset
# (benchmarks/net_speed.py) in fp32, then a short bf16-mixed run of each; results in $OUT.
#
#   OUT=/path/to/out bash benchmarks/gpu_nets.sh            # on the GPU machine, under 8 min
#   OUT=/tmp/gpu_dry bash benchmarks/gpu_nets.sh cpu         # dry run on a CPU: tiny nets, 1-2 steps
#
# Python, first found: $PYTHON; one of .venv/bin/python, python3, python that imports torch,
# lightning and hydra with ganforge taken from src/ (no install: the GPU machine reaches no
# network, and its python3 has torch and lightning but not hydra-core/omegaconf, which can
# travel as wheels in .whl/, installed here with --no-index); last, a venv with
# `pip install -e .` (needs PyPI).
# Environment (defaults in brackets): OUT [outputs/gpu_nets], PRESETS [dcgan sngan biggan r3gan],
# STEPS [100] timed fp32 G steps, WARMUP [10], BF16_STEPS [300], SECONDS_PER_RUN [35] Trainer
# max_time of each run (what it measured is kept when time runs out), NET_SPEED_ARGS (more
# net_speed.py arguments, e.g. "-- data.on_device=true"), TOTAL_SECONDS [450] from the start:
# a run that would end past it is cut to fit, and once under 30 s is left the rest are skipped.
# Every net runs under `timeout` in its own process; one that fails, hangs or is skipped is
# listed in log.txt and the others still run. $OUT gets six files: net_speed.{json,md},
# net_speed_bf16.{json,md}, log.txt (machine, progress, failures) and parts.tar.gz (every
# run's own log and table).
set -uo pipefail

DEVICE=${1:-cuda}
cd "$(dirname "$0")/.."
OUT=${OUT:-outputs/gpu_nets}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d /tmp/gpu_nets.XXXXXX)  # per-run files; only the summary goes to $OUT
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/parts"
export PYTHONUNBUFFERED=1
PRESETS=${PRESETS:-dcgan sngan biggan r3gan}
if [ "$DEVICE" = cpu ]; then  # a dry run: tiny nets, one thread, to check the plumbing
  STEPS=${STEPS:-1} WARMUP=${WARMUP:-1} BF16_STEPS=${BF16_STEPS:-2} SECONDS_PER_RUN=${SECONDS_PER_RUN:-120}
  TOTAL_SECONDS=${TOTAL_SECONDS:-3600} NET_SPEED_ARGS=${NET_SPEED_ARGS:---tiny --threads 1}
else
  STEPS=${STEPS:-100} WARMUP=${WARMUP:-10} BF16_STEPS=${BF16_STEPS:-300} SECONDS_PER_RUN=${SECONDS_PER_RUN:-35}
  TOTAL_SECONDS=${TOTAL_SECONDS:-450} NET_SPEED_ARGS=${NET_SPEED_ARGS:-}
fi
LIMIT=$((SECONDS_PER_RUN + 90))  # + interpreter start, imports, CUDA init, 50k random images
START=$(date +%s)
LOG=$OUT/log.txt
: >"$LOG"
log() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$LOG"; }

# --- python
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$WORK/site" .whl/*.whl >>"$LOG" 2>&1 \
    && export PYTHONPATH=$WORK/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
usable() { command -v "$1" >/dev/null 2>&1 && "$1" -c "import ganforge.pipeline, torch, lightning" >/dev/null 2>&1; }
if [ -z "${PYTHON:-}" ]; then
  for candidate in .venv/bin/python python3 python; do
    if usable "$candidate"; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "${PYTHON:-}" ]; then
  log "no python imports ganforge (missing: $(python3 -c 'import hydra' 2>&1 | tail -1)); trying a venv + pip install -e ."
  python3 -m venv --system-site-packages "$WORK/venv" >>"$LOG" 2>&1 \
    && "$WORK/venv/bin/pip" install -q -e . >>"$LOG" 2>&1 && PYTHON=$WORK/venv/bin/python
  [ -n "${PYTHON:-}" ] || { log "set-up failed (the pip output is above)"; exit 1; }
fi
log "python: $PYTHON"
{
  "$PYTHON" -c "import torch, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda,
'available', torch.cuda.is_available(), 'lightning', lightning.__version__)"
  if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi; else echo "no nvidia-smi"; fi
  echo "cores: $(nproc)"
} 2>&1 | tee -a "$LOG"
if [ "$DEVICE" = cuda ] && ! "$PYTHON" -c "import torch; assert torch.cuda.is_available()" 2>/dev/null; then
  log "torch sees no CUDA device: stopping"
  exit 1
fi

# --- one net at a time, each under a time limit
run_net() {  # $1 label, $2 preset, rest: net_speed.py arguments
  local label=$1 preset=$2 part=$WORK/parts/$1_$2
  shift 2
  local left=$((TOTAL_SECONDS - $(date +%s) + START)) limit=$LIMIT
  if [ $left -lt 30 ]; then
    log "FAILED $label $preset: skipped, TOTAL_SECONDS=$TOTAL_SECONDS spent"
    return
  fi
  [ $left -lt $limit ] && limit=$left
  log "$label $preset (limit $limit s)"
  # shellcheck disable=SC2086  # NET_SPEED_ARGS is a list of arguments
  timeout --kill-after=10 "$limit" "$PYTHON" benchmarks/net_speed.py --device "$DEVICE" --presets "$preset" \
    --warmup "$WARMUP" --max-seconds "$SECONDS_PER_RUN" --out "$part" "$@" $NET_SPEED_ARGS >"$part.log" 2>&1
  local rc=$?
  local error
  error=$("$PYTHON" -c "import json, sys; print(*(r['error'] for r in json.load(open(sys.argv[1]))['rows']
if 'error' in r))" "$part.json" 2>/dev/null) || error="no result (exit $rc): $(tail -1 "$part.log")"
  if [ -n "$error" ]; then log "FAILED $label $preset: $(printf %s "$error" | tail -c 300)"; fi
}
for p in $PRESETS; do run_net fp32 "$p" --steps "$STEPS"; done
for p in $PRESETS; do run_net bf16 "$p" --steps "$BF16_STEPS" --precision bf16-mixed; done

# --- one table per precision, in PRESETS order
parts() { for p in $PRESETS; do echo "$WORK/parts/${1}_$p.json"; done; }
# shellcheck disable=SC2046  # one path per preset, under mktemp's directory: no spaces
"$PYTHON" benchmarks/net_speed.py --merge $(parts fp32) --out "$OUT/net_speed" >/dev/null
# shellcheck disable=SC2046
"$PYTHON" benchmarks/net_speed.py --merge $(parts bf16) --out "$OUT/net_speed_bf16" >/dev/null
tar -czf "$OUT/parts.tar.gz" -C "$WORK" parts
cat "$OUT/net_speed.md" "$OUT/net_speed_bf16.md"
log "done; failures: $(grep -c FAILED "$LOG")"
