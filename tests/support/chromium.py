"""Debian's headless Chromium, for the tests that check pages as a browser renders them."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium at 1600x1000 with a private profile under `tmp`; fails the test
    when it is missing or exits non-zero."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package "
                    "(scripts/test does; by hand: apt-get install -y chromium)")
    profile = tmp / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--window-size=1600,1000", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return out
