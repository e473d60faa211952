#!/usr/bin/env bash
# Makes sure the Fashion-MNIST images (Xiao, Rasul and Vollgraf 2017: 60,000 training and 10,000
# test 28x28 grey images of clothing in 10 classes) are on this machine for
# examples/fashion_mnist.json: Debian's dataset-fashion-mnist package installs them as gzipped
# IDX files under /usr/share/datasets/fashion-mnist/, which the example reads in place.
#
# Installs the package when it is missing (apt-get, as root or via sudo), then checks that the
# four files the example names are there.
# Usage: scripts/fetch_fashion_mnist.sh
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=/usr/share/datasets/fashion-mnist
files=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz
       t10k-labels-idx1-ubyte.gz)

"$repo/scripts/install_deps.sh" dataset-fashion-mnist
for f in "${files[@]}"; do
  if [ ! -s "$dir/$f" ]; then
    echo "fetch_fashion_mnist: $dir/$f not found after installing dataset-fashion-mnist" >&2
    exit 1
  fi
done
