#!/usr/bin/env bash
# Re-pin containers/requirements-{cpu,gpu}.txt (needs PyPI): resolve the images' top-level
# packages against requirements/dev.txt (so the images run exactly what the tests ran) and write
# every package with its exact version. Usage: containers/lock.sh [python]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}

# What runs inside the images: the step code's dependencies (pyproject.toml) + the training toolkit.
COMMON=(numpy==1.23.5 gluoncv==0.10.5.post0 opencv-python==4.11.0.86 pillow==13.0.0 tqdm==4.70.1
        matplotlib==3.10.9 sagemaker-training==5.1.4 Flask==3.1.3 gunicorn==26.2.0)
# CUDA 11 runtime for mxnet-cu112 from PyPI (any 11.x serves: minor-version compatibility); these
# versions provide every NEEDED library of libmxnet.so but libcuda.so.1 (make check-gpu-libs).
CUDA=(nvidia-cuda-runtime-cu11==11.8.89 nvidia-cublas-cu11==11.11.3.6 nvidia-cufft-cu11==10.9.0.58
      nvidia-curand-cu11==10.3.0.86 nvidia-cusolver-cu11==11.4.1.48 nvidia-cuda-nvrtc-cu11==11.8.89
      nvidia-nvtx-cu11==11.8.86 nvidia-cudnn-cu11==8.9.6.50 nvidia-nccl-cu11==2.21.5)

lock() {  # lock VARIANT PACKAGES...: resolve for Linux/CPython 3.11 and write the pinned file
  local variant=$1; shift
  local report; report=$(mktemp)
  "$PY" -m pip install --quiet --dry-run --ignore-installed --report "$report" \
    -c requirements/dev.txt "$@" 2>/dev/null
  {
    echo "# The $variant image's Python packages, fully pinned. Regenerate: containers/lock.sh"
    "$PY" -c 'import json, sys
items = json.load(open(sys.argv[1]))["install"]
pins = sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in items)
print("\n".join(f"{n}=={v}" for n, v in sorted(pins, key=lambda p: p[0].lower()) if n != "pip"))' "$report"
  } >"containers/requirements-$variant.txt"
  rm -f "$report"
  echo ">> wrote containers/requirements-$variant.txt"
}

lock cpu mxnet==1.9.1 "${COMMON[@]}"
lock gpu mxnet-cu112==1.9.1 "${COMMON[@]}" "${CUDA[@]}"
