"""scoring/html_report.py and ``sertool report``: evaluated runs as one self-contained, script-free HTML page.

The page is checked three ways:

- statically, with Python's HTML parser: no ``<script>``, no ``<link>``/``<iframe>``/``<object>``/``<embed>``,
  every ``<img src>`` a ``data:image/png`` URI that PIL decodes, every ``href`` an anchor of the page, and
  every hostile string read from the run's files shown as text (escaped), never as markup;
- in a real headless Chromium (skipped when none is installed): a copy of the page with a probe script
  appended (and its Content-Security-Policy removed, so that the probe runs and nothing is blocked that
  the page itself would fetch) reports each image's ``naturalWidth`` and every resource the page
  requested (the Resource Timing API lists fetches, failed ones included); a control page with one
  ``http://`` image proves the probe sees such a request. Hosts are unresolvable in every run
  (``--host-resolver-rules``), so nothing can leave the machine even if the check were wrong;
- a Chromium screenshot of the real page is a PNG that is not blank.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from PIL import Image

from sertool.cli.main import cli
from sertool.errors import ConfigError, SertoolError
from sertool.scoring.compare import compare_runs
from sertool.scoring.evaluate import evaluate_run
from sertool.io.webpage import browser_command, find_browser
from sertool.scoring.html_report import write_report
from sertool.training.trainer import build_train_config, train_run
from tests.conftest import FAST_TRAINING, HANG_SECONDS, tone

#: Labels that would run or fetch something if a report pasted them in as markup.
HOSTILE = {"low": "<script>alert(1)</script>", "high": '<img src="http://x.invalid/a.png">'}
needs_browser = pytest.mark.skipif(find_browser() is None,
                                   reason="no Chromium on PATH (apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def runs(pitch_corpus, tmp_path_factory):
    """An evaluated logreg run on hostile labels in a folder named like markup, and a one-fold (holdout) network run."""
    root = tmp_path_factory.mktemp("report")
    rows = list(csv.DictReader(open(pitch_corpus.manifest, newline="")))
    for r in rows:
        r["label"] = HOSTILE[r["label"]]
        r["path"] = str(pitch_corpus.root / r["path"])
    manifest = root / "hostile.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    classic, network = root / "<b>classic", root / "network"
    train_run(manifest, pitch_corpus.vectors, model="logreg", output=classic, protocol="loso", valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model="logreg"))
    train_run(pitch_corpus.manifest, pitch_corpus.frames, model="light_sernet", output=network,
              protocol="holdout", test_speakers=["spk0"], valid_speakers=1,
              train_config=build_train_config(FAST_TRAINING, model="light_sernet"))
    for run in (classic, network):
        evaluate_run(run)
    return classic, network


class _Page(HTMLParser):
    """Every tag with its attributes, and the text, of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def attrs(self, tag: str) -> list[dict]:
        return [a for t, a in self.tags if t == tag]

    @property
    def cells(self) -> str:
        """The text, one space between elements' texts (table cells stay apart)."""
        return re.sub(r"\s+", " ", " ".join(self.text))

    @property
    def prose(self) -> str:
        """The text as a reader sees a paragraph (no space added between inline elements)."""
        return re.sub(r"\s+", " ", "".join(self.text))


def _images(page: _Page) -> list[Image.Image]:
    """Every <img> of the page, decoded by PIL from its data: URI (fails on anything else)."""
    decoded = []
    for attrs in page.attrs("img"):
        assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:60]
        image = Image.open(io.BytesIO(base64.b64decode(attrs["src"].split(",", 1)[1], validate=True)))
        image.load()
        assert image.size == (int(attrs["width"]), int(attrs["height"])) and min(image.size) > 0
        decoded.append(image)
    return decoded


def assert_self_contained(text: str) -> _Page:
    """No script, no embedded documents, every picture inline, every link an anchor of the page."""
    page = _Page(text)
    tags = {t for t, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "form"}, tags
    assert "<script" not in text.lower()
    for tag, attrs in page.tags:
        for name, value in attrs.items():
            if name in ("src", "href", "action", "srcset", "poster") or name.startswith("on"):
                assert name in ("src", "href"), (tag, name)
                assert value.startswith("data:image/png;base64,") if name == "src" else value.startswith("#")
    assert not re.search(r"url\(|@import", text), "styles fetch nothing"
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)""", text, re.I)
    return page


def fold_row(fold_dir: Path) -> str:
    """The start of a fold's protocol row: folder, name, speakers per role, utterances per role."""
    config = json.loads((fold_dir / "config.json").read_text())
    roles = ("train", "valid", "test")
    return " ".join([fold_dir.name, config["fold_name"], *(", ".join(config["speakers"][r]) for r in roles),
                     " / ".join(str(config[r]) for r in roles)])


def test_an_unevaluated_run_is_a_one_line_error(runs, tmp_path):
    trained = tmp_path / "trained"
    shutil.copytree(runs[0], trained, ignore=shutil.ignore_patterns("metrics.csv"))
    result = CliRunner().invoke(cli, ["report", str(trained), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 1
    assert result.output == f"Error: {trained} has no evaluation: run sertool evaluate {trained}\n"
    assert not (tmp_path / "r.html").exists()


def test_the_page_shows_the_data_protocol_metrics_and_every_figure(runs, tmp_path):
    classic, network = runs
    output = tmp_path / "out" / "report.html"
    result = CliRunner().invoke(cli, ["report", str(classic), "-o", str(output)])
    assert result.exit_code == 0, result.output
    text = output.read_text()
    page = assert_self_contained(text)
    words = page.cells
    metrics = {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(classic / "metrics.csv"))}
    # data: utterances, speakers and label counts; protocol: speakers per role, C chosen on validation speakers
    for expected in ("utterances in the folds 36", "speakers 3", "corpus utterances speakers folder 36 3",
                     fold_row(classic / "fold-1"), "C = 0.0001 (validation UA",
                     "of 0.0001, 0.001, 0.01, 0.1, 1", "T = 0.0498 (validation ECE"):
        assert expected in words, expected
    assert "Protocol loso, 3 fold(s)." in page.prose
    # metrics: pooled with its interval, mean +- std, each fold; per-class pooled scores
    ua = metrics["pooled", "UA"]
    assert f"{ua:.3f} [{metrics['pooled', 'UA_ci95_low']:.3f}, {metrics['pooled', 'UA_ci95_high']:.3f}]" in words
    assert f"{metrics['mean', 'ECE']:.3f} ± {metrics['std', 'ECE']:.3f}" in words
    assert all(f"fold {k}" in words for k in range(3))
    assert f"Pooled ECE {metrics['pooled', 'ECE']:.3f}" in words
    # every PNG evaluate wrote is on the page, once, and decodes
    pngs = sorted(p.name for p in classic.glob("*.png"))
    assert pngs == ["confusion.png", "confusion_folds.png", "reliability.png"]
    assert sorted(a["alt"] for a in page.attrs("img")) == pngs and len(_images(page)) == 3
    # a network run: the epoch its validation speakers chose
    write_report([network], output)
    words = _Page(output.read_text()).cells
    log = list(csv.DictReader(open(network / "fold-0" / "train_log.csv")))
    best = max(log, key=lambda r: float(r["valid_UA"]))
    assert f"{len(log)} epochs; best validation UA {float(best['valid_UA']):.3f} at epoch {best['epoch']}" in words
    assert "checkpoint.pt = the last epoch (2)" in words and "training_curves.png" in words


def test_strings_from_files_are_escaped_never_markup(runs, tmp_path):
    classic, _ = runs
    text = write_report([classic], tmp_path / "r.html").output.read_text()
    page = assert_self_contained(text)
    shown = "".join(page.text)
    for label in HOSTILE.values():
        assert label in shown  # the label is on the page as text: in the label counts, per-class table, ...
        assert label not in text  # ... and only escaped in the source
    assert "<b>classic" in shown and "<b>" not in text
    assert [t for t, _ in page.tags if t in ("b", "script")] == []
    assert len(page.attrs("img")) == 3  # the label's <img> is not an image


def test_other_figures_and_regression_columns_are_shown(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)
    scatter = Image.new("RGB", (40, 30), "white")
    scatter.putpixel((3, 4), (200, 0, 0))
    scatter.save(run / "scatter_arousal.png")
    (run / "broken.png").write_bytes(b"not a picture")
    with open(run / "metrics.csv", "a", newline="") as fh:  # regression scores, as a regression evaluate adds them
        csv.writer(fh).writerows([["pooled", "CCC_arousal", "0.612300"], ["pooled", "CCC_arousal_ci95_low", "0.5"],
                                  ["pooled", "CCC_arousal_ci95_high", "0.7"], ["0", "CCC_arousal", "0.612300"]])
    result = write_report([run], tmp_path / "r.html")
    page = assert_self_contained(result.output.read_text())
    words = page.cells
    assert "Other figures" in words and "0.612 [0.500, 0.700]" in words and "CCC_arousal" in words
    assert "scatter_arousal.png" in [a["alt"] for a in page.attrs("img")]
    assert "broken.png" not in [a["alt"] for a in page.attrs("img")]
    assert result.notes == [f"{run / 'broken.png'}: not a PNG image, left out"]
    assert result.figures == len(_images(page)) == 4


def test_several_runs_get_the_compare_table(runs, tmp_path):
    text = write_report(list(runs), tmp_path / "r.html").output.read_text()
    words = assert_self_contained(text).cells
    assert "Comparison" in words and "p_not_better" in words
    for row in compare_runs(list(runs)):
        assert f"{row['UA']:.3f}" in words and row["model"] in words
    assert [a["href"] for a in _Page(text).attrs("a")] == ["#run-0", "#run-1"]
    assert 'id="run-1"' in text


@pytest.fixture(scope="module")
def flagged_predictions(tmp_path_factory):
    """A predict CSV of the bundled model: a clean tone, a silent file (no_speech) and a clipped one."""
    root = tmp_path_factory.mktemp("flags")
    sf.write(root / "tone.wav", tone(2.0), 16000)
    sf.write(root / "silent.wav", np.zeros(32000, np.float32), 16000)
    sf.write(root / "clipped.wav", np.clip(tone(2.0) * 20, -1, 1), 16000)
    output = root / "p.csv"
    result = CliRunner().invoke(cli, ["predict", str(root), "-o", str(output), "--no-progress"])
    assert result.exit_code == 0, result.output
    return output


def test_the_flags_of_predictions_are_summarised(runs, flagged_predictions, tmp_path):
    rows = list(csv.DictReader(open(flagged_predictions)))
    counts = {}
    for r in rows:
        for name in filter(None, r["flags"].split(";")):
            counts[name] = counts.get(name, 0) + 1
    assert counts, "the test files raise flags"
    result = CliRunner().invoke(cli, ["report", str(runs[1]), "-o", str(tmp_path / "r.html"),
                                      "--predictions", str(flagged_predictions)])
    assert result.exit_code == 0, result.output
    page = _Page((tmp_path / "r.html").read_text())
    flagged, failed = sum(1 for r in rows if r["flags"]), sum(1 for r in rows if r["error"])
    assert (f"{flagged_predictions}: 3 rows of 3 file(s); {flagged} ({100 * flagged / 3:.1f} %) flagged, "
            f"{failed} failed.") in page.prose
    for name, n in counts.items():
        assert f"{name} {n} ({100 * n / 3:.1f} %)" in page.cells
    # a predictions CSV found in the run folder is summarised too
    run = tmp_path / "run"
    shutil.copytree(runs[1], run)
    shutil.copy(flagged_predictions, run / "clips.csv")
    words = _Page(write_report([run], tmp_path / "r2.html").output.read_text()).cells
    assert "Input checks (flags)" in words and "clips.csv" in words


def test_bad_inputs_are_one_line_errors(runs, tmp_path):
    classic, network = runs
    with pytest.raises(ConfigError, match=r"r\.txt: the report must end in \.html or \.pdf"):
        write_report([classic], tmp_path / "r.txt")
    no_flags = tmp_path / "old.csv"
    no_flags.write_text("path,predicted\na.wav,happy\n")
    result = CliRunner().invoke(cli, ["report", str(network), "-o", str(tmp_path / "r.html"),
                                      "--predictions", str(no_flags)])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {no_flags}: no flags column")
    damaged = tmp_path / "damaged"
    shutil.copytree(network, damaged)
    (damaged / "metrics.csv").write_text("fold,metric,value\npooled,UA,0.5\npooled,WA,oops\n")
    with pytest.raises(SertoolError, match=r"metrics\.csv line 3: value 'oops' is not a number"):
        write_report([damaged], tmp_path / "r.html")
    (damaged / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(SertoolError, match="not evaluate's metrics.csv"):
        write_report([damaged], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_a_pdf_without_a_browser_is_a_one_line_error(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH
    result = CliRunner().invoke(cli, ["report", str(runs[1]), "-o", str(tmp_path / "r.pdf")])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert "Chromium, which is not installed" in result.output and not (tmp_path / "r.pdf").exists()


_PROBE = """<script>window.addEventListener("load", function () {
  var out = document.createElement("pre"); out.id = "probe";
  out.textContent = JSON.stringify({widths: Array.from(document.images).map(function (i) { return i.naturalWidth; }),
    requests: performance.getEntriesByType("resource").map(function (e) { return e.name; })});
  document.body.appendChild(out); });</script>"""


def _browser(*options: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(browser_command(find_browser(), tmp / "profile", *options), capture_output=True,
                          text=True, timeout=HANG_SECONDS)


def _probe(page: Path, tmp: Path) -> dict:
    """What the probe script saw in ``page`` (a copy of it, without its CSP, with the probe appended)."""
    text = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page.read_text())
    harness = tmp / f"probe-{page.name}"
    harness.write_text(text.replace("</body>", _PROBE + "</body>"))
    dom = _browser("--virtual-time-budget=10000", "--dump-dom", harness.as_uri(), tmp=tmp).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


@needs_browser
def test_the_page_renders_offline_in_chromium(runs, tmp_path):
    report = write_report(list(runs), tmp_path / "report.html")
    assert 'http-equiv="Content-Security-Policy"' in report.output.read_text()
    seen = _probe(report.output, tmp_path)
    assert len(seen["widths"]) == report.figures > 3 and all(w > 0 for w in seen["widths"]), seen
    assert seen["requests"] == []
    # the control: an image from the network shows as a request, and does not load
    control = tmp_path / "control.html"
    control.write_text('<html><body><img src="http://example.invalid/x.png"></body></html>')
    assert _probe(control, tmp_path) == {"widths": [0], "requests": ["http://example.invalid/x.png"]}
    # the page itself, as a user's browser shows it: a screenshot that is not blank
    shot = tmp_path / "shot.png"
    _browser("--window-size=1200,1600", f"--screenshot={shot}", report.output.as_uri(), tmp=tmp_path)
    grey = np.asarray(Image.open(shot).convert("L"))
    assert grey.shape == (1600, 1200) and grey.std() > 10 and (grey < 100).mean() > 0.005


@needs_browser
def test_a_pdf_is_printed_by_chromium(runs, tmp_path):
    result = CliRunner().invoke(cli, ["report", *map(str, runs), "-o", str(tmp_path / "r.pdf")])
    assert result.exit_code == 0, result.output
    data = (tmp_path / "r.pdf").read_bytes()
    assert data.startswith(b"%PDF-") and len(data) > 10_000
