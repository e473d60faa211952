# Sourced by the fetch_*.sh scripts: makes sure Rscript and Debian's r-cran-modeldata package are
# installed (apt-get, as root or via sudo) and sets rdata_dir to the package's data directory.
# Usage: ensure_modeldata SCRIPT_NAME
rdata_dir=/usr/lib/R/site-library/modeldata/data

ensure_modeldata() {
  local name="$1" need=() sudo=()
  command -v Rscript >/dev/null 2>&1 || need+=(r-base-core)
  [ -e "$rdata_dir/Rdata.rdb" ] || need+=(r-cran-modeldata)
  if [ ${#need[@]} -gt 0 ]; then
    echo "$name: installing ${need[*]}"
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
      else
        echo "$name: need root or sudo to install ${need[*]}" >&2
        exit 1
      fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends r-base-core r-cran-modeldata
  fi
  if [ ! -e "$rdata_dir/Rdata.rdb" ]; then
    echo "$name: $rdata_dir/Rdata.rdb not found after installing r-cran-modeldata" >&2
    exit 1
  fi
}
