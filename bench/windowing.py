"""UA of predict's windowing schemes on the test folds of a cross-validated run, each fold scored by its own model.

For every test clip of every fold, the clip's features are scored the way
``sertool predict`` scores them with ``--crop-tolerance T`` for each T given
(0: overlapping windows for every clip longer than the model's input; large
T: one window that the model centre-crops, as training does). Prints pooled
UA and WA per T. Global-normalisation runs only (the script applies the
checkpoint's own normalisation).

Usage::

    python bench/windowing.py RUN_DIR [--tolerances 0,0.25,0.5,1,10]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sertool.models.checkpoint import Checkpoint  # noqa: E402
from sertool.io.manifest import read_manifest  # noqa: E402
from sertool.metrics import confusion, scores  # noqa: E402
from sertool.inference.predict import Scorer  # noqa: E402
from sertool.runtime.process import blas_threads, torch_threads  # noqa: E402


def main(argv=None) -> dict[float, dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--tolerances", default="0,0.25,0.5,1,10")
    args = parser.parse_args(argv)
    run = Path(args.run)
    info = json.loads((run / "run.json").read_text())
    if info.get("norm", "global") != "global":
        raise SystemExit(f"{run}: trained with --norm {info['norm']}; this script scores global-norm runs")
    utterances = {u.id: u for u in read_manifest(info["manifest"])}
    tolerances = [float(t) for t in args.tolerances.split(",")]
    truth, predicted = [], {t: [] for t in tolerances}
    with torch_threads(1), blas_threads(1):  # one thread: small batches, and no spinning threads when cores are busy
        for fold in sorted(run.glob("fold-*")):
            checkpoint = Checkpoint.load(fold / "checkpoint.pt")
            labels = list(checkpoint.labels)
            test = [r["id"] for r in csv.DictReader(open(fold / "split.csv")) if r["role"] == "test"]
            scorers = {t: Scorer(checkpoint, None, None, crop_tolerance=t) for t in tolerances}
            for utt_id in test:
                duration, feats, spans = scorers[tolerances[0]].features(Path(utterances[utt_id].path))
                truth.append(labels.index(utterances[utt_id].label))
                for t, scorer in scorers.items():
                    windows = scorer.score_features(feats, duration, spans)
                    predicted[t].append(int(np.argmax(np.mean([p for _, p in windows], axis=0))))
    results = {}
    for t in tolerances:
        results[t] = scores(confusion(np.array(truth), np.array(predicted[t]), len(labels)))
        print(f"crop_tolerance {t}: pooled UA {results[t]['UA']:.4f} WA {results[t]['WA']:.4f} "
              f"({len(truth)} test clips of {run})")
    return results


if __name__ == "__main__":
    main()
