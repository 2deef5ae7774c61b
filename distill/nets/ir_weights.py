"""A student's weights read back out of its FP16 OpenVINO IR (fine-tuning starts there).

An exported IR is often all a user holds of a model (the shipped `models/*.xml`), and
its checkpoints are gone with the work folder that trained it. The IR keeps every
weight the car runs, but folded: each conv+BN pair is one convolution with a bias, a BN
without a conv before it is a Multiply and an Add. Reading it back puts each folded
weight into its convolution and turns each BN into the affine map it was folded to,
so the student in eval mode computes what the IR computes (checked on two frames
before the weights are handed over).

A BN whose statistics were folded away would normalise by a batch's statistics in
training mode and change the function at the first step; `calibration` (normalised
images) gives each BN the mean and variance of its input on real views, with scale
and shift rewritten so that eval mode is unchanged and training mode starts close to
it. Auxiliary heads, which the IR never held, stay as initialised.

Layers are matched in order of execution (torch) against the IR's topological order, by
kind and weight shape; a layer left unmatched on either side is an error, which is what
an ensemble, a gated or a flip-averaged IR gives. INT8 IRs are refused (their weights
are quantised).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from distill.nets.student_io import evaluating

CONVS = (nn.Conv2d, nn.ConvTranspose2d)
IR_KINDS = {"Convolution": "conv", "GroupConvolution": "conv",  # depthwise (EfficientNet)
            "ConvolutionBackpropData": "deconv"}
TOLERANCE = 1e-3  # largest logit difference, relative to the logits' range, IR vs torch


@dataclass
class IRLayer:
    """A weighted layer of the IR: conv/deconv (weight, bias) or affine (scale, shift)."""

    kind: str
    weight: np.ndarray
    bias: Optional[np.ndarray]
    name: str


@dataclass
class TorchLayer:
    """A torch layer in execution order: a conv (and the BN fed by it) or a lone BN."""

    kind: str
    name: str
    module: nn.Module
    bn: Optional[nn.BatchNorm2d] = None

    def shape(self) -> Tuple[int, ...]:
        if self.kind == "affine":
            return (self.module.num_features,)
        return tuple(self.module.weight.shape)


def _const(port) -> Optional[np.ndarray]:
    """The value behind an input port when it is a constant (through Converts)."""
    node = port.get_source_output().get_node()
    while node.get_type_name() == "Convert":
        node = node.input(0).get_source_output().get_node()
    if node.get_type_name() != "Constant":
        return None
    return np.asarray(node.get_data(), np.float32)


def _shift_after(node) -> Optional[np.ndarray]:
    """The per-channel constant added to a node's output, when its one consumer is an Add."""
    users = list(node.output(0).get_target_inputs())
    if len(users) != 1 or users[0].get_node().get_type_name() != "Add":
        return None
    add = users[0].get_node()
    for port in add.inputs():
        if port.get_source_output().get_node() is not node:
            value = _const(port)
            return None if value is None else value.reshape(-1)
    return None


@dataclass
class IRStudent:
    """What an IR holds of a student: its weighted layers in topological order, its
    input size and, where the pre-processing's BGR -> RGB swap was folded into the
    first conv, the mean and scale it applies to the BGR frame (FP16-rounded)."""

    layers: List[IRLayer]
    size: int
    bgr_norm: Optional[Tuple[np.ndarray, np.ndarray]]


def _folded_bgr_norm(ops) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """(mean, scale) of the pre-processing when the first convolution takes BGR:
    OpenVINO folds the BGR -> RGB channel swap into that conv's weights when it
    compresses an IR to FP16, leaving the mean it subtracts in BGR order and no Gather
    before the conv. None otherwise."""
    from distill.nets.student_io import MEAN_RGB
    mean = None
    for node in ops:
        kind = node.get_type_name()
        if kind in IR_KINDS or kind == "Gather":
            return None
        value = _const(node.input(1)) if node.get_input_size() > 1 else None
        if value is None or value.size != 3:
            continue
        if kind == "Subtract":
            if not np.allclose(value.reshape(-1), np.array(MEAN_RGB[::-1]) * 255, atol=0.5):
                return None
            mean = value.reshape(-1)
        elif kind == "Multiply" and mean is not None:
            return mean, value.reshape(-1)
    return None


def read_ir(xml: Path) -> IRStudent:
    """The student an FP16 IR holds (the first conv's input channels put back in RGB
    order)."""
    import openvino as ov
    model = ov.Core().read_model(str(xml))
    ops = model.get_ordered_ops()
    if any(n.get_type_name() == "FakeQuantize" for n in ops):
        raise ValueError(f"{xml}: an INT8 IR (quantised weights); start from its FP16 IR")
    layers: List[IRLayer] = []
    for node in ops:
        kind = IR_KINDS.get(node.get_type_name())
        if kind:
            weight = _const(node.input(1))
            if weight is None:
                raise ValueError(f"{xml}: {node.get_friendly_name()} has computed weights")
            if node.get_type_name() == "GroupConvolution":  # (G, O/G, I/G, k, k) as torch's
                weight = weight.reshape(-1, *weight.shape[2:])
            layers.append(IRLayer(kind, weight, _shift_after(node), node.get_friendly_name()))
        elif node.get_type_name() == "Multiply" and layers:  # past the input's scaling
            scale = next((v for v in map(_const, node.inputs()) if v is not None), None)
            if scale is not None:
                layers.append(IRLayer("affine", scale.reshape(-1), _shift_after(node),
                                      node.get_friendly_name()))
    norm = _folded_bgr_norm(ops)
    if layers and norm is not None:
        layers[0].weight = np.ascontiguousarray(layers[0].weight[:, ::-1])
    shape = model.input(0).get_partial_shape()
    return IRStudent(layers, int(shape[1].get_length()), norm)


def torch_layers(model: nn.Module, size: int) -> List[TorchLayer]:
    """The convs and lone BNs an eval forward pass runs, in order; each conv with the BN
    its output feeds, if any."""
    names = {m: n for n, m in model.named_modules()}
    order: List[TorchLayer] = []
    outputs: Dict[int, TorchLayer] = {}
    keep: List[torch.Tensor] = []  # holds the tensors whose ids are keys above

    def hook(module, args, out):
        if isinstance(module, CONVS):
            layer = TorchLayer("deconv" if isinstance(module, nn.ConvTranspose2d) else "conv",
                               names[module], module)
            outputs[id(out)] = layer
            keep.append(out)
            order.append(layer)
        elif isinstance(module, nn.BatchNorm2d):
            fed = outputs.get(id(args[0]))
            if fed is not None and fed.bn is None:
                fed.bn = module
            else:
                order.append(TorchLayer("affine", names[module], module))
    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, CONVS + (nn.BatchNorm2d,))]
    try:
        with evaluating(model):
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
    return order


def match(xml: Path, ir: List[IRLayer], ours: List[TorchLayer]) -> List[Tuple[TorchLayer,
                                                                             IRLayer]]:
    """Each torch layer with the first unmatched IR layer of its kind and shape."""
    free = list(range(len(ir)))
    pairs = []
    for layer in ours:
        want = layer.shape()
        i = next((i for i in free if ir[i].kind == layer.kind
                  and tuple(ir[i].weight.shape) == want), None)
        if i is None:
            raise ValueError(f"{xml}: no {layer.kind} of shape {list(want)} for {layer.name}; "
                             "is it an IR of this student (not an ensemble or gated IR)?")
        free.remove(i)
        pairs.append((layer, ir[i]))
    if free:
        extra = ", ".join(f"{ir[i].kind} {ir[i].name}" for i in free[:4])
        raise ValueError(f"{xml}: {len(free)} layer(s) the student lacks ({extra}); is it an "
                         "ensemble, gated or flip-averaged IR? start from one student's IR")
    return pairs


def _set_bn(bn: nn.BatchNorm2d, scale: torch.Tensor, shift: torch.Tensor,
            mean: torch.Tensor, var: torch.Tensor) -> None:
    """BN computing x * scale + shift in eval mode, with running statistics mean, var."""
    with torch.no_grad():
        bn.running_mean.copy_(mean)
        bn.running_var.copy_(var)
        bn.weight.copy_(scale * torch.sqrt(var + bn.eps))
        bn.bias.copy_(shift + scale * mean)


def _input_stats(model: nn.Module, bns: List[nn.BatchNorm2d], images: torch.Tensor
                 ) -> Dict[nn.BatchNorm2d, Tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of each BN's input over `images` (eval mode)."""
    sums: Dict[nn.BatchNorm2d, List[torch.Tensor]] = {}  # sum, sum of squares, count

    def hook(module, args):
        x = args[0].detach().double()
        part = [x.sum((0, 2, 3)), (x * x).sum((0, 2, 3)),
                torch.tensor(x.numel() / x.shape[1], dtype=torch.float64)]
        sums[module] = [a + b for a, b in zip(sums[module], part)] if module in sums else part
    handles = [bn.register_forward_pre_hook(hook) for bn in bns]
    try:
        with evaluating(model):
            for i in range(0, len(images), 8):
                model(images[i:i + 8])
    finally:
        for h in handles:
            h.remove()
    stats = {}
    for bn, (total, squares, count) in sums.items():
        mean = total / count
        stats[bn] = (mean.float(), (squares / count - mean * mean).clamp_min(0).float())
    return stats


def _as_ir_input(frames: np.ndarray, norm: Optional[Tuple[np.ndarray, np.ndarray]]
                 ) -> torch.Tensor:
    """BGR u8 frames normalised as the IR does it (its FP16-rounded mean and scale when
    known), as the student's RGB NCHW input."""
    from distill.nets.student_io import bgr_to_tensor
    if norm is None:
        return bgr_to_tensor(frames)
    x = (frames.astype(np.float32) - norm[0]) * norm[1]
    return torch.from_numpy(np.ascontiguousarray(x[..., ::-1])).permute(0, 3, 1, 2)


def check_reproduces(model: nn.Module, xml: Path, ir: IRStudent) -> float:
    """The largest logit difference between the student and its IR on two frames, over
    the IR's logit range; ValueError when above TOLERANCE."""
    from distill.export import ov_logits
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, ir.size, ir.size, 3), dtype=np.uint8)
    frames[1] = np.clip(frames[1] // 2 + 64, 0, 255)  # a second, duller frame
    want = ov_logits(xml, frames, {"INFERENCE_PRECISION_HINT": "f32"})
    with evaluating(model):
        ours = model(_as_ir_input(frames, ir.bgr_norm)).numpy()
    gap = float(np.abs(ours - want).max() / max(1e-6, float(want.max() - want.min())))
    if gap > TOLERANCE:
        raise ValueError(f"{xml}: the weights read back do not reproduce the IR (logits "
                         f"differ by {gap:.2%} of their range); is it an IR of this student?")
    return gap


def load_ir_weights(model: nn.Module, xml: Path,
                    calibration: Optional[Callable[[], torch.Tensor]] = None) -> List[str]:
    """Put the IR's weights into `model` (see the module's docstring); returns the names
    of the state-dict tensors set. `calibration` gives normalised images for the BNs'
    statistics."""
    xml = Path(xml)
    if not xml.is_file() or not xml.with_suffix(".bin").is_file():
        raise ValueError(f"{xml}: no such IR (the .xml and its .bin)")
    ir = read_ir(xml)
    pairs = match(xml, ir.layers, torch_layers(model, ir.size))
    maps: Dict[nn.BatchNorm2d, Tuple[torch.Tensor, torch.Tensor]] = {}
    loaded: List[str] = []
    with torch.no_grad():
        for layer, got in pairs:
            if layer.kind == "affine":
                shift = got.bias if got.bias is not None else np.zeros_like(got.weight)
                maps[layer.module] = (torch.from_numpy(got.weight), torch.from_numpy(shift))
                continue
            conv = layer.module
            conv.weight.copy_(torch.from_numpy(got.weight))
            loaded.append(f"{layer.name}.weight")
            bias = torch.from_numpy(got.bias) if got.bias is not None else torch.zeros(
                conv.weight.shape[1 if layer.kind == "deconv" else 0])
            if conv.bias is not None:
                conv.bias.copy_(bias)
                loaded.append(f"{layer.name}.bias")
                bias = torch.zeros_like(bias)
            if layer.bn is not None:
                maps[layer.bn] = (torch.ones_like(bias), bias)
            elif got.bias is not None and conv.bias is None:
                raise ValueError(f"{xml}: {layer.name} has a bias in the IR and none here")
    bn_names = {m: n for n, m in model.named_modules()}
    for bn, (scale, shift) in maps.items():  # unit variance until calibrated
        _set_bn(bn, scale, shift, torch.zeros_like(scale), torch.full_like(scale, 1 - bn.eps))
        loaded += [f"{bn_names[bn]}.{k}" for k in ("weight", "bias", "running_mean",
                                                    "running_var")]
    if calibration is not None:
        for bn, (mean, var) in _input_stats(model, list(maps), calibration()).items():
            _set_bn(bn, *maps[bn], mean, var)
    check_reproduces(model, xml, ir)
    return loaded
