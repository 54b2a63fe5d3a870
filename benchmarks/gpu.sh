#!/usr/bin/env bash
# The GPU benchmark suite: one command, one JSON file, within 10 minutes on
# one H100/H200, random weights of real shapes.
#
#   benchmarks/gpu.sh [OUT.json]           # on the GPU machine
#   benchmarks/gpu.sh --smoke [OUT.json]   # every step at tiny sizes, any
#                                          # backend (2-core CPU: < 2 min)
#
# OUT.json defaults to $OUT/gpu.json when $OUT is set, else ./gpu.json.
# Steps, in this order (the most wanted first), each under its own timeout
# and within one overall budget (--budget=SECONDS, default 540): a step that
# fails or times out is recorded (exit code, stderr tail) and the next runs.
#
#   kernels          benchmarks/kernel_parity.py: cuDNN attention against the
#                    blockwise XLA reference (bf16, GQA, padding, windows)
#   train_1b         benchmarks/train.py, llama3.2-1b, 8 x 2048, bf16 (MFU)
#   train_135m       benchmarks/train.py, smollm2-135m, 8 x 2048, bf16 (MFU)
#   decode_b256      benchmarks/sample.py, llama3.2-1b, batch 256, 128-token
#                    prompts, 256 new tokens, bf16 (fused vs naive loop)
#   decode_b256_prefix16k   the same after a 16,384-token shared prefix
#   scoring_1b_16k   benchmarks/scoring.py, llama3.2-1b, 16,384-token shared
#                    context, 64 continuations of 32 tokens, bf16
#   compiled         benchmarks/compiled.py --only=$COMPILED_ONLY (compile-
#                    only, f32, on the GPU backend; default decode, train,
#                    prefix_scoring, prefill: the LoRA and FSDP analyses are
#                    backend-independent and the remat sweep is 4 compiles)
#
# The JSON: {"smoke", "out", "seconds", "env": {python, jax, backend,
# devices}, "steps": {NAME: {"rc", "seconds", "timeout_s", "command",
# "result" (the step's last-line JSON, or compiled.py's partial one),
# "stderr_tail" (when rc != 0)}}}. Exit code 0 when every step gave a
# result.
#
# Setup: nothing is installed when python imports jax, flax, optax and
# ml_collections (ftgen itself is imported from this checkout). Otherwise
# `pip install -e .` (the network), or, with FTGEN_WHEELS=DIR, the wheels in
# DIR without the network (`pip install --no-index --no-deps --target`).
# jax must already see the GPU (jax[cuda12] or the cuda13 plugin: `pip
# install -e ".[gpu]"`); without a GPU the real-size run stops at once.
# Environment: STEPS (comma-separated step names to run; default all),
# PYTHON (default python3), TRAIN_REMAT (default
# save_dots_no_batch: without remat the 1B step needs ~250 GB of temporary
# memory at 8 x 2048, compile-only on CPU), COMPILED_ONLY.

set -u
cd "$(dirname "$0")/.."

SMOKE=0
BUDGET=540
OUT_JSON=""
for arg in "$@"; do
  case "$arg" in
    --smoke) SMOKE=1 ;;
    --budget=*) BUDGET="${arg#--budget=}" ;;
    -h|--help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "gpu.sh: unknown flag $arg (allowed: --smoke, --budget=S)" >&2
        exit 2 ;;
    *) OUT_JSON="$arg" ;;
  esac
done
if [[ -z "$OUT_JSON" ]]; then
  if [[ -n "${OUT:-}" ]]; then OUT_JSON="$OUT/gpu.json"; else OUT_JSON="gpu.json"; fi
fi
PY="${PYTHON:-python3}"
REMAT="${TRAIN_REMAT:-save_dots_no_batch}"
LOGS="$(mktemp -d "${TMPDIR:-/tmp}/ftgen_gpu.XXXXXX")"
export PYTHONUNBUFFERED=1
# Room for the 16k-token programs; JAX's default takes 75% of the GPU.
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.92}"
START=$(date +%s)

# --- setup --------------------------------------------------------------------

preflight() {
  "$PY" - <<'EOF'
import json, platform, sys
import flax, jax, ml_collections, optax  # noqa: F401  what the steps import
devs = jax.devices()
print(json.dumps({"python": sys.version.split()[0], "jax": jax.__version__,
                  "flax": flax.__version__, "backend": jax.default_backend(),
                  "devices": [getattr(d, "device_kind", d.platform)
                              for d in devs],
                  "host": platform.node()}))
EOF
}

if ! preflight >"$LOGS/env.json" 2>"$LOGS/env.err"; then
  echo "gpu.sh: missing packages; installing" >&2
  if [[ -n "${FTGEN_WHEELS:-}" ]]; then
    "$PY" -m pip install -q --no-index --no-deps --target "$LOGS/site" \
      "$FTGEN_WHEELS"/*.whl >&2
    export PYTHONPATH="$LOGS/site${PYTHONPATH:+:$PYTHONPATH}"
  else
    "$PY" -m pip install -q -e . >&2
  fi
  preflight >"$LOGS/env.json" 2>"$LOGS/env.err" || {
    cat "$LOGS/env.err" >&2; echo "gpu.sh: setup failed" >&2; exit 1; }
fi
BACKEND=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["backend"])' \
  "$LOGS/env.json")
if [[ $SMOKE == 0 && "$BACKEND" != "gpu" && "$BACKEND" != "cuda" ]]; then
  echo "gpu.sh: jax sees no GPU (backend $BACKEND): install jax with CUDA" \
       "(pip install -e '.[gpu]') or run with --smoke" >&2
  exit 1
fi

# --- the steps ------------------------------------------------------------------

NAMES=()
declare -A CMD TIMEOUT
step() {  # step NAME TIMEOUT_S ARGS...
  local name=$1 t=$2
  shift 2
  # STEPS=a,b runs only those steps (a short device budget).
  [[ -n "${STEPS:-}" && ",${STEPS}," != *",$name,"* ]] && return 0
  NAMES+=("$name")
  TIMEOUT[$name]=$t
  CMD[$name]="$*"
}

if [[ $SMOKE == 1 ]]; then
  TINY_TRAIN="--seq_len=32 --batch=2 --repeats=1 --warmup=1"
  TINY_DECODE="--model=tiny:llama --batch=4 --prompt_len=8 --new_tokens=8 --repeats=1"
  step kernels 60 benchmarks/kernel_parity.py --seq_len=64 --batch=2
  step train_1b 60 benchmarks/train.py --model=tiny:llama $TINY_TRAIN --remat=$REMAT
  step train_135m 60 benchmarks/train.py --model=tiny:gemma3 $TINY_TRAIN --remat=$REMAT
  step decode_b256 60 benchmarks/sample.py $TINY_DECODE
  step decode_b256_prefix16k 60 benchmarks/sample.py $TINY_DECODE \
    --prefix_len=64 --skip_naive
  step scoring_1b_16k 60 benchmarks/scoring.py --context=64 \
    --num_continuations=4 --question_len=2 --continuation_len=4 \
    --naive_batch=2 --prefix_batch=4 --prefill_chunk=32 --repeats=1
  step compiled 90 benchmarks/compiled.py --tiny --only=decode,prefix_scoring,prefill
else
  TRAIN="--seq_len=2048 --batch=8 --dtype=bfloat16 --remat=$REMAT --repeats=3 --warmup=1"
  DECODE="--model=llama3.2-1b --dtype=bfloat16 --batch=256 --prompt_len=128"
  DECODE+=" --new_tokens=256 --repeats=2"
  step kernels 60 benchmarks/kernel_parity.py
  step train_1b 150 benchmarks/train.py --model=llama3.2-1b $TRAIN
  step train_135m 110 benchmarks/train.py --model=smollm2-135m $TRAIN
  step decode_b256 110 benchmarks/sample.py $DECODE
  step decode_b256_prefix16k 120 benchmarks/sample.py $DECODE \
    --prefix_len=16384 --skip_naive
  step scoring_1b_16k 170 benchmarks/scoring.py --model=llama3.2-1b \
    --dtype=bfloat16 --context=16384 --num_continuations=64 \
    --continuation_len=32 --question_len=1 --naive_batch=1 \
    --prefix_batch=64 --repeats=1
  step compiled 150 benchmarks/compiled.py \
    --only="${COMPILED_ONLY:-decode,train,prefix_scoring,prefill}"
fi

for name in "${NAMES[@]}"; do
  echo "$PY ${CMD[$name]}" >"$LOGS/$name.cmd"
  left=$(( BUDGET - ($(date +%s) - START) ))
  t=${TIMEOUT[$name]}
  (( left < t )) && t=$left
  if (( t < 15 )); then
    echo "skipped: budget spent" >"$LOGS/$name.err"
    echo 0 >"$LOGS/$name.secs"; echo 125 >"$LOGS/$name.rc"; echo "$t" >"$LOGS/$name.t"
    continue
  fi
  extra=()
  [[ $name == compiled ]] && extra=(--partial="$LOGS/$name.partial.json")
  echo "gpu.sh: $name (timeout ${t}s): $PY ${CMD[$name]}" >&2
  s=$(date +%s)
  # shellcheck disable=SC2086  # CMD holds the step's words.
  timeout -k 10 "$t" "$PY" ${CMD[$name]} "${extra[@]}" \
    >"$LOGS/$name.out" 2>"$LOGS/$name.err"
  echo $? >"$LOGS/$name.rc"
  echo $(( $(date +%s) - s )) >"$LOGS/$name.secs"
  echo "$t" >"$LOGS/$name.t"
  echo "gpu.sh: $name rc=$(cat "$LOGS/$name.rc") in $(cat "$LOGS/$name.secs")s" >&2
done

# --- one JSON file --------------------------------------------------------------

mkdir -p "$(dirname "$OUT_JSON")"
"$PY" - "$LOGS" "$OUT_JSON" "$SMOKE" "$START" "${NAMES[@]}" <<'EOF'
import json, os, sys, time
logs, out, smoke, start, names = (sys.argv[1], sys.argv[2], sys.argv[3] == "1",
                                  int(sys.argv[4]), sys.argv[5:])
def read(name, default=""):
  path = os.path.join(logs, name)
  return open(path, errors="replace").read() if os.path.exists(path) else default
def last_json(text):
  for line in reversed(text.strip().splitlines()):
    try:
      value = json.loads(line)
    except ValueError:
      continue
    return value if isinstance(value, dict) else None
  return None
steps, ok = {}, True
for name in names:
  rc = int(read(f"{name}.rc", "125") or 125)
  result = last_json(read(f"{name}.out"))
  if result is None and os.path.exists(os.path.join(logs, f"{name}.partial.json")):
    result = dict(json.loads(read(f"{name}.partial.json")), partial=True)
  entry = {"rc": rc, "seconds": int(read(f"{name}.secs", "0") or 0),
           "timeout_s": int(read(f"{name}.t", "0") or 0),
           "command": read(f"{name}.cmd").strip(), "result": result}
  if rc != 0 or result is None:
    entry["stderr_tail"] = read(f"{name}.err")[-3000:]
  ok &= result is not None and not result.get("partial")
  steps[name] = entry
report = {"smoke": smoke, "out": out, "seconds": int(time.time()) - start,
          "env": last_json(read("env.json")), "steps": steps}
with open(out + ".tmp", "w") as f:
  json.dump(report, f, indent=1)
os.replace(out + ".tmp", out)
print(json.dumps({k: (v["rc"], v["seconds"]) for k, v in steps.items()}))
print(f"gpu.sh: wrote {out}; logs in {logs}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
