#!/usr/bin/env bash
# GPU check of HI-Diff on a machine without MMEngine/MMCV/MMagic and without internet: install
# the wheels carried in .whl/ (see below) into /tmp/site, then run one program per part, each
# within its share of the budget, and join their results (gpu_report.py): log, Markdown tables
# and JSON in $OUT (default ./gpu_out).
#
#   bash benchmarks/gpu_check.sh [--parts a b c d e] [--budget 320] [--out DIR] [other options,
#                                e.g. --tiny; CPU smoke run: --cpu --tiny]
#
# Parts, run in the order a b e c d (--parts picks; default a b c d):
#   (a) gpu_inference.py            inference, eager        (until 30 % of the budget)
#   (b) gpu_train_step.py           a training step         (until 50 %)
#   (e) gpu_official.py             the official code       (until 65 %; needs --official)
#   (c) gpu_ddp.py                  a DDP training run      (until 80 %)
#   (d) gpu_inference.py --compile  torch.compile           (the rest)
# The other options go to every program (benchmarks/_common.py: gpu_parser).
#
# Side by side with the official code (part e), in one device call: clone it into the git-ignored
# .official/ here (git clone https://github.com/zhengchen1999/HI-Diff .official), carry
# .official and .whl to the device, and run
#   LEVERS_SIZE=512 bash benchmarks/gpu_check.sh --parts a b e --official .official --budget 420
# (LEVERS_SIZE: then also each lever of the fast path alone on the GPU, bench_levers.py
# --device cuda at that map size, compile included, into $OUT/levers.md.)
#
# .whl/ (git-ignored, 49 MiB) holds MMEngine, mmcv-lite, MMagic and what their import chain and
# a Runner need beyond torch (and its dependencies), numpy and opencv, for CPython 3.12 on
# manylinux x86_64 (torchvision 0.26.0 pairs with torch 2.11). Made with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl mmengine==0.10.7 mmcv-lite==2.1.0 mmagic==1.2.0 \
#     addict==2.4.0 yapf==0.43.0 platformdirs==4.14.8 termcolor==3.3.0 rich==15.0.0 \
#     PyYAML==6.0.4 setuptools==80.10.2 packaging==26.4 click==8.5.1 requests==2.34.2 \
#     urllib3==2.8.0 idna==3.20 charset-normalizer==3.5.3 certifi==2026.10.19.post1 \
#     tqdm==4.70.1 einops==0.8.2 safetensors==0.8.0 imageio==2.38.1 tifffile==2026.3.3 \
#     pillow==13.0.0 diffusers==0.28.2 huggingface-hub==0.25.2 transformers==4.48.3 \
#     tokenizers==0.21.4 regex==2026.11.19 lpips==0.1.4 resize-right==0.0.2 \
#     matplotlib==3.11.2 contourpy==1.3.3 kiwisolver==1.5.1 cycler==0.12.1 pyparsing==3.3.3 \
#     python-dateutil==4.0.0 torchvision==0.26.0 scipy==1.17.1 pandas==3.0.6 \
#     albumentations==2.0.8 albucore==0.0.24 pydantic==2.14.4 pydantic-core==2.50.5 \
#     annotated-types==0.8.0 typing-extensions==4.16.0 typing-inspection==0.4.5 \
#     simsimd==6.5.16 stringzilla==5.3.2
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#     --platform any -d .whl fonttools==4.68.0          # the pure-Python build (1.2 MiB)
# (setuptools < 81 for pkg_resources, which MMEngine imports.) torchvision from .whl/ is used only
# if the machine has none. scipy, pandas and albumentations (with albumentations' dependencies,
# about 54 MiB more; the versions of the pinned environment) are real packages: MMagic imports
# them at module level for models and metrics HI-Diff does not use, and hidiff_mm.compat's
# mmcv.ops stand-in is the only import stand-in of the project.
set -uo pipefail
cd "$(dirname "$0")/.."
PARTS="a b c d"
BUDGET=320
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --parts) shift; PARTS=""
             while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do PARTS="$PARTS $1"; shift; done ;;
    --budget) BUDGET=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) ARGS+=("$1"); shift ;;
  esac
done
OUT=${OUT:-./gpu_out}
SITE=${SITE:-/tmp/site}
WHL=${WHL:-.whl}
mkdir -p "$OUT" "$SITE"
export OUT
LOG="$OUT/gpu_check.log"
PY=${PYTHON:-python3}
{
  echo "== $(date -u +%FT%TZ) $(uname -n) $($PY --version 2>&1)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -4
  wheels=$(ls "$WHL"/*.whl 2>/dev/null)
  if [ -z "$wheels" ]; then
    echo "no wheels in $WHL/: assuming mmengine/mmcv/mmagic are installed"
  else
    if $PY -c "import torchvision" 2>/dev/null; then
      wheels=$(echo "$wheels" | grep -v '/torchvision-')
      echo "torchvision present on the machine: not installing the carried one"
    fi
    t0=$(date +%s)
    if $PY -m pip --version >/dev/null 2>&1; then
      # shellcheck disable=SC2086
      $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" $wheels 2>&1 | grep -v -i "warning: target directory" | tail -20
    else  # no pip: a wheel is a zip archive laid out for site-packages
      for w in $wheels; do $PY -m zipfile -e "$w" "$SITE"; done
    fi
    echo "installed $(echo "$wheels" | wc -l) wheels into $SITE in $(( $(date +%s) - t0 )) s"
  fi
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  # Python 3.12 has no distutils; MMEngine's collect_env imports it. setuptools' shim provides it
  # when setuptools sits in site-packages (its .pth); from /tmp/site it needs this hook.
  if ! $PY -c "import distutils.errors" 2>/dev/null && [ -d "$SITE/_distutils_hack" ] \
      && [ ! -e "$SITE/sitecustomize.py" ]; then
    echo "__import__('_distutils_hack').add_shim()" > "$SITE/sitecustomize.py"
    echo "distutils: shim enabled through $SITE/sitecustomize.py"
  fi
  $PY - <<'PYEOF'
import importlib.metadata as md
for name in ('torch', 'numpy', 'opencv-python-headless', 'opencv-python', 'torchvision',
             'mmengine', 'mmcv-lite', 'mmagic', 'setuptools', 'pillow', 'scipy', 'pandas'):
    try:
        print(f'{name}=={md.version(name)}', end='  ')
    except md.PackageNotFoundError:
        print(f'{name}: -', end='  ')
print()
PYEOF
  $PY -c "import hidiff_mm, mmagic; print('import hidiff_mm: ok (mmagic', mmagic.__version__ + ')')"
  rm -f "$OUT"/gpu_[a-e].json
  rc=0
  start=$SECONDS
  for part in a b e c d; do
    case " $PARTS " in *" $part "*) ;; *) continue ;; esac
    case $part in
      a) program=(gpu_inference.py); end=0.3 ;;
      b) program=(gpu_train_step.py); end=0.5 ;;
      e) program=(gpu_official.py); end=0.65 ;;
      c) program=(gpu_ddp.py); end=0.8 ;;
      d) program=(gpu_inference.py --compile); end=1.0 ;;
    esac
    budget=$(awk -v b="$BUDGET" -v e="$end" -v t=$((SECONDS - start)) \
      'BEGIN { s = b * e - t; print (s > 1 ? s : 1) }')
    echo "== part ($part): ${program[*]} --budget $budget"
    $PY "benchmarks/${program[0]}" "${program[@]:1}" --out "$OUT" --budget "$budget" \
      ${ARGS[@]+"${ARGS[@]}"}
    code=$?
    echo "== part ($part) exit $code after $SECONDS s"
    [ $code -ne 0 ] && rc=$code
  done
  $PY benchmarks/gpu_report.py --out "$OUT"
  echo "== gpu_check.sh exit $rc after $SECONDS s"
  if [ -n "${LEVERS_SIZE:-}" ]; then  # each lever alone on the GPU (bench_levers.py --device cuda)
    $PY benchmarks/bench_levers.py --device cuda --size "$LEVERS_SIZE" --repeats 5 \
      --model-repeats 5 --json "$OUT/levers.json" > "$OUT/levers.md"
    echo "== bench_levers.py exit $? after $SECONDS s: $OUT/levers.md"
  fi
  exit $rc
} 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
