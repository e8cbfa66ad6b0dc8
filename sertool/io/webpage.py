"""HTML pages out: escaping, tables, pictures inline as data: URIs, and printing a page to PDF with Chromium.

A page built here refers to nothing outside itself: pictures are ``data:`` URIs, and the browser that
prints it runs headless with every host unresolvable, so nothing is fetched.
"""

from __future__ import annotations

import base64
import html
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

from sertool.errors import SertoolError
from sertool.io.atomic import atomic_path

#: Browsers that print the PDF, first found wins.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Seconds the browser may take to print the PDF.
PRINT_TIMEOUT_S = 300


class Page:
    """An HTML page being built: its parts, the pictures embedded and the notes on what was left out."""

    def __init__(self):
        self.parts: list[str] = []
        self.figures = 0
        self.notes: list[str] = []

    def add(self, *parts: str) -> None:
        self.parts.extend(parts)

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.add(f'<p class="note">{esc(text)}</p>')

    def figure(self, path: Path, caption: str) -> None:
        """``path`` (a PNG) inline as a data: URI with ``caption``; a note instead when it is not a PNG."""
        data = path.read_bytes()
        size = png_size(data)
        if size is None:
            self.note(f"{path}: not a PNG image, left out")
            return
        encoded = base64.b64encode(data).decode("ascii")
        self.figures += 1
        self.add(f'<figure><img alt="{esc(path.name)}" width="{size[0]}" height="{size[1]}" '
                 f'src="data:image/png;base64,{encoded}"><figcaption>{esc(caption)} '
                 f'<code>{esc(path.name)}</code></figcaption></figure>')


def esc(value) -> str:
    """``value`` as text safe inside HTML elements and quoted attributes."""
    return html.escape(str(value), quote=True)


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None when ``data`` is not a PNG with a non-empty picture."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width and height else None


def table(header: list[str] | None, rows: list[list], numeric_from: int = 1) -> str:
    """An HTML table (no header row when ``header`` is None); every cell escaped; cells from column
    ``numeric_from`` on right-aligned."""
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f'<td{" class=n" if k >= numeric_from else ""}>{esc(c)}</td>'
                                    for k, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def find_browser() -> str | None:
    """Path of a Chromium-family browser on PATH, or None."""
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def browser_command(browser: str, profile: Path, *options: str) -> list[str]:
    """A headless, offline run of ``browser``: no GPU, no sandbox (root in containers), every host unresolvable."""
    return [browser, "--headless", "--disable-gpu", "--no-sandbox", f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND", "--no-first-run", "--disable-extensions", *options]


def print_pdf(page_html: str, output: Path) -> None:
    """Print ``page_html`` to the PDF ``output`` with a headless Chromium.

    Raises
    ------
    SertoolError
        No browser found, or it failed or printed no PDF.
    """
    browser = find_browser()
    if browser is None:
        raise SertoolError(f"{output}: a PDF is printed by Chromium, which is not installed; install it "
                           "(apt-get install chromium) or write an .html report")
    with tempfile.TemporaryDirectory(prefix="sertool-report-") as tmp:
        source, printed = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_text(page_html, encoding="utf-8")
        command = browser_command(browser, Path(tmp) / "profile", "--no-pdf-header-footer",
                                  f"--print-to-pdf={printed}", source.as_uri())
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PRINT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise SertoolError(f"{output}: {browser} took over {PRINT_TIMEOUT_S} s to print; write an .html "
                               "report and print it from a browser") from None
        if not printed.is_file() or printed.read_bytes()[:5] != b"%PDF-":
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise SertoolError(f"{output}: {browser} printed no PDF (exit {done.returncode}: {last}); write an "
                               ".html report instead")
        with atomic_path(output) as target:
            shutil.copyfile(printed, target)
