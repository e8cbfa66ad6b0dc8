"""A simple baseline on the folds of a sertool run: logistic regression on utterance-mean MFCCs.

Reads every ``RUN_DIR/fold-*/split.csv`` (so the folds are exactly the run's),
averages each utterance's frames from an MFCC STORE into one vector,
standardises with the fold's training statistics, fits scikit-learn's
multinomial logistic regression on the training rows (the validation rows
are not used), and reports per-fold and pooled WA / UA / macro-F1 on the test
rows. scikit-learn comes with librosa; it is a benchmark-only dependency.

Usage: python bench/baseline.py RUN_DIR STORE.h5
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sertool.metrics import confusion, scores  # noqa: E402
from sertool.store.reader import FeatureStore  # noqa: E402
from sertool.training.runs import read_split  # noqa: E402


def main(run_dir: str, store_path: str) -> dict:
    from sklearn.linear_model import LogisticRegression

    import csv

    run = Path(run_dir)
    store = FeatureStore(store_path)
    truth_all, pred_all = [], []
    labels = None
    for fold_dir in sorted(run.glob("fold-*"), key=lambda d: int(d.name.split("-")[1])):
        split = read_split(fold_dir / "split.csv")
        label_of = {r["id"]: r["label"] for r in csv.DictReader(open(fold_dir / "split.csv"))}
        labels = labels or sorted(set(label_of.values()))
        index = {c: k for k, c in enumerate(labels)}

        def xy(ids):
            x = np.stack([store[i].mean(axis=0) for i in ids])
            return x, np.array([index[label_of[i]] for i in ids])

        x_train, y_train = xy(split["train"])
        x_test, y_test = xy(split["test"])
        mean, std = x_train.mean(0), x_train.std(0) + 1e-8
        clf = LogisticRegression(max_iter=5000).fit((x_train - mean) / std, y_train)
        pred = clf.predict((x_test - mean) / std)
        s = scores(confusion(y_test, pred, len(labels)))
        print(f"fold {fold_dir.name}: UA {s['UA']:.3f} WA {s['WA']:.3f} F1 {s['macro_F1']:.3f}")
        truth_all.append(y_test)
        pred_all.append(pred)
    pooled = scores(confusion(np.concatenate(truth_all), np.concatenate(pred_all), len(labels)))
    print(f"pooled: UA {pooled['UA']:.3f} WA {pooled['WA']:.3f} F1 {pooled['macro_F1']:.3f}")
    return pooled


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
