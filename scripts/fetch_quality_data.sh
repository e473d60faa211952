#!/usr/bin/env bash
# Writes the data sets of the quality suite (scripts/quality.sh, docs/quality.md) as CSV files,
# all taken from Debian packages, none downloaded from elsewhere:
#
#   austen.csv     text: 6,000-odd passages of ten lines from Jane Austen's six novels (label: the
#                  novel), r-cran-janeaustenr
#   digits.csv     images as a table: 1,797 8x8 handwritten digits, 64 pixel columns, python3-sklearn
#   letter.csv     26 classes: 20,000 letter images described by 16 numeric features, r-cran-mlbench
#   satellite.csv  6 classes of soil from 36 Landsat pixel values, 6,435 rows, r-cran-mlbench
#   glass.csv      6 glass types from 9 chemical measures, 214 rows, classes of 9 to 76 rows,
#                  r-cran-mlbench
#   spam.csv       spam or not from 57 word and character frequencies, 4,601 e-mails, r-cran-kernlab
#   credit.csv     good or bad credit, 4,454 rows, numeric and categorical columns with missing
#                  cells, r-cran-modeldata
#   diabetes.csv   regression: disease progression from 10 measures, 442 patients, python3-sklearn
#   chicago.csv    regression: daily train riders at Clark/Lake from 14-day-lagged counts at 20
#                  stations, weather and sports games, 5,698 days, r-cran-modeldata
#
# Classification sets have the column `label`, regression sets the column `target`; missing
# cells are empty. Each file is written once: when it exists it is left alone. Files are written
# to a temporary name and renamed, so an interrupted run never leaves a file that looks complete.
# Installs r-base-core, the R data packages, python3-sklearn and jq (for scripts/quality.sh) with
# apt-get (root or sudo) when they are missing.
# Usage: scripts/fetch_quality_data.sh [OUT_DIR]   (default: data/cache/quality)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out_dir="${1:-$repo/data/cache/quality}"
site=/usr/lib/R/site-library
sklearn_data=/usr/lib/python3/dist-packages/sklearn/datasets/data
python=/usr/bin/python3

need=()
command -v Rscript >/dev/null 2>&1 || need+=(r-base-core)
[ -e "$site/mlbench/data/Glass.rda" ] || need+=(r-cran-mlbench)
[ -e "$site/kernlab/data/spam.rda" ] || need+=(r-cran-kernlab)
[ -e "$site/modeldata/data/Rdata.rdb" ] || need+=(r-cran-modeldata)
[ -e "$site/janeaustenr/data/Rdata.rdb" ] || need+=(r-cran-janeaustenr)
[ -e "$sklearn_data/digits.csv.gz" ] || need+=(python3-sklearn)
command -v jq >/dev/null 2>&1 || need+=(jq)  # scripts/quality.sh reads the results with it
if [ ${#need[@]} -gt 0 ]; then
  echo "fetch_quality_data: installing ${need[*]}"
  "$repo/scripts/install_deps.sh" --only "${need[@]}"
fi

mkdir -p "$out_dir"
tmp=""
trap 'rm -f "$tmp"' EXIT

# One R program writes any of the R sets: NAME OUT_FILE.
convert_r() {
  Rscript --vanilla - "$site" "$1" "$2" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
site <- args[1]; name <- args[2]; out <- args[3]
rda <- function(pkg, obj) {
  e <- new.env()
  load(file.path(site, pkg, "data", paste0(obj, ".rda")), envir = e)
  as.data.frame(get(obj, envir = e))
}
lazy <- function(pkg, obj) {
  e <- new.env()
  invisible(lazyLoad(file.path(site, pkg, "data", "Rdata"), envir = e))
  if (!exists(obj, envir = e, inherits = FALSE)) stop(sprintf("no object '%s' in %s", obj, pkg))
  get(obj, envir = e)
}
relabel <- function(d, from) {
  names(d)[names(d) == from] <- "label"
  d
}
d <- switch(name,
  letter = relabel(rda("mlbench", "LetterRecognition"), "lettr"),
  satellite = relabel(rda("mlbench", "Satellite"), "classes"),
  glass = relabel(rda("mlbench", "Glass"), "Type"),
  spam = relabel(rda("kernlab", "spam"), "type"),
  credit = relabel(as.data.frame(lazy("modeldata", "credit_data")), "Status"),
  chicago = {
    d <- as.data.frame(lazy("modeldata", "Chicago"))
    d$date <- NULL  # a date per row; its weekday and season are not given as features
    names(d)[names(d) == "ridership"] <- "target"
    d
  },
  austen = {
    # Consecutive non-empty lines of each novel, ten to a passage; chapter headings are dropped.
    novels <- c(sensesensibility = "Sense_and_Sensibility", prideprejudice = "Pride_and_Prejudice",
                mansfieldpark = "Mansfield_Park", emma = "Emma",
                northangerabbey = "Northanger_Abbey", persuasion = "Persuasion")
    rows <- list()
    for (obj in names(novels)) {
      lines <- trimws(lazy("janeaustenr", obj))
      lines <- lines[nchar(lines) > 0 & !grepl("^(CHAPTER|Chapter|VOLUME|Volume) ", lines)]
      n <- length(lines) %/% 10
      text <- vapply(seq_len(n), function(i) paste(lines[(10 * i - 9):(10 * i)], collapse = " "), "")
      rows[[obj]] <- data.frame(text = text, label = novels[[obj]])
    }
    do.call(rbind, rows)
  },
  stop(sprintf("unknown data set '%s'", name)))
for (col in names(d)) if (is.factor(d[[col]])) d[[col]] <- as.character(d[[col]])
if (!("label" %in% names(d)) && !("target" %in% names(d))) stop("no label or target column")
write.csv(d, file = out, row.names = FALSE, na = "", fileEncoding = "UTF-8")
cat(sprintf("%s.csv: %d rows, %d columns\n", name, nrow(d), ncol(d)))
EOF
}

# The python3-sklearn sets: NAME OUT_FILE.
convert_sklearn() {
  OMP_NUM_THREADS=1 "$python" - "$1" "$2" <<'EOF'
import csv, sys
from sklearn.datasets import load_diabetes, load_digits
name, out = sys.argv[1], sys.argv[2]
if name == "digits":
    b = load_digits()
    header = [f"p{i}" for i in range(b.data.shape[1])] + ["label"]
    rows = [[int(v) for v in x] + [f"d{int(y)}"] for x, y in zip(b.data, b.target)]
else:
    b = load_diabetes(scaled=False)
    header = list(b.feature_names) + ["target"]
    rows = [[float(v) for v in x] + [float(y)] for x, y in zip(b.data, b.target)]
with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)
print(f"{name}.csv: {len(rows)} rows, {len(header)} columns")
EOF
}

for name in austen digits letter satellite glass spam credit diabetes chicago; do
  out="$out_dir/$name.csv"
  [ -s "$out" ] && continue
  tmp="$(mktemp "$out_dir/.$name.XXXXXX")"
  case "$name" in
    digits | diabetes) convert_sklearn "$name" "$tmp" ;;
    *) convert_r "$name" "$tmp" ;;
  esac
  chmod 644 "$tmp"
  mv "$tmp" "$out"
  tmp=""
done
echo "fetch_quality_data: data in $out_dir"
