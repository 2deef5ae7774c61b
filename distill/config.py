"""The workstation job's configuration: one YAML document, every key with a default.

`crack-distill ... --config distill.yaml --set train.epochs=5` reads the file over the
defaults, then the overrides; an unknown key or a bad value fails at once, naming the key
and what is allowed. `DistillConfig().to_yaml()` prints the documented defaults
(`crack-distill config --defaults`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import yaml

from crack_common.yamlconfig import ConfigError, load, need, parse_override

__all__ = ["ConfigError", "DistillConfig", "load_config", "parse_override", "validate"]


# the distillation modes (train.kd_mode): channel-wise (the paper's), channel-wise with
# the teacher's features, pixel-wise KD
KD_MODES = ("cwd", "rfkd", "pixel")
# the hard losses by name (train.hard_loss), as the model card states them
HARD_LOSSES = {"ce_dice": "(0.2 CE + 0.8 Dice)", "igmsda": "(0.2 IGMSDA + 0.8 Dice)",
               "ce_lovasz": "(0.2 CE + 0.8 Lovasz hinge)"}
# the students by name (built by distill.nets.students)
# effnet_liteN: an ImageNet-pretrained EfficientNet-LiteN encoder with the car's light
# decoder; effnet_liteN_wide: the same encoder with a teacher's wide decoder
STUDENTS = ("hrnet_w18", "hrsegnet_b16", "hrsegnet_b32", "hrsegnet_b48", "pct",
            "effnet_lite0", "effnet_lite1", "effnet_lite2",
            "effnet_lite0_wide", "effnet_lite1_wide", "effnet_lite2_wide")
# test-time flip sets by name (export.flips, crack-distill flips): the image axes mirrored
# in each run, () = the frame as it is
FLIP_SETS = {"none": ((),), "h": ((), ("w",)), "hv": ((), ("w",), ("h",), ("h", "w"))}
ENSEMBLE_AVERAGES = ("logits", "probabilities")  # what an ensemble IR averages
# input centring of the HrSegNet students (student.centre; distill.nets.student_io)
CENTRINGS = ("none", "colour", "brightness")
# keys (section.key) added after work folders were made, with their defaults
ADDED_LATER = {"student.name": "hrnet_w18", "train.hard_loss": "ce_dice",
               "train.igmsda_alpha": 2.5, "train.igmsda_lambda": 0.5, "train.aux_weight": 0.4,
               "student.frame_head": False, "student.refine": False,
               "student.centre": "none",
               "train.frame_weight": 0.2,
               "train.frame_min_share": 0.001,
               "train.kd_mode": "cwd", "train.feature_weight": 1.0,
               "crop.clear_share": 0.0, "crop.clear_max_area": 0.25, "crop.clear_skip": [],
               "export.flips": "none", "train.bf16": False, "train.teacher_ir": "",
               "data.register": []}


@dataclass
class DataConfig:
    root: str = ""  # dataset folder (Khanhha or CrackForest layout)
    sources: List[str] = field(default_factory=list)  # more datasets: PATH or PATH:WEIGHT;
    # a folder of datasets stands for each of them (weights: share of training draws)
    split: Optional[str] = None  # sub-folder such as "train" when the dataset has one
    val_ratio: float = 0.1  # share of the pairs held out for validation (per dataset)
    val_limit: int = 0  # validate on at most this many held-out pairs (0: all)
    seed: int = 0  # seed of the split
    register: List[str] = field(default_factory=list)  # sources whose training masks are
    # moved onto the cracks their photos show, each by its own offset within 2 px (see
    # `crack-distill data check --registration`); validation and test masks stay as given


@dataclass
class CacheConfig:
    views: int = 4  # augmented views per image (view 0 is the image as it is)
    noise_mix: float = 0.0  # share of views with a noise case (RFKD-style mixing)
    shard_size: int = 64  # views per shard file
    batch: int = 4  # teacher batch size
    teacher_device: str = "cpu"  # torch device of the teacher (cuda, cuda:1, cpu)


@dataclass
class CropConfig:
    """Random crops of each view: area share and aspect ratio (w/h in photo pixels),
    drawn log-uniformly, squeezed to the square input as the car squeezes its frames."""

    min_area: float = 1.0  # 1.0 / 1.0: whole photos only
    max_area: float = 1.0  # above 1: windows larger than the photo (zoomed out, the
    # photo reflected beyond its edges), so cracks are also seen thinner than on the car
    min_aspect: float = 1.0
    max_aspect: float = 1.0
    car_size: int = 448  # noise cases and validation as on the whole photo at this side
    clear_share: float = 0.0  # share of crops moved to where no crack comes near (hard
    # negatives from the photos' own sound surface), at most clear_max_area of the photo
    clear_max_area: float = 0.25
    clear_skip: List[str] = field(default_factory=list)  # datasets (source names) whose
    # photos give no clear crop: sets whose sound-looking surface hides unlabelled cracks


@dataclass
class StudentConfig:
    name: str = "hrnet_w18"  # hrnet_w18, hrsegnet_b16|b32|b48, pct, effnet_lite0|1|2 (an
    # ImageNet-pretrained encoder, light decoder) or effnet_lite0|1|2_wide (wide decoder)
    width: int = 18  # HRNet width (18 = HRNet-W18; smaller only for tests)
    modules: List[int] = field(default_factory=lambda: [1, 4, 3])  # stages 2-4 (W18: 1, 4, 3)
    blocks: int = 4  # basic blocks per branch (W18: 4)
    head_kernel: int = 1  # FCN head conv kernel (1 as mmsegmentation, or 3)
    # weights to start from: timm, mmsegmentation, a student checkpoint or one FP16 IR
    # (effnet_* students start from their encoder's ImageNet weights without one)
    init: Optional[str] = None
    frame_head: bool = False  # a frame-level crack/no-crack head: the IR's crack_score
    refine: bool = False  # HrSegNet: a full-resolution edge refiner on the logits
    centre: str = "none"  # HrSegNet: colour (each channel's mean moved to one grey) or
    #                       brightness (one mean over all channels, colour kept): robust to
    #                       a uniformly dimmer or brighter frame


@dataclass
class TrainConfig:
    epochs: int = 20
    batch: int = 8
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_iters: int = 100  # linear warm-up, then poly decay
    poly_power: float = 0.9
    kd: bool = True  # False: the no-KD baseline (hard loss only, no cache needed)
    kd_weight: float = 5.0  # weight of the distillation loss
    kd_mode: str = "cwd"  # cwd: logits only; rfkd: also the teacher's features (the cache
    # stores them), matched through a 1x1 adapter on the student's coarsest features;
    # pixel: Hinton's KD at every pixel (KL of the class distributions at T) in place of CWD
    feature_weight: float = 1.0  # weight of RFKD's feature loss
    hard_weight: float = 1.0  # weight of 0.2 CE + 0.8 Dice (0: soft loss only)
    temperature: Union[float, str] = 3.0  # a number, or "dynamic"
    t_min: float = 1.0  # range of a dynamic temperature
    t_max: float = 10.0
    seed: int = 0
    device: str = "cpu"
    save_every: int = 0  # also checkpoint every N iterations (0: at epoch ends only)
    epoch_size: int = 0  # samples drawn per epoch by the dataset weights (0: one pass)
    fresh_views: bool = False  # new crops/transforms/noise every epoch (no-KD, or KD from
    # train.teacher_ir: a cached teacher's logits exist for the cached views only)
    teacher_ir: str = ""  # KD from an OpenVINO IR of the car's contract (e.g. an ensemble
    # of students) run on each training view as it is drawn, in place of the cache
    channels_last: bool = True  # NHWC tensors (faster convolutions on CPU)
    bf16: bool = False  # forward pass under bfloat16 autocast (faster where the CPU has
    # AVX512-BF16 or AMX; weights, gradients and losses stay float32)
    photometric: float = 0.0  # share of training images re-lit each epoch (brightness,
    # contrast, gamma, saturation, hue, colour cast); geometry and teacher logits unchanged
    hard_loss: str = "ce_dice"  # ce_dice: 0.2 CE + 0.8 Dice; igmsda: the CE term replaced by
    # the IGMSDA bound over class-conditional feature augmentations of the pixel classifier;
    # ce_lovasz: the Dice term replaced by the Lovasz hinge (a convex surrogate of 1 - IoU)
    igmsda_alpha: float = 2.5  # IGMSDA gradient-modulation constant alpha_0
    igmsda_lambda: float = 0.5  # IGMSDA augmentation strength, reached linearly by the end
    aux_weight: float = 0.4  # weight of each auxiliary head's hard loss (HrSegNet)
    frame_weight: float = 0.2  # weight of the frame head's loss (IGMSDA or CE, as hard_loss)
    frame_min_share: float = 0.001  # a view is a crack frame from this share of crack pixels


@dataclass
class EvalConfig:
    threshold: Optional[float] = None  # on the crack probability (None: an IR's card's,
    # as the car masks, else 0.5)
    seed_threshold: Optional[float] = None  # hysteresis: only the components above
    # `threshold` that hold a pixel above this are kept (None: an IR's card's, else none;
    # 0: none)
    frame_threshold: Optional[float] = None  # models with a frame head: masks of frames
    # whose crack_score is below it are dropped (None: the card's; 0: never)
    blur: List[int] = field(default_factory=lambda: [1, 5, 9, 13, 17, 21, 25, 31])

    @property
    def plain_threshold(self) -> float:
        """The threshold where no model card speaks (training's validation, checks)."""
        return 0.5 if self.threshold is None else self.threshold

    def mask_rule(self, model: object) -> Tuple[float, Optional[float]]:
        """(threshold, seed threshold) for MODEL's masks: the configured ones, else an IR's
        card's (the car's rule), else 0.5 and none."""
        from edge_app.model.ir_model import mask_rule, model_card
        card = model_card(model) if str(model).lower().endswith(".xml") else {}
        return mask_rule(card, self.threshold, self.seed_threshold)


@dataclass
class ExportConfig:
    size: int = 448  # the car's input side
    int8: bool = False  # also an NNCF post-training-quantised IR (CPU targets)
    calibration: int = 64  # images for INT8 calibration
    flips: str = "none"  # test-time flip averaging inside the IR: none, h (2x compute), hv (4x)


@dataclass
class DistillConfig:
    work: str = "work/distill"  # work folder: cache, checkpoints, exports, reports
    teacher: str = ""  # merged CrackSAM file (crack-distill teacher merge)
    size: int = 448  # training and teacher input side
    data: DataConfig = field(default_factory=DataConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def crop_spec(self):
        """The crop section as the view planner's CropSpec."""
        from distill.data.views import CropSpec
        c = self.crop
        return CropSpec(c.min_area, c.max_area, c.min_aspect, c.max_aspect, c.clear_share,
                        c.clear_max_area, tuple(c.clear_skip))

    def source_texts(self) -> List[str]:
        """data.root (when set) and data.sources, as PATH or PATH:WEIGHT texts."""
        return ([self.data.root] if self.data.root else []) + list(self.data.sources)

    def digest(self, *sections: str, ignore: Sequence[str] = ()) -> str:
        """A short hash of some sections, to tell whether saved work still matches;
        `ignore` names keys (section.key) left out of it. Keys added after work folders
        existed are left out while they hold their defaults, so old work stays valid."""
        d = self.to_dict()
        for key, default in ADDED_LATER.items():
            sec, _, name = key.partition(".")
            if d[sec].get(name) == default:
                d[sec].pop(name)
        for key in ignore:
            sec, _, name = key.partition(".")
            d[sec] = {k: v for k, v in d[sec].items() if k != name}
        part = {s: d[s] for s in sections} if sections else d
        return hashlib.sha256(json.dumps(part, sort_keys=True).encode()).hexdigest()[:16]


def validate(cfg: DistillConfig) -> DistillConfig:
    """Range checks that need more than a type."""
    need(cfg.size % 32 == 0 and cfg.size >= 64, "size", "a multiple of 32, at least 64",
         cfg.size)
    need(0 < cfg.data.val_ratio < 1, "data.val_ratio", "between 0 and 1", cfg.data.val_ratio)
    from distill.data.views import MAX_AREA  # the bound CropSpec itself enforces
    c = cfg.crop
    need(0 < c.min_area <= c.max_area <= MAX_AREA, "crop.min_area/max_area",
         f"0 < min_area <= max_area <= {MAX_AREA:g} (above 1: zoomed out, the photo "
         "reflected at its edges)", (c.min_area, c.max_area))
    need(0 <= c.clear_share <= 1 and 0 < c.clear_max_area <= 1,
         "crop.clear_share/clear_max_area", "shares between 0 and 1",
         (c.clear_share, c.clear_max_area))
    need(0 < c.min_aspect <= c.max_aspect, "crop.min_aspect/max_aspect",
         "0 < min_aspect <= max_aspect", (c.min_aspect, c.max_aspect))
    need(c.car_size % 32 == 0 and c.car_size >= 64, "crop.car_size",
         "a multiple of 32, at least 64", c.car_size)
    need(cfg.data.val_limit >= 0, "data.val_limit", "0 or more", cfg.data.val_limit)
    need(cfg.train.epoch_size >= 0, "train.epoch_size", "0 or more", cfg.train.epoch_size)
    need(not (cfg.train.fresh_views and cfg.train.kd and not cfg.train.teacher_ir),
         "train.fresh_views", "false while train.kd is true and the teacher is cached (its "
         "logits exist for cached views only; train.teacher_ir sees every view)",
         cfg.train.fresh_views)
    need(not (cfg.train.teacher_ir and cfg.train.kd_mode == "rfkd"), "train.teacher_ir",
         "unset with train.kd_mode rfkd (an IR gives logits, not the teacher's features)",
         cfg.train.teacher_ir)
    need(cfg.cache.views >= 1, "cache.views", "at least 1", cfg.cache.views)
    need(0 <= cfg.cache.noise_mix <= 1, "cache.noise_mix", "between 0 and 1",
         cfg.cache.noise_mix)
    need(cfg.cache.shard_size >= 1, "cache.shard_size", "at least 1", cfg.cache.shard_size)
    need(cfg.cache.batch >= 1, "cache.batch", "at least 1", cfg.cache.batch)
    need(cfg.student.name in STUDENTS, "student.name", "one of " + ", ".join(STUDENTS),
         cfg.student.name)
    need(cfg.student.centre in CENTRINGS, "student.centre", "one of " + ", ".join(CENTRINGS),
         cfg.student.centre)
    need(cfg.student.width in (8, 16, 18, 30, 32, 40, 48, 64), "student.width",
         "an HRNet width (18 for W18)", cfg.student.width)
    need(len(cfg.student.modules) == 3 and min(cfg.student.modules) >= 1, "student.modules",
         "three positive counts (stages 2, 3, 4)", cfg.student.modules)
    need(cfg.student.blocks >= 1, "student.blocks", "at least 1", cfg.student.blocks)
    need(cfg.student.head_kernel in (1, 3), "student.head_kernel", "1 or 3",
         cfg.student.head_kernel)
    t = cfg.train
    need(t.epochs >= 1, "train.epochs", "at least 1", t.epochs)
    need(t.batch >= 1, "train.batch", "at least 1", t.batch)
    need(t.lr > 0, "train.lr", "positive", t.lr)
    need(t.warmup_iters >= 0, "train.warmup_iters", "0 or more", t.warmup_iters)
    need(0 <= t.photometric <= 1, "train.photometric", "between 0 and 1", t.photometric)
    need(t.kd_weight >= 0 and t.hard_weight >= 0, "train.kd_weight/hard_weight",
         "not negative", (t.kd_weight, t.hard_weight))
    need(t.kd or t.hard_weight > 0, "train.hard_weight", "positive when train.kd is false",
         t.hard_weight)
    need(t.kd_mode in KD_MODES, "train.kd_mode", " or ".join(KD_MODES), t.kd_mode)
    need(t.feature_weight >= 0, "train.feature_weight", "0 or more", t.feature_weight)
    need(t.hard_loss in HARD_LOSSES, "train.hard_loss", " or ".join(HARD_LOSSES),
         t.hard_loss)
    need(t.igmsda_alpha > 0 and t.igmsda_lambda >= 0, "train.igmsda_alpha/igmsda_lambda",
         "alpha > 0, lambda >= 0", (t.igmsda_alpha, t.igmsda_lambda))
    need(t.aux_weight >= 0 and t.frame_weight >= 0, "train.aux_weight/frame_weight",
         "0 or more", (t.aux_weight, t.frame_weight))
    need(0 <= t.frame_min_share < 1, "train.frame_min_share", "in [0, 1)", t.frame_min_share)
    need(0 < t.t_min < t.t_max, "train.t_min/t_max", "0 < t_min < t_max", (t.t_min, t.t_max))
    need(t.temperature == "dynamic" or not isinstance(t.temperature, str), "train.temperature",
         "expected a number or 'dynamic'", t.temperature)
    if t.temperature != "dynamic":
        need(t.t_min <= t.temperature <= t.t_max, "train.temperature",
             f"within [{t.t_min}, {t.t_max}] or 'dynamic'", t.temperature)
    need(cfg.eval.threshold is None or 0 < cfg.eval.threshold < 1, "eval.threshold",
         "between 0 and 1, or null (an IR's card's, else 0.5)", cfg.eval.threshold)
    need(cfg.eval.seed_threshold is None or 0 <= cfg.eval.seed_threshold < 1,
         "eval.seed_threshold", "0 (none), below 1, or null (an IR's card's)",
         cfg.eval.seed_threshold)
    need(all(k >= 1 and k % 2 for k in cfg.eval.blur), "eval.blur", "odd kernel sizes",
         cfg.eval.blur)
    need(cfg.export.size % 32 == 0, "export.size", "a multiple of 32", cfg.export.size)
    need(cfg.export.flips in FLIP_SETS, "export.flips", ", ".join(FLIP_SETS), cfg.export.flips)
    return cfg


def load_config(path: Optional[Path] = None, overrides: Sequence[Dict[str, Any]] = ()
                ) -> DistillConfig:
    """Defaults, then the YAML file, then each override mapping; validated."""
    return validate(load(DistillConfig, path, overrides))
