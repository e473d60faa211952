#!/usr/bin/python3
"""Split and scikit-learn baselines for the quality suite (scripts/quality.sh, docs/quality.md).

  quality_baselines.py split DIR NAME      DIR/NAME.csv -> DIR/NAME_train.csv, DIR/NAME_test.csv
  quality_baselines.py fit DIR NAME OUT    fit the baselines on NAME_train.csv, score them on
                                           NAME_test.csv, write the results to OUT (JSON)

A file with a column `label` is a classification set, one with `target` a regression set, and
one with a column `text` a text set. The split holds out 20% for testing, stratified by class for
classification, with a fixed seed; every cell is written back as it was read.

Baselines, with the preprocessing moe itself uses: numeric columns standardised with the training
rows' mean and standard deviation (missing cells: the training mean), categorical columns one-hot
(missing cells: their own category), text as TF-IDF of words and word bigrams (sublinear tf,
words in at least 2 documents, at most 20,000 terms):
  linear  LogisticRegression (classification) or Ridge (regression)
  mlp     MLPClassifier / MLPRegressor, one hidden layer of 100, Adam until the training loss stops
          falling (at most 1,000 epochs; early stopping on a validation part left Glass's
          171 training rows too few)
  hgb     HistGradientBoostingClassifier / Regressor (text: on the 2,000 most frequent terms,
          as dense input)
All with scikit-learn's defaults otherwise and random_state 1. Needs Debian's python3-sklearn;
run with OMP_NUM_THREADS set to limit the threads.
"""
import csv
import json
import os
import sys
import time

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, f1_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 1
TEST_FRACTION = 0.2


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        sys.exit(f"quality_baselines: {path} is empty")
    return rows[0], rows[1:]


def write_csv(path, header, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    os.replace(tmp, path)


def kind_of(header):
    if "label" in header:
        return "classification", header.index("label")
    if "target" in header:
        return "regression", header.index("target")
    sys.exit(f"quality_baselines: no column 'label' or 'target' in {header}")


def split(data_dir, name):
    header, rows = read_csv(os.path.join(data_dir, name + ".csv"))
    task, y_col = kind_of(header)
    strat = [r[y_col] for r in rows] if task == "classification" else None
    train, test = train_test_split(rows, test_size=TEST_FRACTION, random_state=SEED, stratify=strat)
    write_csv(os.path.join(data_dir, name + "_train.csv"), header, train)
    write_csv(os.path.join(data_dir, name + "_test.csv"), header, test)
    print(f"{name}: {len(train)} training rows, {len(test)} test rows")


def is_number(s):
    if s in ("", "NA", "NaN", "?"):
        return True
    try:
        float(s)
        return True
    except ValueError:
        return False


def load(data_dir, name):
    header, train = read_csv(os.path.join(data_dir, name + "_train.csv"))
    _, test = read_csv(os.path.join(data_dir, name + "_test.csv"))
    task, y_col = kind_of(header)
    features = [i for i in range(len(header)) if i != y_col]
    numeric = [i for i in features if all(is_number(r[i]) for r in train)]

    def x_of(rows):
        cols = {}
        for i in features:
            if header[i] == "text":
                cols[i] = np.array([r[i] for r in rows], dtype=object)
            elif i in numeric:
                cols[i] = np.array([float(r[i]) if r[i] not in ("", "NA", "NaN", "?") else np.nan
                                    for r in rows])
            else:
                cols[i] = np.array([r[i] if r[i] != "" else "<missing>" for r in rows], dtype=object)
        return cols

    def y_of(rows):
        if task == "classification":
            return np.array([r[y_col] for r in rows], dtype=object)
        return np.array([float(r[y_col]) for r in rows])

    return task, header, features, numeric, x_of(train), y_of(train), x_of(test), y_of(test)


def as_matrix(cols, features, numeric):
    # All-numeric tables as one float array; with categorical columns, one object array (floats
    # and strings) for ColumnTransformer to pick the columns from.
    if len(numeric) == len(features):
        return np.column_stack([cols[i] for i in features])
    n = len(next(iter(cols.values())))
    m = np.empty((n, len(features)), dtype=object)
    for j, i in enumerate(features):
        m[:, j] = cols[i]
    return m


def tabular_pre(features, numeric):
    num = [j for j, i in enumerate(features) if i in numeric]
    cat = [j for j, i in enumerate(features) if i not in numeric]
    parts = []
    if num:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="mean"), StandardScaler()), num))
    if cat:
        parts.append(("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), cat))
    return ColumnTransformer(parts)


def fit(data_dir, name, out):
    task, header, features, numeric, xtr, ytr, xte, yte = load(data_dir, name)
    text = [header[i] for i in features] == ["text"]
    if text:
        xtr_raw, xte_raw = xtr[features[0]], xte[features[0]]
    else:
        xtr_raw = as_matrix(xtr, features, numeric)
        xte_raw = as_matrix(xte, features, numeric)

    def pre():
        if text:
            return TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20000,
                                   sublinear_tf=True)
        return tabular_pre(features, numeric)

    clf = task == "classification"
    models = {
        "linear": make_pipeline(pre(), LogisticRegression(max_iter=2000, random_state=SEED)
                                if clf else Ridge()),
        "mlp": make_pipeline(pre(), (MLPClassifier if clf else MLPRegressor)(
            hidden_layer_sizes=(100,), max_iter=1000, random_state=SEED)),
    }
    if text:
        hgb_pre = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=2000, sublinear_tf=True),
            _Densify())
    else:
        hgb_pre = pre()
    models["hgb"] = make_pipeline(hgb_pre, (HistGradientBoostingClassifier if clf else
                                            HistGradientBoostingRegressor)(random_state=SEED))

    result = {"data": name, "task": task, "train_rows": len(ytr), "test_rows": len(yte),
              "features": len(features), "models": {}}
    if clf:
        result["classes"] = len(set(ytr))
    for key, model in models.items():
        t0 = time.time()
        model.fit(xtr_raw, ytr)
        pred = model.predict(xte_raw)
        r = {"seconds": round(time.time() - t0, 2)}
        if clf:
            r["accuracy"] = float(accuracy_score(yte, pred))
            r["f1_macro"] = float(f1_score(yte, pred, average="macro"))
        else:
            r["r2"] = float(r2_score(yte, pred))
        result["models"][key] = r
        print(f"{name} {key}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()), flush=True)
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out)


class _Densify:
    """Turns a sparse matrix into a dense one (HistGradientBoosting needs dense input)."""

    def fit(self, x, y=None):
        return self

    def transform(self, x):
        return x.toarray()

    def fit_transform(self, x, y=None):
        return self.transform(x)


def main(argv):
    if len(argv) >= 3 and argv[0] == "split":
        split(argv[1], argv[2])
    elif len(argv) >= 4 and argv[0] == "fit":
        fit(argv[1], argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
