"""The data side of tools/torch_load.py: moe's encoders reimplemented from a checkpoint's data
schema (model.json, "data"), so that a raw CSV/TSV or IDX file becomes exactly the features moe
feeds its model.

  tabular  numeric (x − mean) / std, one-hot categories, missing values (data/tabular.h)
  text     HTML, case and punctuation normalisation, tokens, stop words, hashed bigrams, TF-IDF
           with the saved idf, L2-normalised (data/text.h)
  images   IDX unsigned bytes scaled by 1/255 (data/idx.h)

Values moe stores as float32 are rounded to float32 here too, then widened to float64.
"""

import csv
import gzip
import math
import struct

import torch


class Failure(Exception):
    """A checkpoint, data file or request this script cannot handle; the message says why."""


def fnv1a64_hex(data):
    h = 14695981039346656037
    for byte in data:
        h = ((h ^ byte) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


MISSING = {"", "NA", "NaN", "?"}


def trim(s):
    return s.strip(" \t")


def read_table(path, delimiter, quoting="rfc4180"):
    # quoting "none" (moe's default for tab-separated files): a quote is an ordinary character.
    opener = gzip.open if path.endswith(".gz") else open
    mode = csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter=delimiter, quoting=mode))
    rows = [r for r in rows if r != []]
    if not rows:
        raise Failure(f"{path}: no header row")
    header = [trim(h) for h in rows[0]]
    return header, rows[1:]


def delimiter_for(schema, path):
    d = schema.get("delimiter", "auto")
    if d == "tab":
        return "\t"
    if d != "auto":
        return d
    p = path.lower()
    p = p[:-3] if p.endswith(".gz") else p
    return "\t" if p.endswith((".tsv", ".tab")) else ","


def column(header, name, path):
    if name not in header:
        raise Failure(f"{path}: no column '{name}'")
    return header.index(name)


def encode_tabular(schema, path):
    """[N, D] float64: numeric (x − mean) / std, one-hot categories (tabular.h)."""
    feats = schema["features"]
    header, rows = read_table(path, delimiter_for(schema, path), schema.get("quoting", "rfc4180"))
    x = torch.zeros(len(rows), feats["n_features"], dtype=torch.float64)
    offset = 0
    for c in feats["columns"]:
        col = column(header, c["name"], path)
        if c["kind"] == "numeric":
            for i, r in enumerate(rows):
                v = trim(r[col])
                if v in MISSING:
                    if not feats["impute_missing"]:
                        raise Failure(f"{path}: missing value in column '{c['name']}'")
                    continue
                # moe stores the standardised value as float32 before the model reads it
                x[i, offset] = float(torch.tensor((float(v) - c["mean"]) / c["std"],
                                                  dtype=torch.float32))
            offset += 1
        else:
            cats = {name: j for j, name in enumerate(c["categories"])}
            width = len(cats) + (1 if c.get("missing_category") else 0)
            for i, r in enumerate(rows):
                v = trim(r[col])
                if v in MISSING:
                    if c.get("missing_category"):
                        x[i, offset + width - 1] = 1.0
                elif v in cats:
                    x[i, offset + cats[v]] = 1.0
            offset += width
    return {"dense": x, "n_rows": len(rows)}


STRIP_TAG_START = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ/!?")
ENTITIES = {b"amp": b"&", b"lt": b"<", b"gt": b">", b"quot": b'"', b"apos": b"'", b"nbsp": b" "}


def decode_entity(s, i):
    """(bytes, length) of the entity at s[i] == '&', or (None, 0) (text.cpp's rules)."""
    semi = s.find(b";", i, i + 12)
    if semi < 0 or semi - i < 2:
        return None, 0
    name = s[i + 1:semi]
    if name in ENTITIES:
        return ENTITIES[name], semi + 1 - i
    if name[:1] != b"#":
        return None, 0
    hexa = len(name) > 1 and name[1:2] in (b"x", b"X")
    digits = name[2:] if hexa else name[1:]
    if not digits or len(digits) > 7:
        return None, 0
    try:
        if not all(chr(d) in ("0123456789abcdefABCDEF" if hexa else "0123456789")
                   for d in digits):
            return None, 0
        cp = int(digits, 16 if hexa else 10)
    except ValueError:
        return None, 0
    if cp == 0 or 0xD800 <= cp <= 0xDFFF or cp > 0x10FFFF:
        return None, 0
    return chr(cp).encode("utf-8"), semi + 1 - i


def normalize(text, lowercase, strip_html):
    s = text.encode("utf-8")
    if strip_html:
        out, i = bytearray(), 0
        while i < len(s):
            c = s[i]
            if c == ord("<") and i + 1 < len(s) and s[i + 1] in STRIP_TAG_START:
                close = s.find(b">", i + 1)
                if close >= 0:
                    out += b" "
                    i = close + 1
                    continue
            elif c == ord("&"):
                value, used = decode_entity(s, i)
                if used:
                    out += value
                    i += used
                    continue
            out.append(c)
            i += 1
        s = bytes(out)
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == 0xE2 and i + 2 < len(s) and s[i + 1] == 0x80 and (s[i + 2] & 0xC0) == 0x80:
            out += b"'" if s[i + 2] in (0x98, 0x99) else b" "
            i += 3
        elif c == 0xC2 and i + 1 < len(s) and (s[i + 1] & 0xC0) == 0x80:
            out += b" "
            i += 2
        else:
            out.append(c + 32 if lowercase and 65 <= c <= 90 else c)
            i += 1
    return bytes(out)


def is_token_byte(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or c == 39 or c >= 0x80


def tokenize(s):
    tokens, i = [], 0
    while i < len(s):
        while i < len(s) and not is_token_byte(s[i]):
            i += 1
        begin = i
        while i < len(s) and is_token_byte(s[i]):
            i += 1
        token = s[begin:i].strip(b"'")
        if token:
            tokens.append(token)
    return tokens


def bigram_bucket(a, b, n_buckets):
    return int(fnv1a64_hex(a + b" " + b), 16) % n_buckets


def encode_text(schema, path):
    """Bags of ids with L2-normalised TF-IDF weights (text.h)."""
    v, idf = schema["text"], schema["idf"]
    header, rows = read_table(path, delimiter_for(schema, path), schema.get("quoting", "rfc4180"))
    col = column(header, v["text_column"], path)
    index = {w.encode("utf-8"): i for i, w in enumerate(v["words"])}
    stop = {w.encode("utf-8") for w in v["stop_words"]}
    n_words, buckets = len(v["words"]), v["bigram_buckets"]
    bags = []
    for r in rows:
        tokens = tokenize(normalize(r[col], v["lowercase"], v["strip_html"]))
        tokens = [t for t in tokens if t not in stop]
        ids = [index[t] for t in tokens if t in index]
        if v.get("bigrams", False):
            pairs = (a + b" " + b for a, b in zip(tokens, tokens[1:]))
            ids += [index[p] for p in pairs if p in index]
        if buckets > 0:
            ids += [n_words + bigram_bucket(a, b, buckets) for a, b in zip(tokens, tokens[1:])]
        counts = {}
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
        bag = []
        for i in sorted(counts):
            tf = 1.0 + math.log(counts[i]) if v["sublinear_tf"] else float(counts[i])
            bag.append((i, tf * idf[i]))
        norm = math.sqrt(sum(w * w for _, w in bag))
        # moe stores each weight as float32 before the model reads it
        bags.append([(i, float(torch.tensor(w / norm, dtype=torch.float32))) for i, w in bag])
    return {"bags": bags, "n_rows": len(rows)}


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise Failure(f"{path}: not an IDX file of unsigned bytes")
    rank = raw[3]
    dims = struct.unpack(f">{rank}I", raw[4:4 + 4 * rank])
    data = raw[4 + 4 * rank:]
    if len(data) != math.prod(dims):
        raise Failure(f"{path}: {len(data)} data bytes, the header gives {math.prod(dims)}")
    return dims, data


def encode_images(schema, path):
    dims, data = read_idx(path)
    n, pixels = dims[0], math.prod(dims[1:])
    if pixels != schema["image_size"]:
        raise Failure(f"{path}: images of {pixels} pixels, the model takes {schema['image_size']}")
    x = torch.frombuffer(bytearray(data), dtype=torch.uint8).reshape(n, pixels)
    x = (x.to(torch.float32) * (1.0 / 255.0)).to(torch.float64)
    return {"dense": x, "n_rows": n}


def encode(schema, path):
    fmt = schema["format"]
    if fmt in ("csv", "tsv"):
        return encode_tabular(schema, path)
    if fmt == "text":
        return encode_text(schema, path)
    return encode_images(schema, path)
