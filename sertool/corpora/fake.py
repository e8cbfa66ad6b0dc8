"""Small fake corpora in the real layouts, for tests and recipe smoke runs.

``python -m sertool.corpora.fake iemocap DIR`` writes an IEMOCAP-shaped tree
(two sessions, two dialogs each, one utterance per label code, 0.5 s tones)
so the IEMOCAP recipe and parser can be exercised without the real corpus.
:func:`write_tone` writes the tiny WAVs of every corpus module's ``fake_tree``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
CODES = ("neu", "exc", "hap", "ang", "sad", "fru", "xxx")


def _tone(seconds: float, freq: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def write_tone(path: Path, *, seconds: float = 0.3, freq: float = 220.0, seed: int = 0) -> Path:
    """Write a mono 16 kHz WAV of a tone plus a little noise, creating its folder.

    Parameters
    ----------
    path
        The WAV file to write.
    seconds
        Its duration in seconds.
    freq
        The tone's frequency in Hz.
    seed
        Seed of the noise.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, _tone(seconds, freq, seed), 16000)
    return path


def make_fake_iemocap(root, sessions=(1, 2), codes=CODES, seconds: float = 0.5) -> Path:
    """Write the tree under ``root``; every dialog has one utterance per code, speakers alternating F/M."""
    root = Path(root)
    for n in sessions:
        for dialog in (f"Ses0{n}F_impro01", f"Ses0{n}M_script01_1"):
            lines = [HEADER]
            for i, code in enumerate(codes):
                utt = f"{dialog}_{'M' if i % 2 else 'F'}{i:03d}"
                v, a, d = 1.0 + (i % 5), 1.5 + (i * 7 % 9) / 2, 2.0 + (i % 3)  # valence, activation, dominance on 1-5
                lines.append(f"[{i * 2.0:.4f} - {i * 2.0 + 1.5:.4f}]\t{utt}\t{code}\t[{v:.4f}, {a:.4f}, {d:.4f}]\n")
                lines.append("C-E2:\tNeutral;\t()\n\n")
                write_tone(root / f"Session{n}" / "sentences" / "wav" / dialog / f"{utt}.wav", seconds=seconds,
                           freq=120.0 + 40 * i + 7 * n, seed=100 * n + i)
            eval_dir = root / f"Session{n}" / "dialog" / "EmoEvaluation"
            (eval_dir / "Categorical").mkdir(parents=True, exist_ok=True)  # real sub-folders are ignored
            (eval_dir / f"{dialog}.txt").write_text("".join(lines))
    return root


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "iemocap":
        sys.exit("usage: python -m sertool.corpora.fake iemocap DIR")
    print(make_fake_iemocap(sys.argv[2]))
