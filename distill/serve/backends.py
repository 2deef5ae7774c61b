"""Models behind the server, each taking a batch: (N, S, S, 3) BGR u8 -> crack
probabilities (N, S, S) float32. Student and teacher checkpoints run as one torch batch;
an IR runs its frames as concurrent OpenVINO requests (its shapes are static, batch 1);
an ONNX file runs through OpenVINO frame by frame."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from crack_common.files import sha256_file
from edge_app.vision.measure import crack_probability


@dataclass
class BatchModel:
    name: str
    sha256: str
    size: int
    kind: str
    threshold: float
    predict: Callable[[np.ndarray], np.ndarray]
    seed_threshold: Optional[float] = None  # hysteresis (an IR's card's), as the car masks


def load_batch_model(path: Path, device: str = "cpu", threshold: float = 0.0) -> BatchModel:
    """A model file as a BatchModel; ValueError naming the file when it is none."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return _ir_model(path, threshold)
    if suffix == ".onnx":
        from distill.export import compile_onnx
        run, size = compile_onnx(path)
        lock = threading.Lock()

        def predict_onnx(images: np.ndarray) -> np.ndarray:
            with lock:
                return crack_probability(np.stack([run(img) for img in images]))
        return BatchModel(path.name, sha256_file(path), size, "onnx", threshold or 0.5,
                          predict_onnx)
    return _torch_model(path, device, threshold)


def _ir_model(path: Path, threshold: float) -> BatchModel:
    """An IR through the car's asynchronous path (contract check, THROUGHPUT hint, the
    plugin's number of requests): a batch is its frames in flight at once."""
    from edge_app.model.inference import AsyncInfer
    from edge_app.model.ir_model import mask_rule, model_card
    results: dict = {}
    infer = AsyncInfer(path, "CPU", lambda i, logits, _score: results.__setitem__(i, logits))
    lock = threading.Lock()

    def predict_ir(images: np.ndarray) -> np.ndarray:
        with lock:  # one batch at a time through the queue
            results.clear()
            errors = infer.errors
            for i, img in enumerate(images):
                infer.submit(i, img)
            infer.wait_all()
            if infer.errors != errors or len(results) != len(images):
                raise RuntimeError(f"{path.name}: {len(images) - len(results)} of "
                                   f"{len(images)} inferences failed")
            return crack_probability(np.stack([results[i] for i in range(len(images))]))
    thr, seed = mask_rule(model_card(path), threshold or None)  # 0: the card's
    return BatchModel(path.name, sha256_file(path), infer.size, "openvino-ir", thr,
                      predict_ir, seed)


def _torch_model(path: Path, device: str, threshold: float) -> BatchModel:
    import torch

    from distill.nets.sam.checkpoints import CheckpointError, load_teacher
    from distill.nets.student_io import bgr_to_tensor, bgr_to_unit_rgb
    try:
        teacher = load_teacher(path).to(device).eval()
    except CheckpointError:
        teacher = None
    if teacher is not None:
        @torch.no_grad()
        def predict_teacher(images: np.ndarray) -> np.ndarray:
            full, _ = teacher(bgr_to_unit_rgb(images).to(device))
            return full.softmax(1)[:, 1].float().cpu().numpy()
        return BatchModel(path.name, sha256_file(path), teacher.cfg.img_size, "teacher",
                          threshold or 0.5, predict_teacher)
    from distill.training.train import load_student
    model, cfg = load_student(path)
    model.to(device).eval()

    @torch.no_grad()
    def predict_student(images: np.ndarray) -> np.ndarray:
        return model(bgr_to_tensor(images).to(device)).softmax(1)[:, 1].float().cpu().numpy()
    return BatchModel(path.name, sha256_file(path), cfg.size, "student", threshold or 0.5,
                      predict_student)
