"""Render a page in headless Chromium (Debian's `chromium`) and measure the screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["CHROMIUM", "pixel_stats", "screenshot"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SKIP_REASON = (
    "chromium is not installed here (CI installs Debian's `chromium` package in .ci/run; "
    "locally: apt-get install -y chromium)"
)


def screenshot(page: Path, png: Path, profile: Path, height: int = 4000) -> Path:
    """Screenshot ``page`` at 1280 x ``height`` with no network, GPU or sandbox."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        f"--screenshot={png}",
        f"--window-size=1280,{height}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert png.is_file(), f"chromium wrote no screenshot (rc {done.returncode}): {done.stderr}"
    return png


def pixel_stats(png: Path) -> tuple[tuple[int, int], float, float]:
    """(size, grey-level standard deviation, share of pixels that are not near-white)."""
    with Image.open(png) as img:
        grey = np.asarray(img.convert("L"), dtype=float)
        size = img.size
    return size, float(grey.std()), float((grey < 235).mean())
