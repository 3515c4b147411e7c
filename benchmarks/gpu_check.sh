#!/usr/bin/env bash
# Issue 12's GPU figures in one go, for a session that is lent a GPU machine (about 8 minutes on
# one H100/H200, inside the 10-minute limit of one call). Here, once, from the project root:
#   ../shared/gpu/bundle.sh                       # writes .gpu/ (wheels the GPU image lacks)
# then one device call:
#   run(command=". .gpu/setup.sh && bash benchmarks/gpu_check.sh", carry=[".gpu"], timeout_s=600)
# Every step has its own time limit, so one that hangs cannot take the others' time; each writes
# its log under $OUT (what comes back): nvidia-smi.txt, tests.txt, throughput.txt, workers.txt.
#
# What it measures (docs/GUIDE.md "GPU" has the CPU figures beside which these go):
#   tests.txt      the CUDA-only tests: no synchronisation grows with the steps (sync debug
#                  mode), resident and host-staged data; then the training tests on CUDA
#   throughput.txt feature extraction on the GPU, teacher and student clips/s, TFLOP/s and share
#                  of the bf16 peak, share of a kd trial outside fwd+bwd, bf16 vs fp32 accuracy,
#                  torch.compile on/off, GPU utilisation during `search --jobs 4`
#   workers.txt    trials/hour and GPU utilisation for --jobs 1 2 4 8 on one GPU, and the best N
set -u
out=${OUT:-/tmp/gpu-check}
mkdir -p "$out"
home=$(mktemp -d /tmp/asc-gpu.XXXX)
export PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $out/NAME.txt, never abort
    local name=$1 limit=$2
    shift 2
    echo "== $name (limit ${limit}s): $*" | tee "$out/$name.txt"
    local t0=$SECONDS
    timeout "$limit" "$@" >>"$out/$name.txt" 2>&1
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - t0)) s" | tee -a "$out/$name.txt"
    tail -n 40 "$out/$name.txt"
}

nvidia-smi >"$out/nvidia-smi.txt" 2>&1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee -a "$out/nvidia-smi.txt"
step tests 90 "$py" -m pytest -q -p no:cacheprovider -x tests/test_train_device.py \
    tests/test_train.py
step throughput 270 "$py" benchmarks/throughput.py --device cuda --epochs 2 --home "$home" \
    --search-jobs 4 --search-trials 8 --compile
step workers 200 "$py" benchmarks/workers.py --device cuda --jobs 1 2 4 8 --trials 16 \
    --epochs 2 --home "$home"
echo "logs in $out"
