#!/usr/bin/env bash
# The GPU checks, as one script for a lent machine with CuPy and a CUDA device:
# versions, the gpu-marked tests, then benchmarks/bench_gpu.py at n=1e6 and at
# the n=1e7. Logs go to $OUT (the device tool's folder) or ./gpu-checks.
#
#     bash benchmarks/gpu_checks.sh            # from the repository root
#
# Each step has its own time limit (seconds, from the environment) so that one
# slow step still leaves the logs of the others.
set -o pipefail
out=${OUT:-gpu-checks}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python3}

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    "$python" -c "import sys, cupy, numba, numpy, scipy, sklearn
print('python', sys.version.split()[0], '| cupy', cupy.__version__, '| CUDA runtime',
      cupy.cuda.runtime.runtimeGetVersion(), '| numba', numba.__version__,
      '| numpy', numpy.__version__, '| scipy', scipy.__version__, '| sklearn', sklearn.__version__)
print('cores', numba.config.NUMBA_NUM_THREADS)"
} 2>&1 | tee "$out/versions.txt"

timeout "${TEST_SECONDS:-270}" "$python" -m pytest tests -m gpu -q -p no:cacheprovider -rfE \
    --maxfail=40 --durations=10 2>&1 | tee "$out/gpu_tests.log"
echo "pytest -m gpu: rc $?" | tee -a "$out/gpu_tests.log"

if [ -f gpu-diag/diag.py ]; then  # session-specific diagnostics, when carried
    timeout 120 "$python" gpu-diag/diag.py 2>&1 | tee "$out/diag.log"
fi

timeout "${BENCH_SECONDS:-120}" "$python" benchmarks/bench_gpu.py --fit-n 1e6 2>&1 \
    | tee "$out/bench_gpu_1e6.log"
echo "bench_gpu --fit-n 1e6: rc $?" | tee -a "$out/bench_gpu_1e6.log"

timeout "${BIG_BENCH_SECONDS:-150}" "$python" benchmarks/bench_gpu.py --fit-n 1e7 --repeat 5 2>&1 \
    | tee "$out/bench_gpu_1e7.log"
echo "bench_gpu --fit-n 1e7: rc $?" | tee -a "$out/bench_gpu_1e7.log"
