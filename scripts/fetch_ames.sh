#!/usr/bin/env bash
# Obtains the Ames housing data (De Cock 2011: 2,930 house sales in Ames, Iowa, 73 columns of
# numeric and categorical features and the sale price) from Debian's r-cran-modeldata package and
# writes it as CSV for the tabular regression example (examples/ames.json):
#
#   data/cache/ames.csv   a header row, then one sale per line; text fields quoted
#
# The package stores the data as the R object `ames` in the lazy-load database data/Rdata;
# Rscript loads it. Factors are written as their level names. The data has no missing values
# (absent features are levels such as "No_Garage").
#
# Runs once: when the file exists the script does nothing. The file is written to a temporary
# name and renamed, so an interrupted run never leaves a cache that looks complete.
# Usage: scripts/fetch_ames.sh [OUT_DIR]   (default: data/cache under the repository)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo/data/cache}"
out="$out_dir/ames.csv"

if [ -s "$out" ]; then
  exit 0
fi

source "$repo/scripts/modeldata.sh"
ensure_modeldata fetch_ames

mkdir -p "$out_dir"
tmp="$(mktemp "$out_dir/.ames.XXXXXX")"
trap 'rm -f "$tmp"' EXIT

Rscript --vanilla - "$rdata_dir/Rdata" "$tmp" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
env <- new.env()
invisible(lazyLoad(args[1], envir = env))
if (!exists("ames", envir = env, inherits = FALSE)) {
  stop(sprintf("object 'ames' not in %s (has: %s)", args[1], paste(ls(env), collapse = ", ")))
}
d <- as.data.frame(get("ames", envir = env))
if (!("Sale_Price" %in% names(d))) stop("ames has no column 'Sale_Price'")
for (col in names(d)) if (is.factor(d[[col]])) d[[col]] <- as.character(d[[col]])
if (anyNA(d)) stop("ames has missing values; the example expects none")
write.csv(d, file = args[2], row.names = FALSE, fileEncoding = "UTF-8")
cat(sprintf("ames.csv: %d rows, %d columns\n", nrow(d), ncol(d)))
EOF

chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
echo "fetch_ames: wrote $out"
