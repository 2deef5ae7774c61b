"""bfloat16 mixed precision in training: the forward pass really runs in bfloat16, the
weights, gradients and losses stay float32, float32 runs saved before stay valid, and a
bf16 teacher run resumes only as a bf16 run."""

import numpy as np
import pytest
import torch

from distill.config import ADDED_LATER, load_config
from distill.data.datasets import open_dataset
from distill.nets.sam.checkpoints import load_teacher
from distill.training.teacher_train import resume_path, train_teacher
from distill.training.train import Trainer
from tests.distill.helpers import make_data, tiny_config, tiny_teacher_config


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_data(tmp_path_factory.mktemp("bf16") / "data", count=8)


def conv_output_dtypes(model: torch.nn.Module) -> list:
    """Records the dtype of every Conv2d output of the next passes."""
    seen = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(lambda _m, _a, out: seen.append(out.dtype))
    return seen


def one_step(data, work, bf16: bool):
    cfg = tiny_config(work, work / "no-teacher.pth", data,
                      student={"name": "hrsegnet_b16"},
                      train={"kd": False, "bf16": bf16, "batch": 4, "seed": 0})
    ds = open_dataset(data)
    tr = Trainer(cfg, ds, ds.subset([]), work, progress=False)
    seen = conv_output_dtypes(tr.model)
    x, y, t = tr.data.batch([0, 1, 2, 3], 0)
    parts = tr._losses(x.contiguous(memory_format=torch.channels_last), y, t)
    tr.opt.zero_grad()
    parts["total"].backward()
    return tr, seen, parts


def test_bf16_runs_the_convolutions_in_bfloat16_and_keeps_float32_weights(data, tmp_path):
    plain, seen32, parts32 = one_step(data, tmp_path / "fp32", bf16=False)
    mixed, seen16, parts16 = one_step(data, tmp_path / "bf16", bf16=True)
    assert seen32 and set(seen32) == {torch.float32}
    assert seen16 and set(seen16) == {torch.bfloat16}
    for p in mixed.model.parameters():
        assert p.dtype == torch.float32 and p.grad is not None and p.grad.dtype == torch.float32
    for k in ("total", "hard", "aux"):
        assert parts16[k].dtype == torch.float32
    # the same weights and batch: the same loss to bfloat16's precision, but not bit-equal
    a, b = parts32["total"].item(), parts16["total"].item()
    assert a != b and abs(a - b) < 0.02 * abs(a)
    grads = [(p.grad, q.grad) for p, q in zip(plain.model.parameters(), mixed.model.parameters())]
    cos = torch.nn.functional.cosine_similarity(
        torch.cat([g.flatten() for g, _ in grads]), torch.cat([h.flatten() for _, h in grads]),
        dim=0)
    assert cos > 0.95  # the same descent direction, to bfloat16 precision


def test_float32_configs_saved_before_keep_their_digest():
    import hashlib
    import json
    plain = load_config(overrides=[{"train": {"epochs": 3}}])
    mixed = load_config(overrides=[{"train": {"epochs": 3, "bf16": True}}])
    # the digest a work folder saved before the key existed: its train section without it
    before = {k: v for k, v in plain.to_dict()["train"].items()
              if k != "bf16" and (f"train.{k}" not in ADDED_LATER
                                  or v != ADDED_LATER[f"train.{k}"])}
    saved = hashlib.sha256(json.dumps({"train": before}, sort_keys=True).encode()).hexdigest()
    assert plain.digest("train") == saved[:16]
    assert mixed.digest("train") != saved[:16]


class Interrupt(Exception):
    pass


def test_bf16_teacher_trains_in_bfloat16_and_resumes_only_as_bf16(data, tmp_path):
    ds = open_dataset(data)
    out = tmp_path / "teacher.pth"
    seen = {"passes": 0, "linear": set()}

    def watch(m, _a, out_):
        if isinstance(m, torch.nn.Linear):
            seen["linear"].add(out_.dtype)
        elif type(m).__name__ == "CrackSAM":
            seen["passes"] += 1
            if seen["passes"] == 3:  # killed in the third step, after two were saved
                raise Interrupt

    handle = torch.nn.modules.module.register_module_forward_hook(watch)
    try:
        with pytest.raises(Interrupt):
            train_teacher(tiny_teacher_config(), ds, out, steps=4, batch=2, warmup=1,
                          progress=False, save_every=1, bf16=True)
    finally:
        handle.remove()
    # the attention projections ran in bfloat16; two steps were saved before the stop
    assert seen["linear"] == {torch.bfloat16}
    state = torch.load(str(resume_path(out)), weights_only=False)
    assert state["step"] == 2 and state["settings"]["bf16"] is True
    with pytest.raises(ValueError, match="other settings"):
        train_teacher(tiny_teacher_config(), ds, out, steps=4, batch=2, warmup=1,
                      progress=False, save_every=1)
    assert resume_path(out).exists() and not out.exists()
    r = train_teacher(tiny_teacher_config(), ds, out, steps=4, batch=2, warmup=1,
                      progress=False, save_every=1, bf16=True)
    assert r["resumed_at"] == 2 and np.isfinite(r["final_loss"])
    assert not resume_path(out).exists()
    assert all(p.dtype == torch.float32 for p in load_teacher(out).parameters())
