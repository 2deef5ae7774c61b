#!/usr/bin/env python3
"""The README's screenshots, made from the bundled demo (a synthetic road video, so nothing
from a licensed dataset): a demo run with the bundled model, its review report opened in
headless Chromium, saved as docs/review-report.png (shrunk to keep the repository light).

Usage: .venv/bin/python scripts/release/figures/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

from tests.services.browser import chromium  # noqa: E402


def main(argv: list) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--frames", type=int, default=90)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run([sys.executable, "-m", "edge_app.cli", "run", "--source", "demo",
                            "--sim", "--record", tmp, "--port", "0", "--max-frames",
                            str(a.frames), "--mode", "cruise", "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=900)
        if r.returncode:
            print(r.stderr, file=sys.stderr)
            return 1
        run_dir = Path(json.loads(r.stdout.strip().splitlines()[-1])["run_dir"])
        report = run_dir / "report.html"
        subprocess.run([sys.executable, "-m", "edge_app.cli", "review", str(run_dir), "--out",
                        str(report)], cwd=ROOT, check=True, capture_output=True)
        browser = chromium()
        try:
            browser.set_window_size(1280, 1400)
            browser.get(report.as_uri())
            time.sleep(1.0)
            shot = Path(tmp) / "shot.png"
            browser.save_screenshot(str(shot))
        finally:
            browser.quit()
        img = cv2.imread(str(shot))
        small = cv2.resize(img, (img.shape[1] * 2 // 3, img.shape[0] * 2 // 3),
                           interpolation=cv2.INTER_AREA)
        a.out.mkdir(parents=True, exist_ok=True)
        out = a.out / "review-report.png"
        cv2.imwrite(str(out), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"{out}: {out.stat().st_size // 1024} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
