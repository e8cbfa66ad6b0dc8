"""predict - : one recording on standard input (WAV/FLAC/OGG, or raw PCM with --rate) scores like the file."""

from __future__ import annotations

import csv
import io

import numpy as np
import soundfile as sf
from click.testing import CliRunner

from sertool.cli.main import cli
from tests.conftest import REPO

CLIP = sorted((REPO / "examples").rglob("*.flac"))[0]


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(line for line in text.splitlines() if not line.startswith("predict:")))


def run(args, data: bytes):
    return CliRunner().invoke(cli, ["predict", *args], input=data)


def test_wav_and_raw_pcm_on_stdin_score_like_the_file():
    reference = rows(run([str(CLIP), "-o", "-"], b"").output)[0]
    samples, sr = sf.read(CLIP, dtype="int16")
    wav = io.BytesIO()
    sf.write(wav, samples, sr, format="WAV", subtype="PCM_16")
    piped = bytearray(wav.getvalue())
    piped[4:8] = piped[40:44] = b"\xff\xff\xff\xff"  # a pipe's WAV header gives no length (ffmpeg -f wav -)
    floats = (samples.astype(np.float32) / 32768).astype("<f4").tobytes()
    for args, data in ((["-"], wav.getvalue()), (["-"], bytes(piped)),
                       (["-", "--rate", str(sr)], samples.astype("<i2").tobytes()),
                       (["-", "--rate", str(sr), "--format", "f32le"], floats),
                       (["-", "--rate", str(sr), "--channels", "2"], np.repeat(samples, 2).astype("<i2").tobytes())):
        result = run([*args, "-o", "-"], data)
        assert result.exit_code == 0, result.output
        got = rows(result.output)[0]
        assert got["path"] == "-"
        for key in reference:
            if key.startswith("p_") or key in ("predicted", "duration"):
                assert got[key] == reference[key], (args, key)


def test_bad_stdin_is_a_one_line_error():
    for data, message in ((b"", "no audio bytes"), (b"\x00garbage" * 40, "not a WAV/FLAC/OGG")):
        result = run(["-", "-o", "-"], data)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    result = run([str(CLIP), "--rate", "16000"], b"")
    assert result.exit_code == 2 and "INPUT -" in result.output
