"""Corpus BLEU from NLTK (python3-nltk) on text tokenised as mteval-v13a does: bleu_nltk.json.

For each corpus, the hypotheses and references as written, their 13a tokenisations (made here
with Python's re and the four substitutions sacreBLEU's 13a tokeniser applies, which the C++
tokeniser emulates byte by byte), and nltk.translate.bleu_score.corpus_bleu of the tokens times
100. NLTK without smoothing equals sacreBLEU's exp-smoothed BLEU whenever every order has a match
somewhere in the corpus, which every corpus here has, and every hypothesis has at least four
tokens: NLTK counts a hypothesis without n-grams of an order as one n-gram of that order (its
max(1, count) denominator), sacreBLEU as none. The generator checks both; the short and empty
cases are tested by hand in translation_metrics_test.cpp.
"""
import json
import os
import re

from nltk.translate.bleu_score import corpus_bleu

SUBSTITUTIONS = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def tokenize_13a(line):
    line = line.rstrip()
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            line = line.replace(entity, char)
    line = f" {line} "
    for pattern, replacement in SUBSTITUTIONS:
        line = pattern.sub(replacement, line)
    return " ".join(line.split())


CORPORA = {
    "verses": [
        ("Y fué la tarde y la mañana el día quinto.",
         "Y fué la tarde y la mañana el día quinto."),
        ("Y habló Jehová a Moisés, diciendo:",
         "Y habló Jehová á Moisés, diciendo:"),
        ("Los hijos de Zattu, novecientos cuarenta y cinco.",
         "Los hijos de Zattu, novecientos cuarenta y cinco;"),
        ("Hijos, guardaos de los ídolos. Amén",
         "Hijitos, guardaos de los ídolos. Amén."),
        ("Y Salmón engendró a Booz, y Booz a Obed;",
         "Y Salmón engendró á Booz, y Booz engendró á Obed;"),
    ],
    "punctuation_and_numbers": [
        ("It costs $3.50, or 3,000-4,000 (roughly).",
         "It costs $3.50 -- or 3,000-4,000, roughly."),
        ("He said: \"no!\" &amp; left at 5-6 p.m.",
         "He said &quot;no!&quot; and left at 5-6 p.m."),
        ("Path/to/file.txt [v1.2] {ok} ~home^ `x` |y| @z #1 %2 *3 +4 =5 <6> ?7",
         "path/to/file.txt [v1.2] {ok} ~home^ `x` |y| @z #1 %2 *3 +4 =5 <6> ?7"),
        ("Nine . . . ten,eleven.Twelve 1.5.6 a.b,c",
         "Nine... ten, eleven. Twelve 1.5.6 a.b,c"),
        ("don't stop—the well-known end<skipped>",
         "Don't stop — the well-known end."),
    ],
    "unicode_and_spaces": [
        ("  café\u00a0au  lait\u3000très   bien\t", "café au lait très bien"),
        ("naïve résumé… ok.", "naïve résumé... ok."),
        ("Σωκράτης, ἦν. 東京 は 大きい。", "Σωκράτης ἦν. 東京は大きい。"),
        ("x\u2009y\u202fz.end", "x y z. end"),
    ],
    "clipping_and_brevity": [
        ("the cat sat on the mat", "the cat is on the mat"),
        ("the the the the the", "the cat and the dog"),
        ("a b c d e", "a b c d e"),
        ("one two three four", "one two three four five six seven eight nine"),
    ],
}


def generate(out_dir):
    cases = []
    for name, pairs in CORPORA.items():
        hyps = [h for h, _ in pairs]
        refs = [r for _, r in pairs]
        hyp_tokens = [tokenize_13a(h) for h in hyps]
        ref_tokens = [tokenize_13a(r) for r in refs]
        assert all(len(h.split()) >= 4 for h in hyp_tokens), f"{name}: a hypothesis under 4 tokens"
        lists = [[r.split()] for r in ref_tokens]
        bleu = corpus_bleu(lists, [h.split() for h in hyp_tokens])
        assert bleu > 0, f"{name}: an order without any match, NLTK and sacreBLEU would differ"
        cases.append({
            "name": name,
            "hypotheses": hyps,
            "references": refs,
            "hypothesis_tokens": hyp_tokens,
            "reference_tokens": ref_tokens,
            "bleu": 100.0 * bleu,
        })
    with open(os.path.join(out_dir, "bleu_nltk.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/golden/gen_bleu.py (nltk corpus_bleu)", "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
