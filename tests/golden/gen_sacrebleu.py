"""BLEU and chrF from sacreBLEU itself on random sentences: sacrebleu_random.json.

sacreBLEU is not a Debian package, so this generator runs only where its source tree is on
PYTHONPATH (e.g. PYTHONPATH=/path/to/sacrebleu-2.x plus stand-ins for the modules it imports for
its command line: portalocker, tabulate, colorama, lxml); elsewhere it says so and leaves the
committed fixture alone. The sentences mix words, digits, ASCII punctuation, accented and
non-Latin letters and Unicode spaces, with short and empty hypotheses, so every branch of the 13a
tokeniser and of both scores is exercised; translation_metrics_golden.cpp must match to 1e-9.
"""
import json
import os
import random

WORDS = ["the", "cat", "sat", "on", "mat", "and", "a", "dog", "Y", "fué", "la", "mañana",
         "día", "Jehová", "Moisés", "ídolos", "Σωκράτης", "東京", "naïve", "don't", "well-known",
         "3.50", "3,000", "1.5.6", "5-6", "p.m.", "a.b,c", "x", "y", "z"]
PUNCT = [",", ".", ";", ":", "!", "?", "(", ")", "\"", "$", "&amp;", "&quot;", "-", "—", "…",
         "/", "[", "]", "{", "}", "<skipped>", "'"]
SPACES = [" ", " ", " ", " ", "  ", "\u00a0", "\u3000", "\u2009", "\t", ""]


def sentence(rng, length):
    parts = []
    for _ in range(length):
        parts.append(rng.choice(WORDS) if rng.random() < 0.75 else rng.choice(PUNCT))
        parts.append(rng.choice(SPACES))
    return "".join(parts)


def perturb(rng, ref_words):
    words = [w for w in ref_words if rng.random() > 0.2]
    for _ in range(rng.randint(0, 3)):
        words.insert(rng.randint(0, len(words)), rng.choice(WORDS + PUNCT))
    return " ".join(words)


def generate(out_dir):
    try:
        from sacrebleu.metrics.bleu import BLEU
        from sacrebleu.metrics.chrf import CHRF
    except ImportError:
        print("  sacreBLEU is not importable: sacrebleu_random.json left as it is")
        return
    rng = random.Random(7)
    cases = []
    for case in range(12):
        refs, hyps = [], []
        for _ in range(rng.randint(1, 12)):
            ref = sentence(rng, rng.randint(0, 14))
            refs.append(ref)
            hyps.append(perturb(rng, ref.split()) if rng.random() < 0.8 else sentence(rng, rng.randint(0, 6)))
        bleu = BLEU().corpus_score(hyps, [refs])
        chrf = CHRF().corpus_score(hyps, [refs])
        cases.append({"name": f"random_{case}", "hypotheses": hyps, "references": refs,
                      "bleu": bleu.score, "chrf": chrf.score})
    with open(os.path.join(out_dir, "sacrebleu_random.json"), "w", encoding="utf-8") as f:
        json.dump({"generator": "tests/golden/gen_sacrebleu.py (sacreBLEU 2.x)", "cases": cases},
                  f, ensure_ascii=False, indent=1)
        f.write("\n")
