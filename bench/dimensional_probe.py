"""Scikit-learn probes of BAVED's level on sertool's own stores and folds: what a recipe change would buy.

Not a sertool recipe: a research probe run before building one. It reads the eGeMAPS functionals store that
``bench/dimensional.py`` extracts and the folds ``sertool train --protocol speaker-kfold --folds 4`` makes
(seed 0, the same test speakers as that table), trains on every training speaker of a fold (training and
validation speakers together, as no setting is chosen here) and reports the pooled CCC and Pearson's r over
the four test folds, and each fold's CCC.

Rows (per-speaker statistics, sertool's ``--norm speaker``: each speaker's own mean/std, no labels):

- ridge (alpha 10) and SVR (rbf, C 1, epsilon 0.1 and 0.3);
- the same SVR with its output rescaled: a linear map onto the training target's mean and std, fitted on
  out-of-fold predictions of the training speakers (4 speaker folds inside the training speakers), so the
  test fold is never seen. CCC penalises predictions whose spread is smaller than the target's; this map
  brings CCC up to (at most) Pearson's r.

Usage::

    python bench/dimensional.py --corpora baved          # makes dimensional-work/ (manifest and store)
    python bench/dimensional_probe.py [--work dimensional-work]

Writes bench/dimensional_probe.csv and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sertool.features.normalise import fit_normaliser  # noqa: E402
from sertool.io.manifest import read_manifest  # noqa: E402
from sertool.metrics import concordance  # noqa: E402
from sertool.store.reader import FeatureStore  # noqa: E402
from sertool.training.splits import make_folds  # noqa: E402

HERE = Path(__file__).resolve().parent


def rescaled(make, z, y, speakers, train, test) -> np.ndarray:
    """Test predictions mapped onto the training target's mean/std via out-of-fold training predictions."""
    from sklearn.model_selection import GroupKFold  # heavy: only this row needs it

    oof = np.zeros(len(train))
    for inner_train, inner_test in GroupKFold(4).split(train, groups=speakers[train]):
        model = make().fit(z[train][inner_train], y[train][inner_train])
        oof[inner_test] = model.predict(z[train][inner_test])
    pred = make().fit(z[train], y[train]).predict(z[test])
    return (pred - oof.mean()) * (y[train].std() / oof.std()) + y[train].mean()


def probe(name, make, z, y, speakers, folds, rescale=False) -> dict:
    pred = np.full(len(y), np.nan)
    for train, test in folds:
        pred[test] = (rescaled(make, z, y, speakers, train, test) if rescale
                      else make().fit(z[train], y[train]).predict(z[test]))
    per_fold = [concordance(y[test], pred[test]) for _, test in folds]
    return {"recipe": name, "CCC": concordance(y, pred), "pearson": float(np.corrcoef(y, pred)[0, 1]),
            "fold_CCC": " ".join(f"{c:.3f}" for c in per_fold)}


def main(argv=None) -> None:
    from sklearn.linear_model import Ridge  # heavy: imported when the probe runs, not on import
    from sklearn.svm import SVR  # heavy: as above

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="dimensional-work")
    args = parser.parse_args(argv)
    work = Path(args.work)
    utts = read_manifest(work / "baved.csv")
    store = FeatureStore(next((work / "stores").glob("baved.egemaps_functionals-*.h5")))
    with open(work / "baved.csv", newline="") as fh:
        level = {row["id"]: float(row["level"]) for row in csv.DictReader(fh)}
    ids = [u.id for u in utts]
    y = np.array([level[i] for i in ids])
    speakers = np.array([u.speaker for u in utts])
    speaker_norm = fit_normaliser("speaker", store, utts, train_ids=ids)  # what `train --norm speaker` applies
    z = np.stack([speaker_norm(i, store[i])[0] for i in ids]).astype(np.float64)
    row = {i: k for k, i in enumerate(ids)}
    folds = [(np.array([row[i] for i in f.train + f.valid]), np.array([row[i] for i in f.test]))
             for f in make_folds(utts, "speaker-kfold", folds=4, valid_speakers=2, seed=0)]
    results = [probe("ridge (alpha 10)", lambda: Ridge(alpha=10.0), z, y, speakers, folds),
               probe("svr (C 1)", lambda: SVR(C=1.0), z, y, speakers, folds),
               probe("svr (C 1), output rescaled", lambda: SVR(C=1.0), z, y, speakers, folds, True),
               probe("svr (C 1, epsilon 0.3), output rescaled", lambda: SVR(C=1.0, epsilon=0.3), z, y, speakers,
                     folds, True)]
    with open(HERE / "dimensional_probe.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in results)
    print("| recipe (speaker statistics) | pooled CCC | Pearson r | CCC per fold |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['recipe']} | {r['CCC']:.3f} | {r['pearson']:.3f} | {r['fold_CCC']} |")


if __name__ == "__main__":
    main()
