"""How often the input checks (predict's ``flags`` column) flag the clean speech of the shared corpora.

Every audio file of each corpus is decoded at the model's rate (16 kHz) and
checked as ``predict`` checks it (:mod:`sertool.inference.flags`: its
original rate and channels from the file). Prints two markdown tables: the
share of files each flag fires on, per corpus (a false-flag rate: these are
clean recordings, although a few are genuinely band-limited or clipped,
``--list`` names them), and the measured values nearest each threshold (the
margins the thresholds leave). ``short``/``long`` use a training duration
range: ``--train-range LOW HIGH`` seconds, else the bundled model's, else the
1st-99th percentile of the RAVDESS files' durations (what a model trained
on RAVDESS records); a short BAVED word is a true ``short`` for such a model.
With ``--write`` both tables replace the ones between ``<!-- flags-table:start -->``
and ``:end`` in bench/README.md, stamped with date, machine and version.

Usage: python bench/flag_rates.py [--data ../shared/data] [--corpora ravdess emodb-2s ased baved] [--limit N]
       [--train-range LOW HIGH] [--list] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import machine, write_table  # noqa: E402
from sertool.inference import flags as F  # noqa: E402
from sertool.io.audio import audio_info, find_audio, load_audio  # noqa: E402

SR = 16000
CORPORA = ("ravdess", "emodb-2s", "ased", "baved")


def measure(path: Path) -> dict:
    """:meth:`InputChecks.measures` of one file, checked as predict checks it."""
    info = audio_info(path)
    mix = F.file_mix_db(path) if info.channels > 1 else None
    checks = F.InputChecks(SR, info.sample_rate, mix)
    checks.push(load_audio(path, sr=SR))
    return checks.measures()


def train_range(args, data: Path) -> tuple[tuple[float, float], str]:
    """The duration range for ``short``/``long`` and where it came from."""
    if args.train_range:
        return tuple(args.train_range), "--train-range"
    from sertool.inference.bundled import DEFAULT_CHECKPOINT
    from sertool.inference.export import load_scoring_model

    recorded = F.checkpoint_range(load_scoring_model(DEFAULT_CHECKPOINT))
    if recorded:
        return recorded, "the bundled model's"
    durations = [audio_info(p).duration for p in find_audio(data / "ravdess")]
    return tuple(F.duration_range(durations)), "1st-99th percentile of the RAVDESS files"


def rate_table(results: dict[str, list[dict]], limits) -> str:
    """Markdown: per corpus, files and the share flagged (any flag, each flag; short/long also against the
    corpus's own training range, as a model trained on it would check them)."""
    lines = ["| corpus | files | any flag | " + " | ".join(F.FLAGS) + " | short, long (own range) |",
             "|---|---:|---:|" + "---:|" * (len(F.FLAGS) + 1)]
    for corpus, measured in results.items():
        flagged = [F.decide(m, SR, limits) for m in measured]
        own = [F.decide(m, SR, F.duration_range([m["duration"] for m in measured])) for m in measured]
        share = lambda hits: f"{100 * hits / len(measured):.1f} %"  # noqa: E731
        cells = [share(sum(name in f for f in flagged)) for name in F.FLAGS]
        cells.append(f"{share(sum('short' in f for f in own))}, {share(sum('long' in f for f in own))}")
        any_flag = share(sum(bool(f) for f in flagged))
        lines.append(f"| {corpus} | {len(measured)} | {any_flag} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margin_table(results: dict[str, list[dict]]) -> str:
    """Markdown: per corpus, the measured values nearest each threshold (extreme and 1st/99th percentile)."""
    lines = [f"| corpus | active level dBFS: min, 1st pct (quiet < {F.QUIET_DBFS:g}) "
             f"| clipped share: 99th pct, max (> {F.CLIPPED_SHARE:g}) "
             f"| energy {F.NARROW_BAND[0] / 1000:g}-{F.NARROW_BAND[1] / 1000:g} kHz vs "
             f"{F.BELOW_BAND[0] / 1000:g}-{F.BELOW_BAND[1] / 1000:g} kHz, dB: min, 1st pct (<= {F.NARROW_DB:g}) "
             f"| energy above {F.NARROW_BAND[0] / 1000:g} kHz vs all, dB: min, 1st pct (<= {F.ABOVE_DB:g}) "
             f"| speech s: min, 1st pct (< {F.NO_SPEECH_S:g}) | duration s: min, max |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for corpus, measured in results.items():
        column = lambda key: np.array([m[key] for m in measured if m[key] is not None], float)  # noqa: E731
        level, clipped, high, above, speech, duration = map(column, ("level_db", "clipped_share", "high_db",
                                                                      "above_db", "speech_s", "duration"))
        low = lambda x: f"{x.min():.1f}, {np.percentile(x, 1):.1f}"  # noqa: E731
        lines.append(f"| {corpus} | {low(level)} | {np.percentile(clipped, 99):.5f}, {clipped.max():.5f} | "
                     f"{low(high)} | {low(above)} | {speech.min():.2f}, {np.percentile(speech, 1):.2f} | "
                     f"{duration.min():.2f}, {duration.max():.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--corpora", nargs="+", default=list(CORPORA))
    ap.add_argument("--limit", type=int, default=0, help="Check only every n-th file so about N per corpus remain.")
    ap.add_argument("--train-range", type=float, nargs=2, metavar=("LOW", "HIGH"))
    ap.add_argument("--list", action="store_true", help="Name the flagged files and their flags.")
    ap.add_argument("--write", action="store_true", help="Put the tables into bench/README.md.")
    args = ap.parse_args()
    start = time.monotonic()
    limits, origin = train_range(args, args.data)
    results, names = {}, {}
    for corpus in args.corpora:
        files = sorted(find_audio(args.data / corpus))
        if args.limit:
            files = files[::max(1, len(files) // args.limit)]
        results[corpus] = [measure(f) for f in files]
        names[corpus] = files
    seconds = sum(m["duration"] for measured in results.values() for m in measured)
    summary = (f"{sum(map(len, results.values()))} files, {seconds / 3600:.2f} h of audio checked in "
               f"{time.monotonic() - start:.1f} s; short/long: {origin} range {limits[0]:.2f}-{limits[1]:.2f} s "
               f"(+-{100 * F.DURATION_TOLERANCE:g} %)")
    tables = rate_table(results, limits) + "\n\n" + margin_table(results)
    print(summary + "\n\n" + tables)
    if args.write:
        stamp = f"Measured {time.strftime('%Y-%m-%d')} on {machine()}: {summary}."
        write_table("flags", f"{stamp}\n\n{tables}", heading="## Input checks on clean speech (`predict` flags)")
    if args.list:
        for corpus, measured in results.items():
            for path, m in zip(names[corpus], measured):
                flagged = F.decide(m, SR, limits)
                if flagged:
                    print(f"{path}: {';'.join(flagged)}")


if __name__ == "__main__":
    main()
