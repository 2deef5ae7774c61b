"""The teacher-logit cache: the teacher runs once per augmented view, offline; training
reads the logits back and never holds the teacher in memory.

Layout of a cache folder:
  index.json        settings (teacher hash, size, views, seed, noise mix, image names) and
                    the finished shards with their SHA-256
  shard_00000.npy   float16 (n, 2, size/4, size/4): the teacher's 1/4-resolution logits
  feat_00000.npy    with features (RFKD): float16 (n, C, size/32, size/32), the teacher's
                    image embedding average-pooled from 1/16 to 1/32, of the view *without*
                    its noise case, so a student that sees a noisy view learns the features
                    of the clean one (C = 256 for SAM: 32 KiB a view at 256 px, 100 KiB at
                    448)

Shards are written atomically and recorded in the index after each one, so a killed run
resumes at the first unfinished shard. A shard that does not match its hash, shape or
the index is reported by name and nothing else is touched.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch

from crack_common.files import atomic_write, atomic_write_text, sha256_file
from distill.data.datasets import CrackDataset
from distill.data.views import CropSpec, View, plan_view, render_view
from distill.nets.student_io import bgr_to_unit_rgb

log = logging.getLogger(__name__)
INDEX = "index.json"
CACHE_VERSION = 2  # 2: views carry a crop


class CacheError(ValueError):
    """A cache folder that cannot be used as it is."""


@dataclass(frozen=True)
class Entry:
    name: str
    image_index: int
    view: View


def plan(dataset: CrackDataset, views: int, seed: int, noise_mix: float,
         crop: Optional[CropSpec] = None) -> List[Entry]:
    """`views` views of every pair."""
    return [Entry(s.name, i, plan_view(seed, i, v, noise_mix, crop and crop.for_sample(s.name)))
            for i, s in enumerate(dataset.samples) for v in range(views)]


def _settings(teacher_sha: str, teacher_cfg: Dict, size: int, views: int, seed: int,
              noise_mix: float, names: List[str], crop: CropSpec, car_size: int,
              features: bool = False) -> Dict:
    out = {"version": CACHE_VERSION, "teacher_sha256": teacher_sha,
           "teacher_config": teacher_cfg, "size": size, "views": views, "seed": seed,
           "noise_mix": noise_mix, "crop": crop.settings(), "car_size": car_size,
           "logit_shape": [2, size // 4, size // 4], "dtype": "float16", "names": names}
    if features:
        cell = 2 * teacher_cfg.get("patch_size", 16)  # the embedding's grid, pooled by 2
        out["feature_shape"] = [teacher_cfg.get("prompt_dim", 256), size // cell, size // cell]
    return out


def build_cache(teacher_path: Path, dataset: CrackDataset, folder: Path, size: int,
                views: int, seed: int, noise_mix: float = 0.0, shard_size: int = 64,
                batch: int = 4, device: str = "cpu",
                progress: Optional[Callable[[int, int], None]] = None,
                crop: Optional[CropSpec] = None, car_size: int = 448,
                features: bool = False) -> Dict:
    """Fill `folder` with the teacher's logits of every view (and with `features`, its
    pooled image embedding of the clean view); resumes finished shards."""
    from distill.nets.sam.checkpoints import load_teacher, read_merged_config
    folder = Path(folder)
    teacher_cfg = read_merged_config(teacher_path)
    if teacher_cfg.img_size != size:
        raise CacheError(f"teacher {teacher_path} takes {teacher_cfg.img_size}px input but "
                         f"size is {size}; merge the teacher at --size {size}")
    crop = crop or CropSpec()
    settings = _settings(sha256_file(teacher_path), teacher_cfg.to_dict(), size, views, seed,
                         noise_mix, [s.name for s in dataset.samples], crop, car_size,
                         features)
    index_path = folder / INDEX
    shards: List[Dict] = []
    if index_path.exists():
        old = _read_index(index_path)
        keys = set(settings) | set(old.get("settings", {}))
        changed = sorted(k for k in keys if old.get("settings", {}).get(k) != settings.get(k))
        if changed:
            raise CacheError(f"cache {folder} was made with other settings ({', '.join(changed)}"
                             "); use another work folder or delete this cache")
        shards = old["shards"]
    entries = plan(dataset, views, seed, noise_mix, crop)
    chunks = [entries[i:i + shard_size] for i in range(0, len(entries), shard_size)]
    done = len(shards)
    for k, rec in enumerate(shards):
        _check_shard(folder, rec, k, settings["logit_shape"])
    if done < len(chunks):
        teacher = load_teacher(teacher_path).to(device)
        log.info("teacher %s on %s: %d views in %d shards (%d done)", teacher_path.name,
                 device, len(entries), len(chunks), done)
    for k in range(done, len(chunks)):
        t0 = time.perf_counter()
        logits, feats = _run_teacher(teacher, dataset, chunks[k], size, batch, device,
                                     car_size, features)
        name = f"shard_{k:05d}.npy"
        atomic_write(folder / name, lambda tmp, a=logits: _save_npy(tmp, a))
        rec = {"file": name, "count": len(chunks[k]), "sha256": sha256_file(folder / name),
               "entries": [{"name": e.name, "image_index": e.image_index,
                            "view": e.view.to_dict()} for e in chunks[k]]}
        if feats is not None:
            fname = f"feat_{k:05d}.npy"
            atomic_write(folder / fname, lambda tmp, a=feats: _save_npy(tmp, a))
            rec["features"] = {"file": fname, "sha256": sha256_file(folder / fname)}
        shards.append(rec)
        atomic_write_text(index_path, json.dumps({"settings": settings, "shards": shards}))
        if progress:
            progress(k + 1, len(chunks))
        log.debug("shard %d/%d in %.1f s", k + 1, len(chunks), time.perf_counter() - t0)
    return {"settings": settings, "shards": shards}


@torch.no_grad()
def _run_teacher(teacher, dataset: CrackDataset, chunk: List[Entry], size: int, batch: int,
                 device: str, car_size: int, features: bool = False
                 ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    out, feats = [], []
    for i in range(0, len(chunk), batch):
        part = chunk[i:i + batch]
        imgs = [render_view(*dataset.load(e.image_index), e.view, size, car_size)[0]
                for e in part]
        _, quarter = teacher(bgr_to_unit_rgb(np.stack(imgs)).to(device))
        out.append(quarter.float().cpu().numpy().astype(np.float16))
        if features:
            clean = [render_view(*dataset.load(e.image_index), replace(e.view, noise="clean"),
                                 size, car_size)[0] for e in part]
            feats.append(teacher_features(teacher, np.stack(clean), device))
    return np.concatenate(out), (np.concatenate(feats) if features else None)


@torch.no_grad()
def teacher_features(teacher, images: np.ndarray, device: str) -> np.ndarray:
    """The teacher's image embedding (1/16) average-pooled to 1/32, float16."""
    t = teacher
    x = bgr_to_unit_rgb(images).to(device)
    x = (x * t.cfg.input_scale - t.pixel_mean) / t.pixel_std
    emb = torch.nn.functional.avg_pool2d(t.image_encoder(x), 2)
    return emb.float().cpu().numpy().astype(np.float16)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)


def _read_index(path: Path) -> Dict:
    try:
        data = json.loads(path.read_text())
        assert isinstance(data["settings"], dict) and isinstance(data["shards"], list)
        return data
    except (OSError, ValueError, KeyError, AssertionError, TypeError) as e:
        raise CacheError(f"{path}: not a readable cache index ({type(e).__name__}); delete "
                         "the cache folder to rebuild it") from e


def _check_shard(folder: Path, rec: Dict, k: int, shape: List[int]) -> None:
    path = folder / rec["file"]
    if not path.is_file():
        raise CacheError(f"{path}: shard {k} listed in the index is missing")
    if sha256_file(path) != rec["sha256"]:
        raise CacheError(f"{path}: shard {k} is corrupt (its SHA-256 differs from the index); "
                         "delete it and its index entry, or the cache folder, to rebuild")
    feat = rec.get("features")
    if feat is not None:
        fpath = folder / feat["file"]
        if not fpath.is_file() or sha256_file(fpath) != feat["sha256"]:
            raise CacheError(f"{fpath}: feature shard {k} is missing or corrupt; delete the "
                             "cache folder to rebuild it")


class TeacherCache:
    """Read-only access to a finished cache: entries and their logits, shard by shard."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        if not (self.folder / INDEX).is_file():
            raise CacheError(f"{self.folder}: no teacher cache here (no {INDEX}); run "
                             "crack-distill cache first")
        data = _read_index(self.folder / INDEX)
        self.settings = data["settings"]
        self.shards = data["shards"]
        self.shape = tuple(self.settings["logit_shape"])
        self.entries: List[Tuple[int, int, Entry]] = []
        for k, rec in enumerate(self.shards):
            for row, e in enumerate(rec["entries"]):
                self.entries.append((k, row, Entry(e["name"], e["image_index"],
                                                   View.from_dict(e["view"]))))
        expected = len(self.settings["names"]) * self.settings["views"]
        if len(self.entries) != expected:
            raise CacheError(f"{self.folder}: cache is unfinished ({len(self.entries)} of "
                             f"{expected} views); run crack-distill cache to complete it")
        self._loaded: Dict[object, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _shard(self, k: int) -> np.ndarray:
        rec = self.shards[k]
        if k not in self._loaded:
            _check_shard(self.folder, rec, k, list(self.shape))
        return self._load(k, rec["file"], (rec["count"], *self.shape), "shard")

    def _load(self, key: object, name: str, shape: tuple, what: str) -> np.ndarray:
        """A float16 array file of the cache, checked against the index's shape on load,
        kept among the last few loaded."""
        if key not in self._loaded:
            path = self.folder / name
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise CacheError(f"{path}: unreadable {what} ({e})") from e
            if arr.shape != shape or arr.dtype != np.float16:
                raise CacheError(f"{path}: {what} holds {arr.dtype}{list(arr.shape)}, the index "
                                 f"says float16{list(shape)}")
            if len(self._loaded) > 8:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[key] = arr
        return self._loaded[key]

    def get(self, i: int) -> Tuple[Entry, np.ndarray]:
        k, row, entry = self.entries[i]
        return entry, self._shard(k)[row]

    @property
    def has_features(self) -> bool:
        return "feature_shape" in self.settings

    def features(self, i: int) -> np.ndarray:
        """The teacher's pooled features (C, size/32, size/32) of entry i's clean view."""
        if not self.has_features:
            raise CacheError(f"{self.folder}: this cache holds no teacher features; rebuild "
                             "it for --kd rfkd")
        k, row, _ = self.entries[i]
        rec = self.shards[k]
        return self._load(("f", k), rec["features"]["file"],
                          (rec["count"], *self.settings["feature_shape"]), "feature shard")[row]

    def verify(self) -> None:
        for k, rec in enumerate(self.shards):
            _check_shard(self.folder, rec, k, list(self.shape))

    def bytes_per_view(self, features: bool = False) -> float:
        """Bytes on disk per view: of the logits, or with `features` of the features."""
        if features:
            files = [r["features"]["file"] for r in self.shards if "features" in r]
        else:
            files = [r["file"] for r in self.shards]
        return sum((self.folder / f).stat().st_size for f in files) / max(1, len(self))
