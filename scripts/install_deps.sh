#!/usr/bin/env bash
# Installs the Debian packages moe needs to build and test, if any are missing.
# ocl-icd-opencl-dev: Debian's oneDNN CMake config looks for OpenCL (only a Recommends of
# libdnnl-dev, which --no-install-recommends leaves out). jq: the shell tests read JSON with it.
# Usage: scripts/install_deps.sh [extra packages...]
#        scripts/install_deps.sh --only PACKAGE...   (just those: the data fetchers use it)
set -euo pipefail

if [ "${1:-}" = "--only" ]; then
  shift
  packages=("$@")
else
  packages=(cmake make g++ pkg-config libdnnl-dev nlohmann-json3-dev libcli11-dev libfmt-dev
            libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev libsentencepiece-dev
            ocl-icd-opencl-dev jq libopenmpi-dev openmpi-bin "$@")
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "moe: installing missing packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "moe: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
