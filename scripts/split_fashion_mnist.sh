#!/usr/bin/env bash
# Splits Fashion-MNIST by class into two tasks for transfer experiments (docs/adaptive.md):
#
#   OUT_DIR/a/   classes 0-4 (T-shirt/top, trouser, pullover, dress, coat): every training and
#                test image of them
#   OUT_DIR/b/   classes 5-9 (sandal, shirt, sneaker, bag, ankle boot): the first N_B training
#                images of them (default 2000) and every test image
#
# Each directory holds train-images, train-labels, test-images and test-labels as uncompressed IDX
# files; labels keep their Fashion-MNIST values (0-9), so both tasks are read with n_classes 10.
# Written under temporary names and renamed; an existing OUT_DIR/a and OUT_DIR/b are left alone.
# Usage: scripts/split_fashion_mnist.sh [OUT_DIR] [N_B]   (default: data/cache/fashion_split)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$repo/data/cache/fashion_split}"
n_b="${2:-2000}"
src=/usr/share/datasets/fashion-mnist
case "$n_b" in '' | *[!0-9]*)
  echo "split_fashion_mnist: N_B must be a positive integer, got '$n_b'" >&2
  exit 2
  ;;
esac
if [ -s "$out/a/test-labels" ] && [ -s "$out/b/test-labels" ]; then exit 0; fi
"$repo/scripts/fetch_fashion_mnist.sh"
mkdir -p "$out/a" "$out/b"

# split SET TASK LO HI LIMIT: the images of SET (train or t10k) whose label is in [LO, HI], at most
# LIMIT of them (0: all), written as OUT_DIR/TASK/{train,test}-{images,labels}.
split() {
  local set=$1 task=$2 lo=$3 hi=$4 limit=$5 name
  name=$([ "$set" = t10k ] && echo test || echo train)
  perl -e '
    use strict; use warnings;
    my ($images, $labels, $lo, $hi, $limit, $out_images, $out_labels) = @ARGV;
    open(my $li, "-|", "zcat", $labels) or die "$labels: $!";
    open(my $ii, "-|", "zcat", $images) or die "$images: $!";
    binmode $li; binmode $ii;
    local $/;
    my $l = <$li>; my $i = <$ii>;
    my ($lmagic, $n) = unpack("NN", substr($l, 0, 8));
    my ($imagic, $ni, $rows, $cols) = unpack("NNNN", substr($i, 0, 16));
    die "not IDX label and image files\n" unless $lmagic == 0x801 && $imagic == 0x803 && $n == $ni;
    my $size = $rows * $cols;
    my ($kept_l, $kept_i, $k) = ("", "", 0);
    for my $r (0 .. $n - 1) {
      my $y = ord(substr($l, 8 + $r, 1));
      next if $y < $lo || $y > $hi;
      $kept_l .= chr($y);
      $kept_i .= substr($i, 16 + $r * $size, $size);
      last if ++$k == $limit;
    }
    open(my $ol, ">", "$out_labels.tmp") or die; binmode $ol;
    print $ol pack("NN", 0x801, $k), $kept_l; close($ol) or die;
    open(my $oi, ">", "$out_images.tmp") or die; binmode $oi;
    print $oi pack("NNNN", 0x803, $k, $rows, $cols), $kept_i; close($oi) or die;
    rename("$out_images.tmp", $out_images) or die; rename("$out_labels.tmp", $out_labels) or die;
  ' "$src/$set-images-idx3-ubyte.gz" "$src/$set-labels-idx1-ubyte.gz" "$lo" "$hi" "$limit" \
    "$out/$task/$name-images" "$out/$task/$name-labels"
}
split train a 0 4 0
split t10k a 0 4 0
split train b 5 9 "$n_b"
split t10k b 5 9 0
echo "split_fashion_mnist: $out/a (classes 0-4) and $out/b (classes 5-9, $n_b training images)"
