"""Drive Debian's headless Chromium (/usr/bin/chromium) with Playwright, for the tests of the
report and the dashboard: JavaScript errors collected, rendered text and screenshots read back.
Playwright's own browser downloads are never used (no `playwright install`)."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium's own update / sync calls are refused in a
# sandbox and show up as console errors that are not the page's.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 120_000  # generous: the machine is shared; a correct page loads far sooner


class BrowserMissing(RuntimeError):
    pass


@dataclass
class Errors:
    """JavaScript errors a page raised (uncaught exceptions) or logged (console.error)."""
    page: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)

    def all(self) -> list[str]:
        return self.page + self.console


@contextlib.contextmanager
def chromium_page(width: int = 1200, height: int = 900):
    """Yields (page, errors): a fresh headless Chromium with a throw-away profile."""
    if not os.access(CHROMIUM, os.X_OK):
        raise BrowserMissing(f"{CHROMIUM} not found: install Debian's chromium package "
                             "(apt-get install -y chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright
    profile = tempfile.mkdtemp(prefix="nextsweep-chromium-")
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=FLAGS,
                viewport={"width": width, "height": height})
            try:
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                errors = Errors()
                page.on("pageerror", lambda exc: errors.page.append(str(exc)))
                page.on("console", lambda msg: errors.console.append(msg.text) if msg.type == "error" else None)
                yield page, errors
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def distinct_colours(page, png: bytes) -> int:
    """How many distinct RGBA colours a PNG screenshot holds, decoded by the browser's own canvas
    in a blank page (a blank or single-colour screenshot gives 1 or 2)."""
    blank = page.context.new_page()
    try:
        return blank.evaluate("""async (b64) => {
            const img = new Image();
            img.src = 'data:image/png;base64,' + b64;
            await img.decode();
            const c = document.createElement('canvas');
            c.width = img.width; c.height = img.height;
            const ctx = c.getContext('2d');
            ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            const seen = new Set();
            for (let i = 0; i < d.length; i += 4) seen.add(((d[i] << 24) | (d[i+1] << 16) | (d[i+2] << 8) | d[i+3]) >>> 0);
            return seen.size;
        }""", base64.b64encode(png).decode())
    finally:
        blank.close()
