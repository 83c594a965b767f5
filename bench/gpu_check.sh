#!/usr/bin/env bash
# One GPU check of gemo_ros for the day a GPU machine is lent (issue 17): one command, under
# 8 minutes, results in one markdown file.
#
#   bash bench/gpu_check.sh             # on a GPU: everything below (dry run without one)
#   bash bench/gpu_check.sh --quick     # shorter benchmark and soak
#   bash bench/gpu_check.sh --dry-run   # skip every CUDA step (what a CPU machine does)
#   bash bench/gpu_check.sh --bundle    # here, with a registry: download the wheels the
#                                       # lent machine lacks into .whl/ (carry it there)
#
# Steps, each timed, logged and under its own timeout (the whole run under --budget s):
#   nvidia_smi        the GPU as the driver sees it
#   environment       a Python with torch: GEMO_PYTHON, else .venv (with CUDA torch on a GPU),
#                     else the machine's python3 with CUDA torch plus the wheels in .whl/
#                     (installed offline into GEMO_SITE), else scripts/setup.sh (registry)
#   machine           torch / CUDA / gsplat / nvcc versions, the gsplat JIT cache folder
#   gsplat_kernels    gsplat's CUDA code JIT-compiled (or loaded from its cache) once, timed;
#                     torch backend vs gsplat on the shipped avatar at 512 px (1e-4)
#   cuda_tests        pytest -m cuda on the test files that carry the mark (parity at 1e-4)
#   reference_parity  test/render/test_torch_backend_gsplat_reference.py (gsplat's PyTorch reference; CPU)
#   pipeline          bench/pipeline.py on cuda, 256 and 512 px, all Gaussians (--lod 0)
#   head_compile      the engine's frame, head step eager, CUDA graph, torch.compile (reduce-overhead):
#                     ms per frame and stage, image difference, host syncs (when budget allows)
#   soak              bench/soak.py: the node for 2 minutes at 512 px on cuda; where ROS 2
#                     does not import (the lent machines), the same soak of the engine and
#                     runtime in one process (bench/gpu_check.py soak-engine)
# then docs/gpu_check.md (overwritten each run). Raw outputs: out/gpu_check/ (GEMO_GPU_CHECK_RAW);
# when OUT is set (the device tool), also $OUT/gpu_check.md, $OUT/gpu_check_console.log and
# $OUT/gpu_check_raw.tar.gz, refreshed after every step.
#
# Without a GPU (or with --dry-run) the CUDA steps are skipped with the reason, and the CPU
# parts run small: the reference parity tests, the pipeline at 256 px for a few frames and a
# 0.5-minute soak at 128 px. Exit status: 0 when no step failed (skipped steps are fine).
#
# Environment: GEMO_PYTHON (interpreter to use), GEMO_SITE (where .whl/ is installed,
# default /tmp/gemo_gpu_check_site), GEMO_GPU_CHECK_RAW, TORCH_EXTENSIONS_DIR (gsplat's JIT
# cache; torch's default is ~/.cache/torch_extensions), MAX_JOBS (default: all cores),
# TORCH_CUDA_ARCH_LIST (default: the GPU's own compute capability).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ARGS_TEXT="$*"

DRY=0
DRY_REASON=""
QUICK=0
BUNDLE=0
BUDGET="${GEMO_GPU_CHECK_BUDGET:-470}"   # seconds for all steps; the report follows
RESERVE=20                               # seconds kept for the report and the copy to $OUT

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; DRY_REASON="--dry-run given" ;;
    --quick) QUICK=1 ;;
    --budget) BUDGET="${2:?--budget needs seconds}"; shift ;;
    --bundle) BUNDLE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "gpu_check: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# --- the wheel bundle (run here, where a registry is reachable) -----------------------------------
if [ "$BUNDLE" = 1 ]; then
  DEST="$ROOT/.whl"
  PYV="${GEMO_BUNDLE_PYTHON:-3.12}"   # the lent machine's python3 (KINDS.md: 3.12)
  mkdir -p "$DEST"
  "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --python-version "$PYV" \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$DEST" "gsplat==1.5.3" soundfile cffi pycparser
  EXCLUDE="$(git rev-parse --git-path info/exclude 2>/dev/null || true)"
  if [ -n "$EXCLUDE" ] && ! grep -qxF '/.whl/' "$EXCLUDE" 2>/dev/null; then
    mkdir -p "$(dirname "$EXCLUDE")"
    echo '/.whl/' >> "$EXCLUDE"
  fi
  ls -l "$DEST"
  echo "bundle: $(du -sh "$DEST" | cut -f1) in $DEST (git-ignored: ${EXCLUDE:-not a git checkout}); carry it:"
  echo "  device run: command 'bash bench/gpu_check.sh', carry ['.whl']"
  exit 0
fi

# --- bookkeeping ----------------------------------------------------------------------------------
RAW="${GEMO_GPU_CHECK_RAW:-$ROOT/out/gpu_check}"
DOC="$ROOT/docs/gpu_check.md"
SITE="${GEMO_SITE:-/tmp/gemo_gpu_check_site}"
REPORTED=0   # docs/gpu_check.md is this run's (until then it is the last committed one)
rm -rf "$RAW"
mkdir -p "$RAW"
RAWP="${RAW#"$ROOT"/}"   # as the commands (run in $ROOT) and the report name it
STEPS="$RAW/steps.tsv"
CONSOLE="$RAW/console.log"
: > "$STEPS"
: > "$CONSOLE"

now_ms() {
  if [ -n "${EPOCHREALTIME:-}" ]; then local t="${EPOCHREALTIME//[!0-9]/}"; echo $((t / 1000))
  else date +%s%3N; fi
}
T0="$(now_ms)"
elapsed_s() { echo $(( ($(now_ms) - T0) / 1000 )); }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
say() { printf '[gpu_check %4ss] %s\n' "$(elapsed_s)" "$*" | tee -a "$CONSOLE"; }

publish_out() {  # copy what exists so far to $OUT (the device tool brings it back)
  [ -n "${OUT:-}" ] || return 0
  mkdir -p "$OUT"
  cp -f "$CONSOLE" "$OUT/gpu_check_console.log" 2>/dev/null || true
  tar -czf "$OUT/gpu_check_raw.tar.gz" -C "$(dirname "$RAW")" "$(basename "$RAW")" \
    2>/dev/null || true
  if [ "$REPORTED" = 1 ]; then cp -f "$DOC" "$OUT/gpu_check.md" 2>/dev/null || true; fi
}

record() {  # name status seconds note
  printf '%s\t%s\t%s\t%s\t%s.log\n' "$1" "$2" "$3" "${4//$'\t'/ }" "$1" >> "$STEPS"
}

skip_step() {  # name reason
  record "$1" SKIP 0 "$2"
  say "step $1: SKIPPED ($2)"
}

declare -A RC=()
run_step() {  # name limit_s note -- command...
  local name="$1" limit="$2" note="$3"
  shift 3
  [ "${1:-}" = "--" ] && shift
  local left=$((BUDGET - $(elapsed_s) - RESERVE))
  if [ "$left" -lt 15 ]; then
    RC[$name]=125
    skip_step "$name" "the overall budget of ${BUDGET} s is spent"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit="$left"
  say "step $name: $note (limit ${limit} s; log $RAW/$name.log)"
  local t0 rc=0 status secs
  t0="$(now_ms)"
  timeout --kill-after=10 "$limit" "$@" > "$RAW/$name.log" 2>&1 || rc=$?
  secs="$(secs_since "$t0")"
  case "$rc" in
    0) status=ok ;;
    124|137) status=TIMEOUT; note="$note; stopped at the ${limit} s limit" ;;
    *) status=FAIL; note="$note; exit code $rc" ;;
  esac
  RC[$name]=$rc
  record "$name" "$status" "$secs" "$note"
  say "step $name: $status in ${secs} s"
  if [ "$rc" != 0 ]; then tail -n 25 "$RAW/$name.log" | sed 's/^/    | /' | tee -a "$CONSOLE"; fi
  publish_out
}

# --- 1. the machine as the driver sees it -----------------------------------------------------------
HAVE_SMI=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then HAVE_SMI=1; fi
QUICK_NOTE=""
[ "$QUICK" = 1 ] && QUICK_NOTE=", --quick"
say "gemo_ros GPU check in $ROOT (budget ${BUDGET} s$QUICK_NOTE)"
if [ "$HAVE_SMI" = 1 ]; then
  run_step nvidia_smi 30 "nvidia-smi" -- nvidia-smi
  say "$(nvidia-smi -L | head -n 2 | tr '\n' ' ')"
else
  skip_step nvidia_smi "no NVIDIA GPU here (nvidia-smi missing or nvidia-smi -L fails)"
  [ "$DRY" = 1 ] || { DRY=1; DRY_REASON="no NVIDIA GPU (nvidia-smi -L fails)"; }
fi

# --- 2. the Python environment ---------------------------------------------------------------------
PY=""
ENV_KIND=""
ENV_NOTES=""
torch_state() {  # python -> "cuda <capability>" | "cpu" | "none"
  local out
  out="$(timeout 120 "$@" -c 'import torch
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"cuda {p.major}.{p.minor}")
else:
    print("cpu")' 2>/dev/null | tail -n 1)" || true
  echo "${out:-none}"
}
accept() {  # state -> ok for this run?
  case "$1" in cuda*) return 0 ;; cpu) [ "$DRY" = 1 ] ;; *) return 1 ;; esac
}
STATE=""
choose_env() {
  local state
  if [ -n "${GEMO_PYTHON:-}" ]; then
    state="$(torch_state "$GEMO_PYTHON")"
    if accept "$state"; then PY="$GEMO_PYTHON"; ENV_KIND="GEMO_PYTHON"; STATE="$state"; return 0; fi
    ENV_NOTES+="GEMO_PYTHON=$GEMO_PYTHON: torch $state; "
  fi
  if [ -x "$ROOT/.venv/bin/python" ] && [ -f "$ROOT/.venv/env.sh" ]; then
    # shellcheck disable=SC1091
    state="$(source "$ROOT/.venv/env.sh" && torch_state "$ROOT/.venv/bin/python")"
    if accept "$state"; then
      # shellcheck disable=SC1091
      source "$ROOT/.venv/env.sh"
      PY="$ROOT/.venv/bin/python"; ENV_KIND=".venv (scripts/setup.sh)"; STATE="$state"
      return 0
    fi
    ENV_NOTES+=".venv: torch $state; "
  fi
  local sys_py
  sys_py="$(command -v python3 || true)"
  if [ -n "$sys_py" ]; then
    state="$(torch_state "$sys_py")"
    if accept "$state"; then
      PY="$sys_py"; ENV_KIND="the machine's python3 (torch preinstalled)"; STATE="$state"
      if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
        say "installing the carried wheels offline: $(cd "$ROOT/.whl" && echo ./*.whl)"
        timeout 180 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
          --upgrade --target "$SITE" "$ROOT"/.whl/*.whl || say "installing .whl/ failed"
        export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
        ENV_KIND+=" + .whl/ in $SITE"
      fi
      return 0
    fi
    ENV_NOTES+="python3 ($sys_py): torch $state; "
  fi
  say "no usable torch found ($ENV_NOTES); running scripts/setup.sh (needs a package registry)"
  PIP_DEFAULT_TIMEOUT=10 PIP_RETRIES=1 timeout 420 bash "$ROOT/scripts/setup.sh" \
    > "$RAW/setup.log" 2>&1 || { tail -n 20 "$RAW/setup.log"; return 1; }
  # shellcheck disable=SC1091
  source "$ROOT/.venv/env.sh"
  PY="$ROOT/.venv/bin/python"; ENV_KIND=".venv (made now by scripts/setup.sh)"
  STATE="$(torch_state "$PY")"
  accept "$STATE"
}

export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
T_ENV="$(now_ms)"
say "step environment: choosing a Python with torch"
if choose_env > "$RAW/environment.log" 2>&1; then
  export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's gemo_ros first
  export PYTHONUNBUFFERED=1
  case "$STATE" in
    cuda*) [ -n "${TORCH_CUDA_ARCH_LIST:-}" ] || export TORCH_CUDA_ARCH_LIST="${STATE#cuda }" ;;
    *) [ "$DRY" = 1 ] || { DRY=1; DRY_REASON="torch in $PY cannot use CUDA"; } ;;
  esac
  # which of the modules the steps need import here
  "$PY" - "$RAW/env.json" "$PY" "$ENV_KIND" > "$RAW/env_modules.log" 2>&1 <<'EOF' || true
import importlib, json, sys
out, py, kind = sys.argv[1:4]
mods = ["gemo_ros", "gsplat", "soundfile", "pytest", "rclpy", "audio_common_msgs.msg"]
missing = []
for m in mods:
    try:
        importlib.import_module(m)
    except Exception as exc:  # noqa: BLE001
        missing.append(f"{m} ({type(exc).__name__})")
json.dump({"python": py, "kind": kind, "missing": missing}, open(out, "w"), indent=1)
print("missing:", missing)
EOF
  MISSING="$(cat "$RAW/env_modules.log")"
  record environment ok "$(secs_since "$T_ENV")" "$ENV_KIND: $PY, torch $STATE; $MISSING"
  say "step environment: ok: $ENV_KIND ($PY), torch $STATE; $MISSING"
else
  cat "$RAW/environment.log" >> "$CONSOLE"
  record environment FAIL "$(secs_since "$T_ENV")" "no Python with torch: ${ENV_NOTES}setup.sh failed"
  say "step environment: FAILED (${ENV_NOTES}); see $RAW/environment.log"
  PY=""
  MISSING="everything"
  [ "$DRY" = 1 ] || { DRY=1; DRY_REASON="no Python with a CUDA torch"; }
fi
has() { [ -n "$PY" ] && ! grep -q "'$1 (" <<<"$MISSING"; }

if [ "$DRY" = 1 ]; then
  MODE="dry run ($DRY_REASON)"
  say "DRY RUN: $DRY_REASON: every CUDA step is skipped; the CPU parts run small"
else
  MODE="full on the GPU$QUICK_NOTE"
fi
NO_GPU="dry run: $DRY_REASON"

# --- 3. machine ----------------------------------------------------------------------------------------
if [ -n "$PY" ]; then
  run_step machine 90 "torch, CUDA, gsplat, nvcc" -- "$PY" bench/gpu_check.py machine \
    --json "$RAWP/machine.json"
else
  skip_step machine "no Python with torch"
fi

# --- 4. gsplat's CUDA kernels, once -------------------------------------------------------------------
KERNELS_OK=0
if [ "$DRY" = 1 ]; then
  skip_step gsplat_kernels "$NO_GPU (gsplat's rasterizer never runs on a CPU)"
elif ! has gsplat; then
  skip_step gsplat_kernels "gsplat does not import: carry the wheels (bash bench/gpu_check.sh --bundle)"
else
  run_step gsplat_kernels 330 "JIT build/load of gsplat's CUDA code, parity on the avatar" -- \
    "$PY" bench/gpu_check.py kernels --json "$RAWP/kernels.json" --size 512 \
    --repeats "$([ "$QUICK" = 1 ] && echo 5 || echo 20)"
  [ "${RC[gsplat_kernels]}" = 0 ] && KERNELS_OK=1
fi

# --- 5. tests ---------------------------------------------------------------------------------------
mapfile -t CUDA_FILES < <(grep -rl --include="test_*.py" "mark\.cuda" test 2>/dev/null || true)
if [ "$DRY" = 1 ]; then
  skip_step cuda_tests "$NO_GPU (every test marked cuda would skip)"
elif [ "$KERNELS_OK" != 1 ]; then
  skip_step cuda_tests "gsplat kernels unavailable (a second JIT build would spend the budget)"
elif [ "${#CUDA_FILES[@]}" = 0 ]; then
  skip_step cuda_tests "no test file carries the cuda mark"
else
  run_step cuda_tests 180 "pytest -m cuda ${CUDA_FILES[*]}" -- \
    "$PY" -m pytest -q -rs -p no:cacheprovider -m cuda "${CUDA_FILES[@]}"
fi
if has pytest; then
  run_step reference_parity 180 "pytest test/render/test_torch_backend_gsplat_reference.py" -- \
    "$PY" -m pytest -q -rs -p no:cacheprovider test/render/test_torch_backend_gsplat_reference.py
else
  skip_step reference_parity "pytest does not import"
fi

# --- 6. the pipeline benchmark ---------------------------------------------------------------------------
if ! has soundfile || ! has gemo_ros; then
  skip_step pipeline "gemo_ros or soundfile does not import (carry .whl: bash bench/gpu_check.sh --bundle)"
elif [ "$DRY" = 1 ]; then
  run_step pipeline 240 "CPU, 256 px, all Gaussians, 4 frames ($NO_GPU)" -- \
    "$PY" bench/pipeline.py --device cpu --sizes 256 --lod 0 --frames 4 \
    --json "$RAWP/pipeline.json"
elif [ "$KERNELS_OK" != 1 ]; then
  skip_step pipeline "gsplat kernels unavailable"
elif [ "$QUICK" = 1 ]; then
  run_step pipeline 180 "cuda, 512 px, all Gaussians, 60 frames" -- \
    "$PY" bench/pipeline.py --device cuda --sizes 512 --lod 0 --frames 60 \
    --json "$RAWP/pipeline.json"
else
  run_step pipeline 240 "cuda, 256 and 512 px, all Gaussians, 200 frames" -- \
    "$PY" bench/pipeline.py --device cuda --sizes 256 512 --lod 0 --frames 200 \
    --json "$RAWP/pipeline.json"
fi

# --- 6b. the head eager vs torch.compile (CUDA graphs); only with budget left beyond the soak ------------
if [ "$DRY" = 1 ]; then
  skip_step head_compile "$NO_GPU (torch.compile is measured on a GPU; CPU: test/test_pipeline_compile.py, slow)"
elif [ "$KERNELS_OK" != 1 ] || ! has gemo_ros || ! has soundfile; then
  skip_step head_compile "gsplat kernels or gemo_ros unavailable"
else
  SOAK_NEED=$(( $([ "$QUICK" = 1 ] && echo 60 || echo 120) + 75 + RESERVE ))
  CLEFT=$((BUDGET - $(elapsed_s) - SOAK_NEED))
  if [ "$CLEFT" -lt 60 ]; then
    skip_step head_compile "budget kept for the soak (${CLEFT} s spare); run alone: python bench/gpu_check.py compile"
  else
    [ "$CLEFT" -gt 150 ] && CLEFT=150
    run_step head_compile "$CLEFT" "engine frame, head eager vs CUDA graph vs torch.compile, 512 px, all Gaussians" -- \
      "$PY" bench/gpu_check.py compile --size 512 --frames "$([ "$QUICK" = 1 ] && echo 30 || echo 100)" \
      --json "$RAWP/compile.json"
  fi
fi

# --- 7. the node soak ------------------------------------------------------------------------------------
SOAK_CMD=""
ROS=1
if ! has rclpy || ! has audio_common_msgs.msg; then ROS=0; fi
if [ -z "$PY" ] || ! has gemo_ros || ! has soundfile; then
  skip_step soak "gemo_ros or soundfile does not import"
elif [ "$DRY" != 1 ] && [ "$KERNELS_OK" != 1 ]; then
  skip_step soak "gsplat kernels unavailable"
else
  SOAK_EXTRA=()
  if [ "$DRY" = 1 ]; then
    # a shared CPU under other jobs can miss the 2-s Ctrl-C target by a little; the real
    # target is held by test/integration/test_node_soak.py and by the GPU run
    MINUTES=0.5; SIZE=128; DEVICE=cpu; SOAK_EXTRA=(--max-stop 5)
  else MINUTES="$([ "$QUICK" = 1 ] && echo 1 || echo 2)"; SIZE=512; DEVICE=cuda; fi
  # shorten the soak to what the budget has left (node start-up and stop take ~60 s)
  LEFT=$((BUDGET - $(elapsed_s) - RESERVE - 75))
  MINUTES="$(awk -v m="$MINUTES" -v l="$LEFT" 'BEGIN { x = l / 60; if (x < m) m = x;
    if (m < 0.25) m = 0; printf "%.2g", m }')"
  if [ "$MINUTES" = 0 ]; then
    skip_step soak "under 15 s of soak left in the budget"
  else
    if [ "$ROS" = 1 ]; then
      SOAK_CMD="python bench/soak.py --minutes $MINUTES --size $SIZE --device $DEVICE ${SOAK_EXTRA[*]}"
      SOAK=("$PY" bench/soak.py --start-timeout 120 --node-log "$RAWP/soak_node.log")
    else  # no ROS 2 here (the lent machines): the same soak without the node and DDS
      SOAK_CMD="python bench/gpu_check.py soak-engine --minutes $MINUTES --size $SIZE --device $DEVICE ${SOAK_EXTRA[*]}"
      SOAK=("$PY" bench/gpu_check.py soak-engine)
      say "no ROS 2 here (rclpy / audio_common_msgs): the soak runs the engine and runtime in process"
    fi
    SMI_PID=""
    if [ "$HAVE_SMI" = 1 ]; then
      nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader,nounits -l 1 \
        > "$RAW/soak_gpu.csv" 2>/dev/null &
      SMI_PID=$!
    fi
    LIMIT="$(awk -v m="$MINUTES" 'BEGIN { printf "%d", m * 60 + 150 }')"
    run_step soak "$LIMIT" "$SOAK_CMD" -- "${SOAK[@]}" --minutes "$MINUTES" --size "$SIZE" \
      --device "$DEVICE" --json "$RAWP/soak.json" "${SOAK_EXTRA[@]}"
    if [ -n "$SMI_PID" ]; then kill "$SMI_PID" 2>/dev/null || true; wait "$SMI_PID" 2>/dev/null || true; fi
  fi
fi

# --- the report -----------------------------------------------------------------------------------------
RPY="${PY:-python3}"
OUT_NOTE="$RAWP/ on the machine that ran it"
[ -z "${OUT:-}" ] || OUT_NOTE+=", packed into \$OUT/gpu_check_raw.tar.gz"
if ! timeout 60 "$RPY" bench/gpu_check.py report --raw "$RAW" --out "$DOC" --mode "$MODE" \
    --command "bash bench/gpu_check.sh${ARGS_TEXT:+ $ARGS_TEXT}" --raw-note "$OUT_NOTE" \
    --soak-command "$SOAK_CMD" --wall-s "$(elapsed_s)" > "$RAW/report.log" 2>&1; then
  tee -a "$CONSOLE" < "$RAW/report.log"
  { echo "# GPU check"; echo; echo "The report could not be written ($RAW/report.log)."
    echo "Mode: $MODE."; echo; echo '| step | status | seconds | note | log |'
    echo '|---|---|---|---|---|'; sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$STEPS"; } > "$DOC"
fi
REPORTED=1
say "wrote $DOC (raw outputs in $RAW)"
sed -n '/^## Targets/,/^## Machine/p' "$DOC" | sed '1d;$d' | sed '/^$/d' | tee -a "$CONSOLE"
FAILED="$(awk -F'\t' '$2 == "FAIL" || $2 == "TIMEOUT" { printf "%s ", $1 }' "$STEPS")"
say "done in $(elapsed_s) s; mode: $MODE; failed: ${FAILED:-none}"
publish_out
[ -z "$FAILED" ]
