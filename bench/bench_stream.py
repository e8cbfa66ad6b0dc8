"""``sertool stream``: row latency on a stream written at real-time pace, and memory on a long stream.

A WAV stream of shared RAVDESS clips (every 8th of actors 01-16, joined
without gaps and repeated to ``--seconds``) is written to ``sertool stream``
(bundled model) by a writer that sends ``--chunk`` seconds of audio and then
sleeps that long, as a sound card does. For every row, latency is the time
from the moment the writer had sent the audio up to the row's window end to
the moment the row was read; median, 90th percentile and maximum are
reported (the first row also carries the start-up: imports and model load,
reported separately). The same stream at full speed (no sleeps) measures the
throughput and the peak resident memory of the stream process for a short
and a ``--long-factor`` times longer stream: bounded memory means the two
peaks are about equal. With ``--write`` the table replaces the one between
the markers in bench/README.md.

Usage: python bench/bench_stream.py [--data ../shared/data/ravdess] [--seconds 30] [--chunk 0.1] [--write]
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402

SR = 16000


def stream_audio(data: str, seconds: float) -> np.ndarray:
    """16-bit samples at 16 kHz: every 8th RAVDESS clip joined, repeated or cut to ``seconds``."""
    from sertool.io.audio import load_audio

    clips = [load_audio(r.path, sr=SR) for r in ravdess_rows(data, warm=False)[0][::8]]
    joined = np.concatenate(clips)
    joined = np.tile(joined, int(np.ceil(seconds * SR / joined.shape[0])))[:int(seconds * SR)]
    return (np.clip(joined, -1, 1) * 32767).astype("<i2")


def wav_header(rate: int = SR) -> bytes:
    """A pipe's WAV header: 16-bit mono, no length (read to the end)."""
    import soundfile as sf

    out = io.BytesIO()
    sf.write(out, np.zeros(1, np.int16), rate, format="WAV", subtype="PCM_16")
    header = bytearray(out.getvalue()[:44])
    header[4:8] = header[40:44] = b"\xff\xff\xff\xff"
    return bytes(header)


def run_stream(samples: np.ndarray, chunk_s: float | None) -> dict:
    """Write ``samples`` to ``sertool stream`` (paced by ``chunk_s`` or at full speed); rows with arrival times."""
    proc = subprocess.Popen([sys.executable, "-c", _PEAK_RSS_RUNNER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    sent: list[tuple[float, float]] = []  # (time, seconds of audio sent so far)
    data, step = samples.tobytes(), int((chunk_s or 1.0) * SR) * 2
    begin = time.monotonic()

    def writer():
        proc.stdin.write(wav_header())
        for first in range(0, len(data), step):
            proc.stdin.write(data[first:first + step])
            proc.stdin.flush()
            sent.append((time.monotonic(), min(len(data), first + step) / (2 * SR)))
            if chunk_s:
                time.sleep(chunk_s)
        proc.stdin.close()

    feeder = threading.Thread(target=writer)
    feeder.start()
    lines = [(time.monotonic(), line.decode()) for line in proc.stdout]
    feeder.join()
    err = proc.stderr.read().decode()
    if proc.wait() != 0:
        raise SystemExit(f"sertool stream failed: {err}")
    ends = [float(text.split(",")[2]) for _, text in lines[1:]]
    arrivals = [at for at, _ in lines[1:]]
    sent_at = [next(at for at, s in sent if s >= end - 1e-9) for end in ends]
    peak = int(err.rsplit("peak_rss_kib=", 1)[1].split()[0])
    return {"latency": np.array(arrivals) - np.array(sent_at), "rows": len(ends),
            "seconds": time.monotonic() - begin, "peak_mib": peak / 1024}


#: Runs the CLI in-process and prints its peak resident memory (KiB) to stderr at exit.
_PEAK_RSS_RUNNER = ("import atexit, resource, sys\n"
                    "atexit.register(lambda: print(f'peak_rss_kib={resource.getrusage(resource.RUSAGE_SELF)"
                    ".ru_maxrss}', file=sys.stderr))\n"
                    "from sertool.cli.main import main\n"
                    "sys.argv = ['sertool', 'stream', '-m', 'ravdess']\n"  # the incremental LIGHT-SERNET path
                    "main()\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--chunk", type=float, default=0.1)
    ap.add_argument("--long-factor", type=int, default=20)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    samples = stream_audio(args.data, args.seconds)
    live = run_stream(samples, args.chunk)
    later = live["latency"][1:]
    fast = run_stream(samples, None)
    long = run_stream(stream_audio(args.data, args.seconds * args.long_factor), None)
    long_s = args.seconds * args.long_factor
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; bundled model (LIGHT-SERNET, 3 s windows, 1.5 s hop), "
        f"RAVDESS clips joined into a 16 kHz 16-bit WAV stream on a pipe. Live: {args.seconds:.0f} s written in "
        f"{args.chunk * 1000:.0f} ms chunks at real-time pace; latency = row read - audio up to the window's end "
        "sent. Full speed: the stream written as fast as the pipe takes it.", "",
        "| stream | audio (s) | rows | first row latency incl. start-up (s) | latency median / p90 / max (ms) | "
        "wall (s) | xRT | peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
        f"| live, real-time pace | {args.seconds:.0f} | {live['rows']} | {live['latency'][0]:.2f} | "
        f"{np.median(later) * 1000:.0f} / {np.percentile(later, 90) * 1000:.0f} / {later.max() * 1000:.0f} | "
        f"{live['seconds']:.1f} | {args.seconds / live['seconds']:.2f}x | {live['peak_mib']:.0f} |",
        f"| full speed | {args.seconds:.0f} | {fast['rows']} | | | {fast['seconds']:.1f} | "
        f"{args.seconds / fast['seconds']:.0f}x | {fast['peak_mib']:.0f} |",
        f"| full speed, {args.long_factor}x longer | {long_s:.0f} | {long['rows']} | | | {long['seconds']:.1f} | "
        f"{long_s / long['seconds']:.0f}x | {long['peak_mib']:.0f} |"])
    print(table)
    if args.write:
        write_table("stream", table, heading="## Live streams (`sertool stream`)")


if __name__ == "__main__":
    main()
