"""Cost of ``--features ssl`` on the CPU per hour of audio, for encoders of the published sizes.

No encoder weights can be downloaded here, so the models are randomly
initialised with the architecture of wav2vec2-base / HuBERT-base /
WavLM-base (768 hidden, 12 layers, 95 M parameters), of the "large"
models (1024 hidden, 24 layers, 317 M parameters) and of the Whisper-base
and Whisper-large-v3 encoders (512 x 6 and 1280 x 32; their decoders are
cut to one layer, since sertool never loads the decoder's weights): their
compute and memory equal the trained models'; their features are of course
useless. Whisper pads every chunk to its 30 s input, so a 3 s clip costs
as much as 30 s of audio.
Each size is saved as a transformers folder and timed in a fresh process:
model load, then ``extract`` on ``--seconds`` of audio (chunks of 30 s),
best of 2; peak resident memory of that process. With ``--write`` the table
replaces the one between the markers in bench/README.md.

Usage: python bench/bench_ssl.py [--seconds 60] [--write]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import machine, write_table  # noqa: E402

SIZES = {
    "base (768 x 12 layers, as wav2vec2-base / HuBERT-base / WavLM-base)": ("wav2vec2", {}),
    "large (1024 x 24 layers, as wav2vec2-large / HuBERT-large / WavLM-large)": ("wav2vec2", {
        "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
        "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True}),
    "Whisper-base encoder (512 x 6 layers)": ("whisper", {
        "d_model": 512, "encoder_layers": 6, "encoder_attention_heads": 8, "encoder_ffn_dim": 2048,
        "num_mel_bins": 80}),
    "Whisper-large-v3 encoder (1280 x 32 layers)": ("whisper", {
        "d_model": 1280, "encoder_layers": 32, "encoder_attention_heads": 20, "encoder_ffn_dim": 5120,
        "num_mel_bins": 128}),
}


def save_random(kind: str, overrides: dict, folder: Path) -> None:
    """A randomly initialised transformers folder of ``kind`` with the published size ``overrides``."""
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "whisper":  # one decoder layer: sertool loads the encoder only
        config = transformers.WhisperConfig(**overrides, decoder_layers=1, decoder_attention_heads=
                                            overrides["encoder_attention_heads"], decoder_ffn_dim=256)
        transformers.WhisperModel(config).save_pretrained(folder)
        transformers.WhisperFeatureExtractor(feature_size=overrides["num_mel_bins"]).save_pretrained(folder)
    else:
        transformers.Wav2Vec2Model(transformers.Wav2Vec2Config(**overrides)).save_pretrained(folder)

TIMING = r"""
import resource, sys, time, numpy as np, torch
from sertool.features import build_extractor
folder, seconds = sys.argv[1], float(sys.argv[2])
torch.set_num_threads(2)
start = time.perf_counter()
extractor = build_extractor("ssl", {"model": folder, "layers": "all"})
extractor.encoder
load = time.perf_counter() - start
samples = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 0.1).astype(np.float32)
extractor.extract(samples[:16000], 16000)
best = 1e9
for _ in range(2):
    start = time.perf_counter(); feats = extractor.extract(samples, 16000); best = min(best, time.perf_counter() - start)
params = sum(p.numel() for p in extractor.encoder.parameters())
print(load, best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, params, feats.shape[1])
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    import torch
    import transformers

    lines = [f"Measured {__import__('datetime').date.today()} on {machine()}, torch {torch.__version__}, "
             f"transformers {transformers.__version__}; randomly initialised encoders of the published sizes "
             f"(same compute and memory as trained ones), `layers = \"all\"`, {args.seconds:.0f} s of audio in "
             "30 s chunks, 2 threads, float32.", "",
             "| encoder size | parameters | load (s) | extract (s) | xRT | 2-core machine-hours per hour of audio | "
             "peak RSS (MB) | store per hour (float16) |", "|---|---|---|---|---|---|---|---|"]
    for name, (kind, overrides) in SIZES.items():
        folder = Path(tempfile.mkdtemp(prefix="sertool-ssl-size-"))
        save_random(kind, overrides, folder)
        try:
            done = subprocess.run([sys.executable, "-c", TIMING, str(folder), str(args.seconds)], check=True,
                                  capture_output=True, text=True, cwd=ROOT)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # up to 3 GB of random weights
        load, seconds, rss, params, dim = done.stdout.split()[-5:]
        xrt = args.seconds / float(seconds)
        store_gb = int(dim) * 50 * 3600 * 2 / 1e9  # 50 frames/s, 2 bytes per value
        lines.append(f"| {name} | {int(params) / 1e6:.0f} M | {float(load):.1f} | {float(seconds):.1f} | {xrt:.1f}x | "
                     f"{1 / xrt:.2f} | {float(rss):.0f} | {store_gb:.1f} GB ({dim} values x 50 frames/s) |")
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_table("ssl", table, heading="## Self-supervised encoders (`--features ssl`) on the CPU")


if __name__ == "__main__":
    main()
