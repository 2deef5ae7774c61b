"""Several datasets as one training set, each drawn with its own weight.

A source is written `PATH` or `PATH:WEIGHT` (weight 1 when left out). A folder that is
not itself a dataset but holds datasets (such as `realcrack/train`, one folder per
public set) stands for all of them, each with that weight. The weight is the share of
training draws a source gets relative to the others, whatever its size: with
`DeepCrack:2 CRACK500:1` two of three samples come from DeepCrack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from distill.data.datasets import (
    IMAGE_DIRS,
    CrackDataset,
    DatasetError,
    Sample,
    _find_dir,
    open_dataset,
)


@dataclass(frozen=True)
class Source:
    """One dataset folder of a mixture and its sampling weight."""

    root: Path
    weight: float = 1.0
    name: str = ""


def parse_source(text: str) -> Tuple[Path, float]:
    """'PATH' or 'PATH:WEIGHT' -> (path, weight); a weight must be a positive number."""
    path, weight = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            weight = float(tail)
        except ValueError:  # a colon that is part of the path, or a mistyped weight
            if Path(head).is_dir() and not Path(text).exists():
                raise ValueError(f"dataset {text!r}: {tail!r} after ':' is not a weight "
                                 f"(a positive number: {head}:2 draws it twice as often)"
                                 ) from None
        else:
            path = head
            if not (weight > 0 and weight != float("inf")):
                raise ValueError(f"dataset {text!r}: the weight after ':' must be a positive "
                                 "finite number")
    return Path(path), weight


def _is_dataset(folder: Path, split: Optional[str]) -> bool:
    base = folder / split if split and (folder / split).is_dir() else folder
    return _find_dir(base, IMAGE_DIRS) is not None


def expand_sources(texts: Sequence[str], split: Optional[str] = None) -> List[Source]:
    """Sources from their texts; a folder of datasets becomes one source per dataset."""
    out: List[Source] = []
    for text in texts:
        root, weight = parse_source(text)
        if not root.is_dir():
            raise DatasetError(root, [f"{root}: no such folder"])
        if _is_dataset(root, split):
            out.append(Source(root, weight, root.name))
            continue
        subs = [d for d in sorted(root.iterdir()) if d.is_dir() and _is_dataset(d, split)]
        if not subs:
            raise DatasetError(root, [f"{root}: neither a dataset (an image folder beside a "
                                      "mask folder) nor a folder of datasets"])
        out += [Source(d, weight, d.name) for d in subs]
    names = [s.name for s in out]
    for i, s in enumerate(out):  # keep names unique: they prefix the sample names
        if names.count(s.name) > 1:
            out[i] = Source(s.root, s.weight, f"{s.name}#{names[:i + 1].count(s.name)}")
    return out


def source_of(sample_name: str) -> str:
    """The source of a mixture's pair (MixedDataset names them `SOURCE/STEM`); '' for a
    pair of a plain dataset."""
    return sample_name.partition("/")[0] if "/" in sample_name else ""


class MixedDataset(CrackDataset):
    """The pairs of several datasets; sample names are `SOURCE/STEM`."""

    def __init__(self, parts: Sequence[Tuple[Source, CrackDataset]]):
        if not parts:
            raise DatasetError(Path("."), ["no dataset given: --data DIR (or data.sources)"])
        self.parts = list(parts)
        self.root = self.parts[0][1].root if len(parts) == 1 else Path(".")
        self.samples: List[Sample] = []
        self.owner: List[int] = []
        for k, (src, ds) in enumerate(self.parts):
            self.samples += [Sample(f"{src.name}/{s.name}", s.image, s.mask, s.ignore)
                             for s in ds.samples]
            self.owner += [k] * len(ds)

    def sample_weights(self) -> Optional[np.ndarray]:
        """Each pair's probability of being drawn: its source's weight shared by its pairs."""
        counts = np.bincount(self.owner, minlength=len(self.parts)).astype(float)
        w = np.array([src.weight for src, _ in self.parts], float)
        share = np.where(counts > 0, w / np.maximum(counts, 1), 0.0)
        p = share[np.asarray(self.owner, int)]
        return p / p.sum() if p.sum() > 0 else p

    def check(self, progress: bool = True) -> Dict[str, int]:
        problems: List[str] = []
        pairs = crack_free = 0
        for _, ds in self.parts:
            try:
                c = ds.check(progress)
            except DatasetError as e:
                problems += e.problems
            else:
                pairs, crack_free = pairs + c["pairs"], crack_free + c["crack_free"]
        if problems:
            raise DatasetError(self.root, problems)
        return {"pairs": pairs, "crack_free": crack_free}

    def split(self, ratio: float, seed: int = 0) -> Tuple[MixedDataset, MixedDataset]:
        """Each source split on its own (seeded), so validation holds every source."""
        first, second = [], []
        for src, ds in self.parts:
            if len(ds) < 2:
                first.append((src, ds))
                continue
            a, b = ds.split(ratio, seed)
            first.append((src, a))
            second.append((src, b))
        return MixedDataset(first), MixedDataset(second) if second else _empty(self)

    def subset(self, names: Sequence[str]) -> MixedDataset:
        wanted: Dict[str, List[str]] = {}
        for n in names:
            src, _, stem = n.partition("/")
            wanted.setdefault(src, []).append(stem)
        return MixedDataset([(src, ds.subset(wanted.get(src.name, [])))
                             for src, ds in self.parts])


def _empty(like: MixedDataset) -> MixedDataset:
    return MixedDataset([(src, ds.subset([])) for src, ds in like.parts])


def open_mixture(texts: Sequence[str], split: Optional[str] = None) -> MixedDataset:
    """Open every source (all problems of all sources reported at once)."""
    parts, problems = [], []
    for src in expand_sources(texts, split):
        try:
            parts.append((src, open_dataset(src.root, split)))
        except DatasetError as e:
            problems += e.problems
    if problems:
        raise DatasetError(Path(texts[0]) if len(texts) == 1 else Path("."), problems)
    return MixedDataset(parts)
