#!/usr/bin/env bash
# Writes an English-Spanish parallel corpus for machine translation as OUT_DIR/train.tsv,
# validation.tsv and test.tsv: one verse pair a line, "english<TAB>spanish", UTF-8, no header, no
# quoting (tabs and newlines inside a side become spaces). Both sides are Debian packages:
#
#   english  the King James Bible, sword-text-kjv (SWORD module engKJV2006eb, abbreviation KJV)
#   spanish  the Reina-Valera 1909, sword-text-sparv (SWORD module spaRV1909eb, abbreviation
#            RV1909)
#
# Each module is read with libsword-utils' mod2imp ("$$$Book C:V" lines, each followed by the verse
# in OSIS markup) and stripped as scripts/fetch_lm_corpus.sh kjv does: notes removed with their
# content, the other tags removed keeping their words (Psalm titles and the subscriptions at the
# end of the Pauline epistles are part of the verse in both modules, so they stay), entities
# unescaped, pilcrows removed, whitespace collapsed, verse 0 (book and chapter introductions)
# skipped. One addition: the Spanish module often glues its <transChange> (words supplied by the
# translators) to the neighbouring words ("allí</w><transChange>también</transChange><w>bdelio"),
# so such a tag between two letters becomes a space (about 590 places; none in the KJV).
#
# Verses are paired by their key. Both modules declare the KJV versification and mod2imp names the
# books the same way in both (checked: keys only in one module are counted and dropped; in
# Debian 12 there are none, 31,102 verse keys each). Pairs are then dropped, in this order, when:
#   empty     a side is empty after stripping: 18 pairs, all Spanish, where the RV1909 source
#             numbers verses differently and the module leaves a KJV verse empty (e.g. Numbers
#             12:16, Job 38:39-41 and 40:20-24, Jonah 1:17, Acts 19:41, 2 Corinthians 13:14)
#   shifted   the verse numbering of the two texts disagrees. Both modules tag their words with
#             Strong's numbers, so a pair is suspect when fewer than half of the Strong's numbers
#             of the side with fewer are shared by the other, or when a neighbouring Spanish verse
#             (one before or after) shares clearly more (by 0.3) with the English one than its own
#             does. A chapter with 3 or more suspect pairs is dropped whole: 251 pairs in 10
#             chapters (Numbers 13 and 30, 1 Samuel 24, 1 Kings 22, 1 Chronicles 21,
#             2 Chronicles 33, Job 39 and 40, Hosea 12, Jonah 2), where the RV1909 numbering runs
#             one to five verses off the KJV's; elsewhere suspect pairs are dropped singly: 17
#   ratio     the Spanish side's length in characters is under 0.5 or over 2.0 times the
#             English side's: 14 pairs. After the filters above the ratio has median 0.92 and
#             0.1%/99.9% quantiles 0.55/1.5; what lies outside [0.5, 2.0] is mostly a verse
#             boundary drawn elsewhere (1 Chronicles 1:30-32, Judges 14:20), plus a few terse
#             commandments ("No adulterarás.")
# leaving 30,802 pairs. Fails if fewer than 30,000 non-empty pairs are read.
#
# Split by book, so no chapter is on both sides, in canonical (KJV) order:
#   validation  Ruth, Esther, Ecclesiastes, Daniel, Amos, Galatians, Ephesians, Philippians,
#               Titus, 1 Peter (about 5% of the pairs)
#   test        Ezra, Nehemiah, Lamentations, Micah, Colossians, Hebrews, James, 1 John (about 5%)
#   train       the other 48 books
#
# Written once: when the three files exist they are left alone. Files are written under a
# temporary name and renamed, so an interrupted run never leaves a file that looks complete.
# Installs what is missing with scripts/install_deps.sh --only (apt-get; root or sudo).
# Usage: scripts/fetch_bible_pairs.sh [OUT_DIR]   (default: data/cache/bible_en_es)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
case "${1:-}" in
  -h | --help | -*)
    echo "usage: scripts/fetch_bible_pairs.sh [OUT_DIR]" >&2
    exit 2
    ;;
esac
out_dir="${1:-$repo/data/cache/bible_en_es}"
python=/usr/bin/python3
files=(train validation test)

report() {
  for f in "${files[@]}"; do
    printf 'fetch_bible_pairs: %s/%s.tsv: %s bytes, %s lines\n' "$out_dir" "$f" \
      "$(wc -c <"$out_dir/$f.tsv")" "$(wc -l <"$out_dir/$f.tsv")"
  done
}

# The installed SWORD module whose abbreviation is $1 (Debian 12: KJV is engKJV2006eb, RV1909 is
# spaRV1909eb).
sword_module() {
  local conf
  conf="$(grep -lsx "Abbreviation=$1" /usr/share/sword/mods.d/*.conf | head -n 1)"
  [ -n "$conf" ] && sed -n 's/^\[\(.*\)\]$/\1/p' "$conf" | grep -vx Install | head -n 1
}

if [ -s "$out_dir/train.tsv" ] && [ -s "$out_dir/validation.tsv" ] && [ -s "$out_dir/test.tsv" ]
then
  report
  exit 0
fi

need=()
sword_module KJV >/dev/null || need+=(sword-text-kjv)
sword_module RV1909 >/dev/null || need+=(sword-text-sparv)
command -v mod2imp >/dev/null 2>&1 || need+=(libsword-utils)
[ -x "$python" ] || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "fetch_bible_pairs: installing ${need[*]}"
  "$repo/scripts/install_deps.sh" --only "${need[@]}"
fi
en_module="$(sword_module KJV)" || true
es_module="$(sword_module RV1909)" || true
for m in "KJV:$en_module" "RV1909:$es_module"; do
  if [ -z "${m#*:}" ]; then
    echo "fetch_bible_pairs: no SWORD module with Abbreviation=${m%%:*} in /usr/share/sword/mods.d" >&2
    exit 1
  fi
done
echo "fetch_bible_pairs: English module $en_module, Spanish module $es_module"

mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

mod2imp "$en_module" >"$work/en.imp"
mod2imp "$es_module" >"$work/es.imp"
"$python" - "$work/en.imp" "$work/es.imp" "$work" <<'EOF'
import html, re, sys
en_src, es_src, out = sys.argv[1:4]
VALIDATION = ["Ruth", "Esther", "Ecclesiastes", "Daniel", "Amos", "Galatians", "Ephesians",
              "Philippians", "Titus", "I Peter"]
TEST = ["Ezra", "Nehemiah", "Lamentations", "Micah", "Colossians", "Hebrews", "James", "I John"]
MIN_PAIRS = 30000
RATIO = (0.5, 2.0)        # bounds on len(spanish) / len(english), in characters
MIN_OVERLAP = 0.5         # shared Strong's numbers / those of the side with fewer
NEIGHBOUR_MARGIN = 0.3    # a neighbouring verse sharing this much more marks a shift
BAD_CHAPTER = 3           # suspect pairs that condemn their whole chapter

def fail(msg):
    print(f"fetch_bible_pairs: {msg}", file=sys.stderr)
    sys.exit(1)

def strip(raw):
    text = re.sub(r"<note\b.*?</note>", "", raw, flags=re.S)  # translators' notes
    text = re.sub(r"</?transChange\b[^>]*>", "\x01", text)  # words supplied by the translators
    text = re.sub(r"<[^>]*>", "", text)  # the rest of the markup, its words kept
    text = re.sub(r"(?<=\w)\x01+(?=\w)", " ", text).replace("\x01", "")  # glued in RV1909
    text = html.unescape(text).replace("\u00b6", "")  # pilcrows mark paragraphs
    return re.sub(r"\s+", " ", text).strip()  # also tabs and newlines

def strongs(raw):
    raw = re.sub(r"<note\b.*?</note>", "", raw, flags=re.S)
    return {h + n for lemma in re.findall(r'lemma="([^"]*)"', raw)
            for h, n in re.findall(r"\b([HG])0*(\d+)\b", lemma)}

def read(src):
    """{(book, chapter, verse): (text, strong's numbers)} in the module's order, verse 0 skipped."""
    verses, key, body = {}, None, []
    def flush():
        if key is None:
            return
        m = re.match(r"^(.*) (\d+):(\d+)$", key)
        if not m or m.group(3) == "0":  # module, testament, book and chapter introductions
            return
        raw = " ".join(body)
        verses[(m.group(1), int(m.group(2)), int(m.group(3)))] = (strip(raw), strongs(raw))
    with open(src, encoding="utf-8", errors="strict") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("$$$"):
                flush()
                key, body = line[3:].strip(), []
            else:
                body.append(line)
    flush()
    return verses

en, es = read(en_src), read(es_src)
only_en = [k for k in en if k not in es]
only_es = [k for k in es if k not in en]
keys = [k for k in en if k in es]
print(f"fetch_bible_pairs: {len(en)} English and {len(es)} Spanish verses; {len(keys)} keys in "
      f"both, {len(only_en)} only in English, {len(only_es)} only in Spanish (dropped)")
for k in (only_en + only_es)[:5]:
    print(f"fetch_bible_pairs:   e.g. {k[0]} {k[1]}:{k[2]}")

empty = [k for k in keys if not en[k][0] or not es[k][0]]
pairs = [k for k in keys if en[k][0] and es[k][0]]
if len(pairs) < MIN_PAIRS:
    fail(f"only {len(pairs)} aligned non-empty verse pairs read from mod2imp, expected at least "
         f"{MIN_PAIRS}")
books = list(dict.fromkeys(k[0] for k in keys))
missing = [b for b in VALIDATION + TEST if b not in books]
if missing:
    fail(f"books for validation/test not in both modules: {', '.join(missing)}")

def overlap(a, b):
    return len(a & b) / min(len(a), len(b)) if a and b else None

def suspect(k):
    s_en = en[k][1]
    same = overlap(s_en, es[k][1])
    if same is None:  # a side without Strong's numbers: nothing to judge by
        return False
    nb = [overlap(s_en, es.get((k[0], k[1], k[2] + d), ("", set()))[1]) or 0 for d in (-1, 1)]
    return same < MIN_OVERLAP or max(nb) > same + NEIGHBOUR_MARGIN

sus = {k for k in pairs if suspect(k)}
per_chapter = {}
for k in sus:
    per_chapter[k[:2]] = per_chapter.get(k[:2], 0) + 1
bad = {c for c, n in per_chapter.items() if n >= BAD_CHAPTER}
in_bad = [k for k in pairs if k[:2] in bad]
single = [k for k in pairs if k in sus and k[:2] not in bad]
pairs = [k for k in pairs if k not in sus and k[:2] not in bad]
lo, hi = RATIO
ratio_out = [k for k in pairs if not lo <= len(es[k][0]) / len(en[k][0]) <= hi]
pairs = [k for k in pairs if lo <= len(es[k][0]) / len(en[k][0]) <= hi]

print(f"fetch_bible_pairs: dropped {len(empty)} with an empty side "
      f"({sum(not en[k][0] for k in empty)} English, {sum(not es[k][0] for k in empty)} Spanish)")
print(f"fetch_bible_pairs: dropped {len(in_bad)} in {len(bad)} chapters numbered differently: "
      + ", ".join(f"{b} {c}" for b, c in sorted(bad, key=lambda c: (books.index(c[0]), c[1]))))
print(f"fetch_bible_pairs: dropped {len(single)} single pairs whose Strong's numbers disagree")
print(f"fetch_bible_pairs: dropped {len(ratio_out)} with a length ratio outside [{lo}, {hi}]")
print(f"fetch_bible_pairs: {len(pairs)} pairs kept")

split = {b: "validation" for b in VALIDATION}
split.update({b: "test" for b in TEST})
parts = {"train": [], "validation": [], "test": []}
for k in pairs:
    parts[split.get(k[0], "train")].append(f"{en[k][0]}\t{es[k][0]}\n")
for name, lines in parts.items():
    with open(f"{out}/{name}.tsv", "w", encoding="utf-8", newline="\n") as f:
        f.writelines(lines)
    print(f"fetch_bible_pairs: {name}: {len(lines)} pairs "
          f"({100 * len(lines) / len(pairs):.1f}%)")
EOF

for f in "${files[@]}"; do
  [ -s "$work/$f.tsv" ] || { echo "fetch_bible_pairs: no $f.tsv was written" >&2; exit 1; }
  chmod 644 "$work/$f.tsv"
done
# train.tsv last: its appearing marks the corpus complete.
mv "$work/test.tsv" "$out_dir/test.tsv"
mv "$work/validation.tsv" "$out_dir/validation.tsv"
mv "$work/train.tsv" "$out_dir/train.tsv"
report
