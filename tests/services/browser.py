"""Headless Chromium (Debian's chromium + chromium-driver) driven through Selenium."""

from __future__ import annotations

import shutil
import tempfile

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600"]


def available() -> bool:
    import os
    return os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)


def chromium():
    from selenium import webdriver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in FLAGS + [f"--user-data-dir={tempfile.mkdtemp()}"]:
        opts.add_argument(f)
    return webdriver.Chrome(options=opts,
                            service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
