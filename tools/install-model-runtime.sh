#!/usr/bin/env bash
# Installs llama-cpp-python, the embedded model's runtime, built for a portable CPU baseline and never for the
# build machine's native instruction set (a native build can die with SIGILL on another CPU: an AMX tile
# instruction, say, on a machine that has not asked the kernel for AMX state).
#
#   x86-64 with AVX2, FMA and F16C: the baseline "x86-64-avx2" (every x86-64 CPU since 2013-2015);
#   x86-64 without them:            "x86-64-scalar" (SSE only), with a one-line warning;
#   arm64:                          "armv8", the compiler's default armv8-a set.
#
# The wheel is built with pip's cache off (pip's wheel cache does not key on CMAKE_ARGS, so it could hand back a
# wheel built with other flags) and kept in our own cache, keyed by the runtime's version, the variant, the flags,
# the machine and the Python tag; a wheel built with other flags is never reused. The chosen variant is written
# to $VENV/model-runtime.json, which `bme operator serve` and the tests read.
#
# Usage: tools/install-model-runtime.sh VENV [VARIANT]   (VARIANT: auto | x86-64-avx2 | x86-64-scalar | armv8)
set -euo pipefail

venv=${1:?usage: $0 VENV [VARIANT]}
variant=${2:-${BME_MODEL_RUNTIME_VARIANT:-auto}}
here=$(cd "$(dirname "$0")/.." && pwd)
python="$venv/bin/python"
version=$(sed -n 's/^llama[-_]cpp[-_]python==//Ip' "$here/requirements.lock")
[ -n "$version" ] || { echo "install-model-runtime: llama-cpp-python is not pinned in requirements.lock" >&2; exit 1; }

common="-DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF"
x86_off="-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BMI2=OFF"

has_flags() {
  local flag
  for flag in "$@"; do grep -qw "$flag" /proc/cpuinfo 2>/dev/null || return 1; done
}

machine=$(uname -m)
if [ "$variant" = auto ]; then
  case "$machine" in
    x86_64|amd64)
      if has_flags avx2 fma f16c; then
        variant=x86-64-avx2
      else
        echo "warning: this CPU lacks AVX2/FMA/F16C; building the model runtime without them (scalar, several times slower)" >&2
        variant=x86-64-scalar
      fi ;;
    aarch64|arm64) variant=armv8 ;;
    *) echo "install-model-runtime: no portable build is defined for $machine" >&2; exit 1 ;;
  esac
fi
case "$variant" in
  x86-64-avx2) flags="$common $x86_off -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" ;;
  x86-64-scalar) flags="$common $x86_off -DGGML_SSE42=ON -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF" ;;
  armv8) flags="$common" ;;
  *) echo "install-model-runtime: unknown variant '$variant' (x86-64-avx2, x86-64-scalar, armv8)" >&2; exit 1 ;;
esac

pytag=$("$python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')
key=$(printf '%s|%s|%s|%s|%s' "$version" "$variant" "$flags" "$machine" "$pytag" | sha256sum | cut -c1-16)
cache=${BME_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/bme/wheels}/llama-cpp-python-$version-$variant-$key
marker="$venv/model-runtime.json"

if [ -f "$marker" ] && grep -q "\"key\": \"$key\"" "$marker" && "$python" -c 'import llama_cpp' 2>/dev/null; then
  exit 0
fi

wheel=$(ls "$cache"/llama_cpp_python-*.whl 2>/dev/null | head -n1 || true)
if [ -z "$wheel" ]; then
  echo "Building llama-cpp-python $version for $variant (portable, not native; several minutes on 2 cores)..." >&2
  tmp="$cache.tmp.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  start=$(date +%s)
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$python" -m pip wheel --quiet --no-cache-dir --no-deps --no-binary=llama-cpp-python \
    -w "$tmp" "llama-cpp-python==$version"
  rm -rf "$cache" && mv "$tmp" "$cache"
  echo "Built in $(( $(date +%s) - start )) s: $cache" >&2
  wheel=$(ls "$cache"/llama_cpp_python-*.whl | head -n1)
fi

"$python" -m pip install --quiet --no-cache-dir --force-reinstall --no-deps "$wheel"
"$python" -m pip install --quiet -c "$here/requirements.lock" "$wheel"
cat >"$marker" <<EOF
{"package": "llama-cpp-python", "version": "$version", "variant": "$variant", "cmake_args": "$flags", "machine": "$machine", "key": "$key"}
EOF
echo "Model runtime: llama-cpp-python $version, $variant" >&2
