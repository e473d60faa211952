#!/usr/bin/env bash
# The README's promise, checked: on a fresh Debian 12 machine a user clones moe and types
# `make demo` and `make test`, and both install what they need and pass.
#
# This builds that machine: a minimal Debian 12 root (`debootstrap --variant=minbase`, from this
# machine's own Debian mirror), adds only `git` and `make` (what a user needs to clone and type
# the command), clones the commit under test (HEAD of this repository; uncommitted changes are not
# part of it) into the root, and there runs `make demo`, then `make test-fast` (unit, gradcheck,
# golden, interop and browser labels) and `make test-docs` (the README's and docs' commands).
# Every package those need is installed by the project's own scripts inside the root, so a
# package that only this machine has (installed by hand) cannot hide a missing install step.
#
# Downloaded .deb files are kept between runs in MOE_FRESH_CACHE (default
# /var/cache/moe-fresh): a cached file saves a download but is installed only when the root
# asks for it, so the cache cannot hide a missing package.
#
# Needs root (debootstrap, chroot, mounts). Cleans up after itself: unmounts and removes the
# root on any exit. Prints how long each stage took.
#
# Usage: scripts/test_fresh.sh [TARGET...]   (default: demo test-fast test-docs)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(demo test-fast test-docs)

if [ "$(id -u)" -ne 0 ]; then
  echo "test-fresh: needs root (debootstrap, chroot and mounts)" >&2
  exit 1
fi
"$repo/scripts/install_deps.sh" debootstrap

commit="$(git -C "$repo" rev-parse HEAD)"
cache="${MOE_FRESH_CACHE:-/var/cache/moe-fresh}"
mkdir -p "$cache/debootstrap" "$cache/apt"

# The first Debian mirror this machine's apt uses (deb822 .sources or a one-line .list).
mirror="$(grep -hsE '^URIs:.*debian' /etc/apt/sources.list.d/*.sources 2>/dev/null |
  awk '{print $2}' | grep -v security | head -n 1 || true)"
if [ -z "$mirror" ]; then
  mirror="$(grep -hsE '^deb .*debian' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
    2>/dev/null | awk '{print $2}' | grep -v security | head -n 1 || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

work="$(mktemp -d /var/tmp/moe-fresh.XXXXXX)"
root="$work/root"

# True while anything is mounted at or below $root (awk's own exit status: a pipe into grep -q
# could fail under pipefail when grep stops reading first).
mounted_under_root() {
  awk -v r="$root" 'index($2, r) == 1 {found = 1} END {exit !found}' /proc/mounts
}
# Unmounts everything under the root, deepest first, and removes it only when nothing is
# mounted there any more (a bind mount of /dev must never be deleted through).
cleanup() {
  local status=$?
  local m
  for _ in 1 2 3; do
    while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done < <(awk -v r="$root" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r)
    mounted_under_root || break
    sleep 1
  done
  if mounted_under_root; then
    echo "test-fresh: mounts remain under $root; not removing it" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -a stage_names=() stage_secs=()
stage() {
  local name=$1
  shift
  local t0=$SECONDS
  echo "test-fresh: == $name"
  "$@"
  stage_names+=("$name")
  stage_secs+=($((SECONDS - t0)))
  echo "test-fresh: == $name: $((SECONDS - t0)) s"
}

make_root() {
  debootstrap --variant=minbase --include=git,make --cache-dir="$cache/debootstrap" \
    bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log" >&2; return 1; }
  # The same suites this machine uses: the release, its updates and the security archive.
  cat >"$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
EOF
  if grep -hsqE 'debian-security|security\.debian' /etc/apt/sources.list \
    /etc/apt/sources.list.d/*; then
    local sec
    sec="$(grep -hsE '^URIs:.*debian-security' /etc/apt/sources.list.d/*.sources |
      awk '{print $2}' | head -n 1 || true)"
    echo "deb ${sec:-http://deb.debian.org/debian-security} bookworm-security main" \
      >>"$root/etc/apt/sources.list"
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # Keep downloaded packages (apt in a minbase root deletes nothing by default; say so anyway).
  echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' \
    >"$root/etc/apt/apt.conf.d/01keep-debs"
  mount -t proc proc "$root/proc"
  mount --rbind /sys "$root/sys"
  mount --make-rslave "$root/sys"
  mount --rbind /dev "$root/dev"
  mount --make-rslave "$root/dev"
  mount --bind "$cache/apt" "$root/var/cache/apt/archives"
  mkdir -p "$root/var/cache/apt/archives/partial"
}

clone() {
  chroot "$root" git config --global --add safe.directory '*'
  git clone -q --no-hardlinks "$repo" "$root/root/moe"
  git -C "$root/root/moe" checkout -q "$commit"
  echo "test-fresh: commit $(git -C "$root/root/moe" log -1 --format='%h %s' | cut -c1-100)"
}

# A login-like environment: nothing of this machine's shell leaks into the root.
in_root() {
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb CI="${CI:-}" bash -c "cd /root/moe && $*"
}

stage "debootstrap (minbase + git, make)" make_root
stage "clone $commit" clone
for t in "${targets[@]}"; do
  stage "make $t" in_root "make $t"
done

echo "test-fresh: passed on a fresh Debian 12 root; stages:"
for i in "${!stage_names[@]}"; do
  printf 'test-fresh:   %5d s  %s\n' "${stage_secs[$i]}" "${stage_names[$i]}"
done
echo "test-fresh: total $SECONDS s"
