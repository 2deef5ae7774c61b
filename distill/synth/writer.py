"""Write synthetic scenes to disk: a Khanhha-layout dataset, or a drive video along a road."""

from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from crack_common.progress import bar as progress_bar
from distill.synth.scene import render_scene

log = logging.getLogger(__name__)
GENERATOR_VERSION = 1
CRACK_FREE_SHARE = 0.25


def crack_free_indices(count: int, seed: int) -> set:
    """Which images of a dataset are crack-free: a seeded quarter (at least 20%)."""
    n = math.ceil(CRACK_FREE_SHARE * count)
    return set(np.random.default_rng([seed, 0xC0FFEE]).permutation(count)[:n].tolist())


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of one scene: depends only on (seed, index), so workers agree."""
    return np.random.default_rng([seed, index])


def image_name(seed: int, index: int) -> str:
    return f"synth_s{seed}_{index:06d}"


@dataclass(frozen=True)
class _Job:
    out: str
    seed: int
    index: int
    size: int
    cracks: bool


def _jpeg_quality(rng: np.random.Generator) -> int:
    return int(rng.integers(60, 96))


def _write_one(job: _Job) -> Dict[str, object]:
    rng = scene_rng(job.seed, job.index)
    scene = render_scene(rng, (job.size, job.size), cracks=job.cracks)
    name = image_name(job.seed, job.index)
    q = _jpeg_quality(rng)
    ok, jpg = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, q])
    ok2, png = cv2.imencode(".png", scene.mask * 255)
    if not (ok and ok2):
        raise OSError(f"could not encode {name}")
    Path(job.out, "images", name + ".jpg").write_bytes(jpg.tobytes())
    Path(job.out, "masks", name + ".png").write_bytes(png.tobytes())
    return {"name": name, "jpeg_quality": q, **scene.meta()}


def write_dataset(out: Path, count: int, size: int = 448, seed: int = 0,
                  workers: Optional[int] = None, overwrite: bool = False,
                  progress: bool = True) -> List[Dict[str, object]]:
    """Write `count` scenes as images/NAME.jpg + masks/NAME.png (0/255) and a manifest.json.

    Refuses a folder that already holds images unless `overwrite` (nothing is deleted:
    files of the same name are replaced, others kept).
    """
    if count < 1:
        raise ValueError(f"--count must be at least 1, got {count}")
    if size < 64:
        raise ValueError(f"--size must be at least 64, got {size}")
    out = Path(out)
    if (out / "images").is_dir() and any((out / "images").iterdir()) and not overwrite:
        raise FileExistsError(f"{out}/images already holds files; choose an empty folder "
                              "or pass --overwrite")
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    free = crack_free_indices(count, seed)
    jobs = [_Job(str(out), seed, i, size, i not in free) for i in range(count)]
    workers = workers or min(len(jobs), os.cpu_count() or 1)
    records: List[Dict[str, object]] = []
    bar = _progress(count, "synth", progress)
    if workers <= 1:
        for job in jobs:
            records.append(_write_one(job))
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as pool:
            for rec in pool.map(_write_one, jobs, chunksize=4):
                records.append(rec)
                bar.update()
    bar.close()
    manifest = {"generator": "crack-distill synth", "version": GENERATOR_VERSION, "seed": seed,
                "size": size, "count": count, "images": records}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    write_contact_sheet(out, records[:24])
    return records


def write_contact_sheet(out: Path, records: List[Dict[str, object]]) -> Path:
    """contact_sheet.png: the first samples with their masks outlined, to look at before
    training on them."""
    import cv2

    from distill.evaluation.plots import contact_sheet
    images, masks, titles = [], [], []
    for rec in records:
        name = str(rec["name"])
        img = cv2.imread(str(out / "images" / f"{name}.jpg"))
        mask = cv2.imread(str(out / "masks" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        if img is None or mask is None:
            continue
        images.append(img)
        masks.append(mask)
        titles.append(name)
    return contact_sheet(images, masks, out / "contact_sheet.png", titles=titles)


def _progress(total: int, desc: str, enabled: bool):
    return progress_bar(total=total, desc=desc, unit="img", enabled=enabled)


# ------------------------------------------------------------------ drive video

@dataclass(frozen=True)
class DriveSpec:
    """A drive along a synthetic road strip seen by a downward-looking camera."""

    seconds: float = 20.0
    fps: float = 15.0
    speed: float = 0.5  # metres per second
    px_per_metre: float = 448.0
    width: int = 640
    height: int = 480
    seed: int = 0

    def offsets(self) -> List[int]:
        """Top row of the strip seen by each frame; the road moves down the picture."""
        n = max(1, int(round(self.seconds * self.fps)))
        step = self.speed * self.px_per_metre / self.fps
        travel = int(math.ceil(step * (n - 1)))
        return [travel - int(round(i * step)) for i in range(n)]


def render_strip(spec: DriveSpec, tile: int = 448) -> Tuple[np.ndarray, np.ndarray]:
    """The road strip (image, mask): scenes stacked along the road, with soft seams."""
    length = spec.offsets()[0] + spec.height
    rows = int(math.ceil(length / tile)) + 1
    img = np.zeros((rows * tile, spec.width, 3), np.uint8)
    mask = np.zeros((rows * tile, spec.width), np.uint8)
    free = crack_free_indices(rows, spec.seed)
    for r in range(rows):
        scene = render_scene(scene_rng(spec.seed, r), (tile, spec.width), cracks=r not in free)
        img[r * tile:(r + 1) * tile] = scene.image
        mask[r * tile:(r + 1) * tile] = scene.mask
    # feather the seams so tiles read as one road
    for r in range(1, rows):
        y = r * tile
        band = slice(y - 6, y + 6)
        img[band] = cv2.GaussianBlur(img[band], (1, 9), 0)
    return img[:length], mask[:length]


def drive_frames(spec: DriveSpec) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Frames (image, truth mask) of the drive, in order."""
    strip, mask = render_strip(spec)
    for top in spec.offsets():
        yield strip[top:top + spec.height], mask[top:top + spec.height]


def write_drive_video(out: Path, spec: DriveSpec) -> Dict[str, object]:
    """Write the drive as an MP4 plus OUT.truth.json (frame offsets) and OUT.truth.png (mask)."""
    out = Path(out)
    if out.suffix.lower() not in (".mp4", ".avi", ".mkv"):
        raise ValueError(f"--video must end in .mp4, .avi or .mkv, got {out.name}")
    if spec.seconds <= 0 or spec.fps <= 0 or spec.speed < 0:
        raise ValueError("--seconds and --fps must be positive and --speed not negative")
    out.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if out.suffix.lower() == ".mp4" else "MJPG"))
    writer = cv2.VideoWriter(str(out), fourcc, spec.fps, (spec.width, spec.height))
    if not writer.isOpened():
        raise OSError(f"OpenCV cannot write video {out}")
    strip, mask = render_strip(spec)
    offsets = spec.offsets()
    try:
        for top in offsets:
            writer.write(np.ascontiguousarray(strip[top:top + spec.height]))
    finally:
        writer.release()
    truth_png = out.with_suffix(".truth.png")
    cv2.imwrite(str(truth_png), mask * 255)
    info = {"video": out.name, "truth_mask": truth_png.name, "frames": len(offsets),
            "fps": spec.fps, "speed_m_s": spec.speed, "px_per_metre": spec.px_per_metre,
            "frame_size": [spec.width, spec.height], "seed": spec.seed,
            "frame_top_rows": offsets}
    out.with_suffix(".truth.json").write_text(json.dumps(info))
    return info
