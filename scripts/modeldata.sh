# Sourced by the fetch_*.sh scripts: makes sure Rscript and Debian's r-cran-modeldata package are
# installed (apt-get, as root or via sudo) and sets rdata_dir to the package's data directory.
# Usage: ensure_modeldata SCRIPT_NAME
rdata_dir=/usr/lib/R/site-library/modeldata/data

ensure_modeldata() {
  local name="$1" need=()
  command -v Rscript >/dev/null 2>&1 || need+=(r-base-core)
  [ -e "$rdata_dir/Rdata.rdb" ] || need+=(r-cran-modeldata)
  if [ ${#need[@]} -gt 0 ]; then
    echo "$name: installing ${need[*]}"
    "$(dirname "${BASH_SOURCE[0]}")/install_deps.sh" --only "${need[@]}"
  fi
  if [ ! -e "$rdata_dir/Rdata.rdb" ]; then
    echo "$name: $rdata_dir/Rdata.rdb not found after installing r-cran-modeldata" >&2
    exit 1
  fi
}
