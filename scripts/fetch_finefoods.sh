#!/usr/bin/env bash
# Obtains the Amazon Fine Foods review sentiment data (4,000 training and 1,000 test reviews,
# label `great` or `other`) from Debian's r-cran-modeldata package and writes it as TSV:
#
#   data/cache/finefoods_train.tsv   columns: text <TAB> label
#   data/cache/finefoods_test.tsv
#
# The package stores the data as R objects `training_data` and `testing_data` (columns
# `product`, `review`, `score`) in the lazy-load database data/Rdata; Rscript loads them.
# HTML is stripped here: tags (<br />, <a href=...>, ...) become a space and the entities
# &amp; &lt; &gt; &quot; &#39; &eacute; &egrave; are decoded, tabs and newlines become spaces, runs of spaces are
# collapsed. The text reader strips HTML as well, which is harmless on already clean text.
# Fields are written RFC 4180 style: every text field quoted, an embedded quote doubled.
#
# Runs once: when both files exist the script does nothing. Files are written to temporary
# names and renamed, so an interrupted run never leaves a cache that looks complete.
# Usage: scripts/fetch_finefoods.sh [OUT_DIR]   (default: data/cache under the repository)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo/data/cache}"
train="$out_dir/finefoods_train.tsv"
test="$out_dir/finefoods_test.tsv"

if [ -s "$train" ] && [ -s "$test" ]; then
  exit 0
fi

source "$repo/scripts/modeldata.sh"
ensure_modeldata fetch_finefoods

mkdir -p "$out_dir"
tmp_train="$(mktemp "$out_dir/.finefoods_train.XXXXXX")"
tmp_test="$(mktemp "$out_dir/.finefoods_test.XXXXXX")"
trap 'rm -f "$tmp_train" "$tmp_test"' EXIT

Rscript --vanilla - "$rdata_dir/Rdata" "$tmp_train" "$tmp_test" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
env <- new.env()
invisible(lazyLoad(args[1], envir = env))
for (name in c("training_data", "testing_data")) {
  if (!exists(name, envir = env, inherits = FALSE)) {
    stop(sprintf("object '%s' not in %s (has: %s)", name, args[1],
                 paste(ls(env), collapse = ", ")))
  }
  d <- get(name, envir = env)
  for (col in c("review", "score")) {
    if (!(col %in% names(d))) {
      stop(sprintf("%s has no column '%s' (has: %s)", name, col,
                   paste(names(d), collapse = ", ")))
    }
  }
}
clean <- function(x) {
  x <- enc2utf8(as.character(x))
  x <- gsub("<[^>]*>", " ", x, perl = TRUE)
  x <- gsub("&lt;", "<", x, fixed = TRUE)
  x <- gsub("&gt;", ">", x, fixed = TRUE)
  x <- gsub("&quot;", "\"", x, fixed = TRUE)
  x <- gsub("&#39;", "'", x, fixed = TRUE)
  x <- gsub("&eacute;", "\u00e9", x, fixed = TRUE)
  x <- gsub("&egrave;", "\u00e8", x, fixed = TRUE)
  x <- gsub("&amp;", "&", x, fixed = TRUE)
  x <- gsub("[\t\r\n]+", " ", x, perl = TRUE)
  x <- gsub(" {2,}", " ", x, perl = TRUE)
  trimws(x)
}
write_split <- function(d, path, label) {
  out <- data.frame(text = clean(d$review), label = as.character(d$score),
                    stringsAsFactors = FALSE)
  write.table(out, file = path, sep = "\t", quote = 1, qmethod = "double",
              row.names = FALSE, col.names = TRUE, fileEncoding = "UTF-8")
  cat(sprintf("%s: %d rows, labels: %s\n", label, nrow(out),
              paste(sprintf("%s=%d", names(table(out$label)), as.integer(table(out$label))),
                    collapse = " ")))
}
write_split(get("training_data", envir = env), args[2], "finefoods_train.tsv")
write_split(get("testing_data", envir = env), args[3], "finefoods_test.tsv")
EOF

chmod 644 "$tmp_train" "$tmp_test"
mv "$tmp_train" "$train"
mv "$tmp_test" "$test"
trap - EXIT
echo "fetch_finefoods: wrote $train and $test"
