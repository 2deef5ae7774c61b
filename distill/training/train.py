"""Train a student (HRNet-W18 by default; see distill.nets.students):
L = hard + kd_weight * CWD(T) against the cached teacher logits, or those of an OpenVINO IR
run on each view as it is drawn (train.teacher_ir), or the hard loss alone with train.kd
false (the no-KD baseline).

AdamW with linear warm-up then poly decay; a checkpoint at every epoch end (and every
`save_every` iterations), `best.pth` on validation IoU, and `last.pth` to resume from:
a killed run picks up at the iteration it last saved and ends with the same weights as
an uninterrupted one (the data order and every view derive from the seed). Several GPUs
(or CPU processes with gloo) through torchrun: each takes its share of every batch.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from crack_common.files import atomic_write
from crack_common.metrics import MetricAccumulator, labelled
from crack_common.progress import bar as progress_bar
from distill.config import DistillConfig
from distill.data.datasets import CrackDataset
from distill.data.mixture import source_of
from distill.data.photometric import jitter, jitter_rng
from distill.data.registration import REGISTER_RADIUS, best_offset, shift_mask
from distill.data.views import fit, plan_view, render_view
from distill.nets import students
from distill.nets.hrnet import HRNetFCN
from distill.nets.student_io import bgr_to_tensor, evaluating
from distill.nets.student_weights import load_student_weights, read_checkpoint
from distill.training.cache import CacheError, Entry, TeacherCache, plan
from distill.training.losses import IGMSDA, DistillLoss, FeatureAdapter, Temperature, hard_loss
from distill.training.mixed_precision import all_float, as_float, forward_autocast, warn_if_slow

log = logging.getLogger(__name__)
CHECKPOINT_FORMAT = "crack-car/student"


def build_student(cfg: DistillConfig) -> nn.Module:
    """A fresh student of the configured kind."""
    s = cfg.student
    return students.build(s.name, s.head_kernel, s.width, s.modules, s.blocks,
                          frame_head=s.frame_head, refine=s.refine,
                          centre=s.centre)


class TeacherTargets(NamedTuple):
    """The cached teacher's logits and (RFKD) its pooled features of the clean view."""

    logits: torch.Tensor
    features: torch.Tensor


def _check_sources(key: str, named: Sequence[str], names: List[str]) -> None:
    """A config key listing sources (crop.clear_skip, data.register) must name sources of
    the mixture: a misspelt name would silently leave that set as it is."""
    sources = sorted({source_of(n) for n in names} - {""})
    unknown = sorted(set(named) - set(sources))
    if unknown:
        raise ValueError(f"{key} names {', '.join(unknown)}, not a source of the "
                         f"training mix ({', '.join(sources) or 'a single dataset'})")


class LiveTeacher:
    """An OpenVINO IR of the car's contract as the teacher: its logits on each training
    view, computed as the view is drawn (so fresh views every epoch work with KD)."""

    def __init__(self, path: Path, size: int):
        from edge_app.model.ir_model import IRModel
        try:
            self.model = IRModel(Path(path), "CPU")
        except ValueError as e:  # a missing file or another contract: named by its key
            raise ValueError(f"train.teacher_ir {e}") from e
        if self.model.size != size:
            raise ValueError(f"train.teacher_ir {path} takes {self.model.size}-px frames; "
                             f"the student trains on {size}-px views (set size to match)")

    def __call__(self, images: List[np.ndarray]) -> torch.Tensor:
        """(N, 2, S, S) float32 logits of BGR u8 views (S, S, 3)."""
        return torch.from_numpy(np.stack([self.model.infer(img) for img in images]))


class TrainData:
    """Training samples: (normalised image, mask, teacher logits or None)."""

    def __init__(self, dataset: CrackDataset, cfg: DistillConfig,
                 cache: Optional[TeacherCache], live: Optional[LiveTeacher] = None):
        self.dataset, self.size, self.cache, self.live = dataset, cfg.size, cache, live
        self.photometric, self.seed = cfg.train.photometric, cfg.train.seed
        self.car_size, self.crop = cfg.crop.car_size, cfg.crop_spec()
        self.views, self.noise_mix, self.data_seed = (cfg.cache.views, cfg.cache.noise_mix,
                                                      cfg.data.seed)
        self.fresh = cfg.train.fresh_views
        self.features = cfg.train.kd_mode == "rfkd" and cache is not None
        if self.features and not cache.has_features:
            raise CacheError(f"cache {cache.folder} holds no teacher features; RFKD needs a "
                             "cache made with train.kd_mode rfkd (use another work folder)")
        names = [s.name for s in dataset.samples]
        if self.crop.clear_share:
            _check_sources("crop.clear_skip", self.crop.clear_skip, names)
        _check_sources("data.register", cfg.data.register, names)
        self.register = set(cfg.data.register)
        self.offsets: Dict[int, Tuple[int, int]] = {}  # per image, measured once
        if cache is not None:
            s = cache.settings
            if (s["names"] != names or s["size"] != cfg.size
                    or s.get("crop") != self.crop.settings()):
                raise CacheError(f"cache {cache.folder} was made for other images, another "
                                 "size or other crops than this training set; rebuild it "
                                 "(crack-distill cache)")
            self.entries: List[Entry] = [e for _, _, e in cache.entries]
        else:
            self.entries = plan(dataset, self.views, self.data_seed, self.noise_mix, self.crop)
        per_image = dataset.sample_weights()
        self.weights = None
        if per_image is not None:
            w = np.array([per_image[e.image_index] for e in self.entries], float)
            self.weights = w / w.sum() if w.sum() > 0 else None

    def __len__(self) -> int:
        return len(self.entries)

    def order(self, seed: int, epoch: int, size: int) -> np.ndarray:
        """The entries of an epoch: `size` draws by the dataset weights, or (size 0 and
        equal weights) a permutation of all entries."""
        rng = np.random.default_rng([seed, epoch])
        uniform = self.weights is None or np.allclose(self.weights, self.weights[0])
        if not size and uniform:
            return rng.permutation(len(self.entries))
        return rng.choice(len(self.entries), size or len(self.entries), p=self.weights)

    def entry(self, i: int, epoch: Optional[int]) -> Entry:
        """Entry i; with fresh views, its view is drawn anew for every epoch."""
        e = self.entries[i]
        if self.fresh and epoch:
            v = epoch * self.views + i % self.views
            e = Entry(e.name, e.image_index, plan_view(self.data_seed, e.image_index, v,
                                                       self.noise_mix,
                                                       self.crop.for_sample(e.name)))
        return e

    def photo(self, index: int, name: str) -> Tuple[np.ndarray, np.ndarray]:
        """(image, mask) of a training photo; the mask moved onto its cracks when its source
        is in data.register."""
        img, mask = self.dataset.load(index)
        if self.register and source_of(name) in self.register:
            if index not in self.offsets:
                self.offsets[index] = best_offset(img, mask, REGISTER_RADIUS)
            mask = shift_mask(mask, *self.offsets[index])
        return img, mask

    def batch(self, indices: List[int], epoch: Optional[int] = None
              ) -> Tuple[torch.Tensor, torch.Tensor,
                         Union[None, torch.Tensor, TeacherTargets]]:
        """Images, masks and teacher logits of `indices` (TeacherTargets when the student
        learns the teacher's features too); with `epoch`, a share (train.photometric) of
        the images is re-lit, differently every epoch."""
        imgs, masks, logits, feats = [], [], [], []
        for i in indices:
            entry = self.entry(i, epoch)
            img, mask = render_view(*self.photo(entry.image_index, entry.name), entry.view,
                                    self.size, self.car_size)
            if epoch is not None and self.photometric > 0:
                rng = jitter_rng(self.seed, epoch, i)
                if rng.random() < self.photometric:
                    img = jitter(img, rng)
            imgs.append(img)
            masks.append(mask)
            if self.cache is not None:
                logits.append(torch.from_numpy(self.cache.get(i)[1].astype(np.float32)))
                if self.features:
                    feats.append(torch.from_numpy(self.cache.features(i).astype(np.float32)))
        teacher = torch.stack(logits) if logits else None
        if self.live is not None:  # the views as the student sees them, re-lit ones too
            teacher = self.live(imgs)
        if feats:
            teacher = TeacherTargets(teacher, torch.stack(feats))
        return bgr_to_tensor(np.stack(imgs)), torch.from_numpy(np.stack(masks)).long(), teacher


def _chain(digest: str, epoch: int, indices: List[int], x: torch.Tensor) -> str:
    """`digest` extended by one batch: its epoch, indices and input bytes."""
    h = hashlib.blake2b(digest.encode(), digest_size=16)
    h.update(f"{epoch}:{indices}".encode())
    h.update(x.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def lr_factor(step: int, total: int, warmup: int, power: float) -> float:
    """Linear warm-up to 1 over `warmup` steps, then (1 - progress) ** power."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    rest = max(1, total - warmup)
    return max(0.0, 1 - (step - warmup) / rest) ** power


def predict_probs(model: nn.Module, images: np.ndarray, device: str) -> np.ndarray:
    """Crack probabilities (N, H, W) of BGR uint8 images (N, H, W, 3)."""
    with evaluating(model):
        return model(bgr_to_tensor(images).to(device)).softmax(1)[:, 1].cpu().numpy()


def validate(model: nn.Module, dataset: CrackDataset, size: int, device: str,
             threshold: float = 0.5, batch: int = 4, limit: int = 0) -> Dict[str, float]:
    """Per-image mean metrics of whole photos squeezed to size x size (as the car sees);
    with `limit`, of that many pairs spread evenly over the set. Also `iou_cracked`, the
    mean IoU over the photos with a crack (when any), which chooses the best checkpoint:
    a crack-free photo scores 1.0 for an empty prediction, so on a small or crack-free
    heavy split the plain mean could crown a model that marks nothing."""
    acc, cracked = MetricAccumulator(), MetricAccumulator()
    picks = list(range(len(dataset)))
    if limit and limit < len(picks):
        picks = np.linspace(0, len(picks) - 1, limit).astype(int).tolist()
    for i in range(0, len(picks), batch):
        pairs = [fit(*dataset.load(j), size) for j in picks[i:i + batch]]
        probs = predict_probs(model, np.stack([p[0] for p in pairs]), device)
        for prob, (_, mask) in zip(probs, pairs):
            c = acc.add(prob > threshold, *labelled(mask))
            if c.tp + c.fn:
                cracked.extend([c])
    out = acc.mean()
    if len(cracked):
        out["iou_cracked"] = cracked.mean()["iou"]
    return out


def selection_score(metrics: Dict[str, float]) -> float:
    """What the best checkpoint is chosen by: the IoU on validation photos with cracks
    when there are any (see validate), else the plain mean IoU; -1 without validation."""
    return metrics.get("iou_cracked", metrics.get("iou", -1.0))


@torch.no_grad()
def calibrate_offsets(model: nn.Module, data: TrainData, device: str, limit: int = 32) -> float:
    """Soft-only training: CWD cannot see a constant added to a channel (a softmax over
    positions is blind to it), so the crack-vs-background offset of the student's logits
    is left undetermined. Set it from the teacher's logits alone: the shift of the
    student's logit difference that best reproduces the teacher's masks (IoU over up to
    `limit` views). Returns the shift applied to the head's biases."""
    if data.cache is None and data.live is None:
        return 0.0
    x, _, teacher = data.batch(list(range(min(limit, len(data)))))
    if isinstance(teacher, TeacherTargets):
        teacher = teacher.logits
    with evaluating(model):
        student = model(x.to(device)).cpu()
    teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear",
                            align_corners=False)  # as the teacher upsamples its own output
    d_s = (student[:, 1] - student[:, 0]).flatten()
    t_mask = (teacher[:, 1] > teacher[:, 0]).flatten()
    candidates = torch.quantile(-d_s, torch.linspace(0.0, 1.0, 201))
    best, shift = -1.0, 0.0
    for c in candidates.tolist():
        s_mask = d_s + c > 0
        union = (s_mask | t_mask).sum().item()
        iou = (s_mask & t_mask).sum().item() / union if union else 1.0
        if iou > best:
            best, shift = iou, c
    bias = students.classifier(model).bias
    bias[1] += shift / 2
    bias[0] -= shift / 2
    return shift


@dataclass
class TrainState:
    epoch: int = 0
    iteration: int = 0  # batches done in `epoch`
    step: int = 0
    best_iou: float = -1.0
    history: Optional[List[Dict[str, float]]] = None
    # a digest chained over every step's batch (its indices and input bytes): equal for two
    # runs that trained on the same inputs in the same order, a killed-and-resumed run too
    batches: str = ""


class Trainer:
    def __init__(self, cfg: DistillConfig, train_ds: CrackDataset, val_ds: CrackDataset,
                 work: Path, progress: bool = True):
        self.cfg, self.work, self.progress = cfg, Path(work), progress
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        t = cfg.train
        self.device = t.device
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if t.device.startswith("cuda") else "gloo"
            dist.init_process_group(backend)
            if t.device.startswith("cuda"):
                self.device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
        live = LiveTeacher(Path(t.teacher_ir), cfg.size) if t.kd and t.teacher_ir else None
        cache = TeacherCache(self.work / "cache") if t.kd and live is None else None
        self.data = TrainData(train_ds, cfg, cache, live)
        self.val_ds = val_ds
        torch.manual_seed(t.seed)
        self.model = build_student(cfg)
        if cfg.student.init:
            report = load_student_weights(self.model, Path(cfg.student.init),
                                          calibration=self._calibration_views)
            log.info("student init %s: %s", cfg.student.init, report.summary())
        else:  # a pretrained-encoder student starts from its ImageNet weights
            pretrained = students.load_pretrained(self.model)
            if pretrained:
                log.info("student %s: %d ImageNet encoder tensors loaded (%d classifier "
                         "tensors skipped)", cfg.student.name, len(pretrained["loaded"]),
                         len(pretrained["skipped"]))
        self.model.to(self.device)
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        warn_if_slow(t.bf16, self.device)
        dynamic = t.temperature == "dynamic"
        temp = Temperature(3.0 if dynamic else float(t.temperature), dynamic, t.t_min, t.t_max)
        self.igmsda = None
        if t.hard_loss == "igmsda":
            head = students.classifier(self.model)
            self.igmsda = IGMSDA(head.in_channels, head.out_channels, t.igmsda_alpha,
                                 t.igmsda_lambda)
            # the classifier's input (its pixel features) of the latest forward pass
            head.register_forward_pre_hook(lambda _m, args: setattr(self, "_feats", args[0]))
        self.frame_igmsda = None
        if cfg.student.frame_head and t.hard_loss == "igmsda":
            head = self.model.frame_head.classifier
            self.frame_igmsda = IGMSDA(head.in_channels, head.out_channels, t.igmsda_alpha,
                                       t.igmsda_lambda).to(self.device)
        self.loss = DistillLoss(t.kd_weight if t.kd else 0.0, temp, t.hard_weight,
                                igmsda=self.igmsda,
                                region="lovasz" if t.hard_loss == "ce_lovasz" else "dice",
                                soft=t.kd_mode
                                ).to(self.device)
        if self.frame_igmsda is not None:  # its class statistics go into the checkpoints
            self.loss.frame_igmsda = self.frame_igmsda
        if self.data.features:  # RFKD: the adapter trains with the student, saved with it
            _, channels, _ = students.coarsest(self.model)
            self.loss.feature_adapter = FeatureAdapter(
                channels, cache.settings["feature_shape"][0]).to(self.device)
            students.keep_coarsest(self.model, lambda f: setattr(self, "_coarse", f))
        params = list(self.model.parameters()) + [p for p in self.loss.parameters()
                                                  if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
        self.net = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
        self.epoch_size = t.epoch_size or len(self.data)
        self.per_epoch = math.ceil(self.epoch_size / t.batch)
        self.total = self.per_epoch * t.epochs
        self.state = TrainState(history=[])
        self.ckpt_dir = self.work / "checkpoints"
        # train.epochs may change between runs: a run can be lengthened or shortened
        # (the learning-rate schedule follows the new length from the step it resumes at)
        self.digest = cfg.digest("train", "student", "size", "data", "cache", "crop",
                                 ignore=("train.epochs",))

    def _calibration_views(self, count: int = 32) -> torch.Tensor:
        """Normalised training views spread over the set (for BN statistics when the
        student starts from an IR)."""
        picks = np.linspace(0, len(self.data) - 1, min(count, len(self.data))).astype(int)
        return self.data.batch(picks.tolist())[0]

    # ------------------------------------------------------------ checkpoints
    def _save(self, path: Path) -> None:
        if self.rank:
            return
        payload = {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                   "optimizer": self.opt.state_dict(), "loss": self.loss.state_dict(),
                   "state": self.state.__dict__, "config": self.cfg.to_dict(),
                   "digest": self.digest}
        atomic_write(path, lambda tmp: torch.save(payload, str(tmp)))

    def resume(self) -> bool:
        last = self.ckpt_dir / "last.pth"
        if not last.is_file():
            return False
        ck = torch.load(str(last), map_location=self.device, weights_only=False)
        if ck.get("digest") != self.digest:
            raise ValueError(f"{last} was written with other train/student/data settings; "
                             "use another work folder or delete the checkpoints to start over")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.loss.load_state_dict(ck["loss"])
        self.state = TrainState(**ck["state"])
        if self.state.step > self.total:
            raise ValueError(f"{last} is {self.state.step} steps in, past the "
                             f"{self.total} steps of {self.cfg.train.epochs} epochs")
        log.info("resuming at epoch %d, iteration %d", self.state.epoch + 1, self.state.iteration)
        return True

    # ------------------------------------------------------------ loop
    def _set_lr(self) -> None:
        t = self.cfg.train
        f = lr_factor(self.state.step, self.total, t.warmup_iters, t.poly_power)
        for g in self.opt.param_groups:
            g["lr"] = t.lr * f

    def _order(self, epoch: int) -> np.ndarray:
        return self.data.order(self.cfg.train.seed, epoch, self.cfg.train.epoch_size)

    def _indices(self, order: np.ndarray, iteration: int) -> List[int]:
        b = self.cfg.train.batch
        idx = order[iteration * b:(iteration + 1) * b].tolist()
        return idx[self.rank::self.world] or idx[:1]

    def run(self) -> Dict[str, object]:
        from concurrent.futures import ThreadPoolExecutor
        t, s = self.cfg.train, self.state
        self.model.train()
        bar = _bar(self.total, s.step, self.progress and not self.rank)
        t0 = time.perf_counter()
        # the next batch is read and augmented (OpenCV and numpy release the GIL) while
        # the model trains on this one; its content depends only on its indices
        pool = ThreadPoolExecutor(1)
        try:
            self._loop(pool, bar)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close()
        if self.world > 1:
            dist.barrier()
        return {"epochs": t.epochs, "steps": s.step, "best_val_iou": s.best_iou,
                "history": s.history, "seconds": time.perf_counter() - t0,
                "checkpoint": str(self.ckpt_dir / "best.pth")}

    def _loop(self, pool, bar) -> None:
        t, s = self.cfg.train, self.state
        self._sums: Dict[str, float] = {}
        self._count = 0
        while s.epoch < t.epochs:
            order = self._order(s.epoch)
            epoch = s.epoch
            ahead = pool.submit(self.data.batch, self._indices(order, s.iteration), epoch)
            while s.iteration < self.per_epoch:
                x, y, teacher = ahead.result()
                s.batches = _chain(s.batches, epoch, self._indices(order, s.iteration), x)
                if s.iteration + 1 < self.per_epoch:
                    ahead = pool.submit(self.data.batch, self._indices(order, s.iteration + 1),
                                        epoch)
                if t.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                self._set_lr()
                parts = self._losses(x, y, teacher)
                self.opt.zero_grad(set_to_none=True)
                parts["total"].backward()
                self.opt.step()
                for k, v in parts.items():
                    if k != "temperature":
                        self._sums[k] = self._sums.get(k, 0.0) + float(v.detach())
                self._count += 1
                s.iteration += 1
                s.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{parts['total'].item():.4f}")
                if t.save_every and s.step % t.save_every == 0 and s.iteration < self.per_epoch:
                    self._save(self.ckpt_dir / "last.pth")
            self._end_epoch()

    def _losses(self, x: torch.Tensor, y: torch.Tensor,
                teacher: Union[None, torch.Tensor, TeacherTargets]) -> Dict[str, torch.Tensor]:
        """The loss terms of one batch (auxiliary heads, frame head and RFKD's feature
        term included)."""
        y = y.to(self.device)
        teacher_feats = None
        if isinstance(teacher, TeacherTargets):
            teacher, teacher_feats = teacher.logits, teacher.features.to(self.device)
        t = self.cfg.train
        with forward_autocast(t.bf16, self.device):
            logits = as_float(self.net(x.to(self.device)))
        extra = {}
        if self.igmsda is not None:
            extra = {"features": as_float(self._feats), "progress": self._progress(),
                     "weight": students.classifier(self.model).weight}
        parts = self.loss(logits, y, None if teacher is None else teacher.to(self.device),
                          **extra)
        if teacher_feats is not None and t.feature_weight:
            parts["feature"] = self.loss.feature_adapter(as_float(self._coarse), teacher_feats)
            parts["total"] = parts["total"] + t.feature_weight * parts["feature"]
        aux = all_float(getattr(self.model, "aux_logits", None))
        if aux and t.aux_weight:
            parts["aux"] = sum(hard_loss(a, y) for a in aux)
            parts["total"] = parts["total"] + t.aux_weight * parts["aux"]
        frame = as_float(getattr(self.model, "frame_logits", None))
        if frame is not None and t.frame_weight:
            parts["frame"] = self._frame_loss(frame, y)
            parts["total"] = parts["total"] + t.frame_weight * parts["frame"]
        return parts

    def _progress(self) -> float:
        """The share of training done (IGMSDA ramps its augmentation with it)."""
        return self.state.step / max(1, self.total)

    def _frame_loss(self, frame: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The frame head's loss: a view is a crack frame when at least
        train.frame_min_share of its pixels are crack; IGMSDA or CE as the hard loss."""
        share = (y == 1).flatten(1).float().mean(1)
        label = (share >= max(self.cfg.train.frame_min_share, 1e-9)).long()[:, None, None]
        if self.frame_igmsda is not None:
            head = self.model.frame_head
            return self.frame_igmsda(frame, label, as_float(head.pooled), head.classifier.weight,
                                     self._progress())
        return F.cross_entropy(frame, label)

    def _end_epoch(self) -> None:
        s = self.state
        if self.cfg.train.hard_weight == 0:
            calibrate_offsets(self.model, self.data, self.device)
        metrics = {"epoch": s.epoch + 1}
        metrics.update({f"loss_{k}": v / max(1, self._count) for k, v in self._sums.items()})
        self._sums, self._count = {}, 0
        if not self.rank and len(self.val_ds):
            size = self.cfg.size if self.cfg.crop_spec().whole else self.cfg.crop.car_size
            metrics.update(validate(self.model, self.val_ds, size, self.device,
                                    self.cfg.eval.plain_threshold,
                                    limit=self.cfg.data.val_limit))
            log.info("epoch %d: val IoU %.4f F1 %.4f (IoU on photos with cracks %s)",
                     s.epoch + 1, metrics["iou"], metrics["f1"],
                     f"{metrics['iou_cracked']:.4f}" if "iou_cracked" in metrics else "-")
        s.history.append(metrics)
        s.epoch += 1
        s.iteration = 0
        score = selection_score(metrics)
        improved = score > s.best_iou
        if improved:
            s.best_iou = score
        self._save(self.ckpt_dir / f"epoch_{s.epoch:03d}.pth")
        if improved:
            self._save(self.ckpt_dir / "best.pth")
        self._save(self.ckpt_dir / "last.pth")
        if not self.rank:
            self._write_log()

    def _write_log(self) -> None:
        """training.csv (one row per epoch: loss terms, validation metrics) and
        training.png beside the checkpoints' folder, rewritten after every epoch."""
        import csv
        import io

        from distill.evaluation.plots import plot_training
        rows = self.state.history
        keys = sorted({k for h in rows for k in h}, key=lambda k: (k != "epoch", k))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, keys)
        writer.writeheader()
        writer.writerows(rows)
        from crack_common.files import atomic_write_text
        atomic_write_text(self.work / "training.csv", buf.getvalue())
        plot_training(rows, self.work / "training.png")


def _bar(total: int, initial: int, enabled: bool):
    return progress_bar(total=total, initial=initial, desc="train", unit="it", enabled=enabled)


def read_checkpoint_file(path: Path) -> object:
    """The unpickled content of a checkpoint file, on the CPU; ValueError naming the
    file when it cannot be read (missing, torn, not a torch file)."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__})") from e


def is_student_checkpoint(ck: object) -> bool:
    """Whether `ck` is a checkpoint this trainer wrote (model, config, digest, ...)."""
    return isinstance(ck, dict) and ck.get("format") == CHECKPOINT_FORMAT


def student_config(ck: Dict[str, object]) -> DistillConfig:
    """The configuration a student checkpoint was trained with."""
    from distill.config import load_config
    return load_config(overrides=[dict(ck["config"])])


def load_student(path: Path) -> Tuple[nn.Module, DistillConfig]:
    """A trained student checkpoint (best.pth, last.pth, epoch_*.pth) and its config."""
    from distill.config import load_config
    path = Path(path)
    ck = read_checkpoint_file(path)
    if not is_student_checkpoint(ck):
        tensors = read_checkpoint(path)  # a bare state dict of an HRNet-W18 FCN
        model = HRNetFCN()
        model.load_state_dict(tensors)
        return model.eval(), load_config()
    cfg = student_config(ck)
    model = build_student(cfg)
    model.load_state_dict(ck["model"])
    return model.eval(), cfg
