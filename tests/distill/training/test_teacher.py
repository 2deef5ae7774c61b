"""The CrackSAM teacher: Meta's names and shapes, the three deltas, loading Meta's
checkpoint plus a published-format delta, merged teacher files, errors that name keys."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from distill.nets.sam.checkpoints import (
    CheckpointError,
    build_from_sam,
    infer_config,
    load_teacher,
    merge,
)
from distill.nets.sam.cracksam import CrackSAM, SamConfig
from distill.nets.sam.image_encoder import DeltaSpec
from tests.conftest import REPO

# parameter names and shapes of the public checkpoints (from the shared reference)
SAM_SHAPES = REPO / "tests" / "data" / "reference" / "sam_state_dict_shapes.json"


@pytest.fixture(scope="module")
def sam_shapes():
    return json.loads(SAM_SHAPES.read_text())


def shapes_of(cfg):
    with torch.device("meta"):
        model = CrackSAM(cfg)
    return {k: list(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("encoder", ["vit_b", "vit_h"])
@pytest.mark.parametrize("variant,size,multimask", [("original_sam_1024", 1024, 3),
                                                    ("cracksam_448", 448, 1)])
def test_names_and_shapes_equal_metas(sam_shapes, encoder, variant, size, multimask):
    assert shapes_of(SamConfig.preset(encoder, size, multimask)) == \
        sam_shapes[f"{encoder}/{variant}"]


@pytest.mark.parametrize("kind", ["lora", "adapter", "both"])
def test_delta_keeps_base_names_and_adds_its_own(sam_shapes, kind):
    shapes = shapes_of(SamConfig.preset("vit_b", 448, 1, DeltaSpec(kind, 4, 32)))
    base = sam_shapes["vit_b/cracksam_448"]
    assert {k: v for k, v in shapes.items() if k in base} == base
    extra = set(shapes) - set(base)
    assert extra and all("lora" in k or "adapter" in k for k in extra)
    assert any("lora" in k for k in extra) == (kind != "adapter")
    assert any("adapter" in k for k in extra) == (kind != "lora")


def test_parameter_counts_match_the_paper():
    def tunable(kind, r):
        with torch.device("meta"):
            m = CrackSAM(SamConfig.preset("vit_h", 448, 1, DeltaSpec(kind, r, 32)))
        m.freeze_base()
        return sum(p.numel() for p in m.parameters() if p.requires_grad)
    assert round(tunable("lora", 4) / 1e6, 1) == 4.4
    assert round(tunable("adapter", 4) / 1e6, 1) == 9.1
    with torch.device("meta"):
        assert sum(p.numel() for p in CrackSAM(SamConfig.preset("vit_h")).parameters()) == \
            636_524_526


# ---------------------------------------------------------------- tiny real models

def tiny(img_size=64, multimask=1, delta=None):
    """A 2-block ViT with one global block, 4x4 tokens at 64 px, 2x2 windows."""
    return SamConfig(encoder="custom", embed_dim=32, depth=2, num_heads=2,
                     global_attn_indexes=(1,), img_size=img_size, window_size=2, prompt_dim=32,
                     num_multimask_outputs=multimask, delta=delta or DeltaSpec())


def randomised(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model


def meta_checkpoint(path, img_size=128):
    """A Meta-format SAM checkpoint (plain state dict, 3 multimask outputs) at `img_size`."""
    sd = randomised(CrackSAM(tiny(img_size, multimask=3)), seed=1).state_dict()
    torch.save(sd, path)
    return sd


def crack_delta(path, kind="lora", rank=3, width=5, depth=2, dim=32, seed=2, drop=(), add=()):
    """A delta file in CrackSAM's published key format, written from its description."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    d = {}
    if kind in ("lora", "both"):
        suf = "_l" if kind == "both" else ""
        for j in range(2 * depth):
            d[f"w_a_{j:03d}{suf}"], d[f"w_b_{j:03d}{suf}"] = r(rank, dim), r(dim, rank)
    if kind in ("adapter", "both"):
        for i in range(depth):
            for a, b in (("a", "b"), ("c", "d")):
                d[f"w_{a}_{i:03d}"], d[f"w_{a}_{i:03d}_bia"] = r(width, dim), r(width)
                d[f"w_{b}_{i:03d}"], d[f"w_{b}_{i:03d}_bia"] = r(dim, width), r(dim)
    heads = randomised(CrackSAM(tiny(64, 1)), seed=3).state_dict()
    d.update({k: v for k, v in heads.items() if k.startswith(("prompt_encoder.", "mask_decoder."))})
    for k in drop:
        del d[k]
    for k in add:
        d[k] = torch.zeros(1)
    torch.save(d, path)
    return d


def test_tiny_teacher_runs_forward_on_cpu():
    model = randomised(CrackSAM(tiny())).eval()
    with torch.no_grad():
        full, quarter = model(torch.rand(2, 3, 64, 64))
    assert full.shape == (2, 2, 64, 64) and quarter.shape == (2, 2, 16, 16)
    assert torch.allclose(full, F.interpolate(quarter, size=(64, 64), mode="bilinear"))
    assert torch.isfinite(full).all() and full.std() > 0
    with pytest.raises(ValueError, match="expects 64x64"):
        model(torch.rand(1, 3, 32, 32))


def test_fresh_lora_changes_nothing_and_lora_math_is_right():
    base = randomised(CrackSAM(tiny())).eval()
    lora = CrackSAM(tiny(delta=DeltaSpec("lora", 3)))
    lora.load_state_dict(base.state_dict(), strict=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(base(x)[0], lora.eval()(x)[0], atol=1e-5)  # B starts at zero
        attn = lora.image_encoder.blocks[0].attn
        attn.lora.q_b.weight.normal_()
        attn.lora.v_b.weight.normal_()
        t = torch.randn(1, 2, 2, 32)
        out = attn.lora(t, attn.qkv(t))
        aq, bq = attn.lora.q_a.weight, attn.lora.q_b.weight
        av, bv = attn.lora.v_a.weight, attn.lora.v_b.weight
        ref = attn.qkv(t).clone()
        ref[..., :32] += t @ aq.T @ bq.T
        ref[..., 64:] += t @ av.T @ bv.T
    assert torch.allclose(out, ref, atol=1e-5)


@pytest.mark.parametrize("kind", ["lora", "adapter", "both"])
def test_meta_checkpoint_plus_delta_loads_and_round_trips_through_merge(tmp_path, kind):
    sam = meta_checkpoint(tmp_path / "sam_tiny.pth", img_size=128)
    delta = crack_delta(tmp_path / "delta.pth", kind)
    model = build_from_sam(tmp_path / "sam_tiny.pth", tmp_path / "delta.pth", img_size=64)
    cfg = model.cfg
    assert (cfg.delta.kind, cfg.img_size, cfg.num_multimask_outputs) == (kind, 64, 1)
    sd = model.state_dict()
    # 1024 -> 448 style resizing: pos_embed bilinear, global rel-pos linear, windows kept
    pos = F.interpolate(sam["image_encoder.pos_embed"].permute(0, 3, 1, 2), size=(4, 4),
                        mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    assert torch.allclose(sd["image_encoder.pos_embed"], pos)
    assert sd["image_encoder.blocks.1.attn.rel_pos_h"].shape == (7, 16)
    assert torch.equal(sd["image_encoder.blocks.0.attn.rel_pos_h"],
                       sam["image_encoder.blocks.0.attn.rel_pos_h"])
    assert torch.equal(sd["image_encoder.blocks.1.mlp.lin1.weight"],
                       sam["image_encoder.blocks.1.mlp.lin1.weight"])
    # the decoder comes from the delta, the delta lands where CrackSAM puts it
    assert torch.equal(sd["mask_decoder.mask_tokens.weight"],
                       delta["mask_decoder.mask_tokens.weight"])
    if kind == "lora":
        assert torch.equal(sd["image_encoder.blocks.1.attn.lora.v_a.weight"], delta["w_a_003"])
        assert torch.equal(sd["image_encoder.blocks.0.attn.lora.q_b.weight"], delta["w_b_000"])
    if kind == "both":
        assert torch.equal(sd["image_encoder.blocks.1.attn.lora.q_a.weight"], delta["w_a_002_l"])
    if kind != "lora":
        assert torch.equal(sd["image_encoder.blocks.1.adapter_mlp.up.bias"], delta["w_d_001_bia"])
        assert torch.equal(sd["image_encoder.blocks.0.adapter_attn.down.weight"],
                           delta["w_a_000"])

    merged = merge(tmp_path / "sam_tiny.pth", tmp_path / "delta.pth", tmp_path / "t.pth", 64)
    again = load_teacher(tmp_path / "t.pth")
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(merged(x)[0], again(x)[0])
    assert again.cfg == merged.cfg


def test_real_sized_configs_are_recognised():
    with torch.device("meta"):
        sd = CrackSAM(SamConfig.preset("vit_l", 1024, 3)).state_dict()
    cfg = infer_config(sd)
    assert cfg.encoder == "vit_l" and cfg.img_size == 1024 and cfg.global_attn_indexes == \
        (5, 11, 17, 23) and cfg.window_size == 14 and cfg.num_multimask_outputs == 3


def test_delta_key_errors_name_the_keys(tmp_path):
    meta_checkpoint(tmp_path / "sam.pth")
    crack_delta(tmp_path / "d1.pth", "lora", drop=["w_b_002"], add=["w_a_009", "w_zz"])
    with pytest.raises(CheckpointError) as e:
        build_from_sam(tmp_path / "sam.pth", tmp_path / "d1.pth", 64)
    assert "missing keys: w_b_002" in str(e.value)
    assert "unexpected keys: w_a_009, w_zz" in str(e.value)
    crack_delta(tmp_path / "d2.pth", "adapter")
    with pytest.raises(CheckpointError, match="holds a adapter delta, not lora"):
        build_from_sam(tmp_path / "sam.pth", tmp_path / "d2.pth", 64, expect_kind="lora")
    crack_delta(tmp_path / "d3.pth", "lora", rank=8)
    with pytest.raises(CheckpointError, match="LoRA rank is 8, not 4"):
        build_from_sam(tmp_path / "sam.pth", tmp_path / "d3.pth", 64, expect_rank=4)


def test_sam_checkpoint_errors_name_the_keys(tmp_path):
    sd = meta_checkpoint(tmp_path / "sam.pth")
    crack_delta(tmp_path / "d.pth")
    del sd["image_encoder.blocks.0.mlp.lin2.bias"]
    sd["image_encoder.blocks.0.mlp.extra"] = torch.zeros(2)
    sd["image_encoder.neck.1.weight"] = torch.zeros(7)
    torch.save(sd, tmp_path / "bad_sam.pth")
    with pytest.raises(CheckpointError) as e:
        build_from_sam(tmp_path / "bad_sam.pth", tmp_path / "d.pth", 64)
    text = str(e.value)
    assert "missing keys: image_encoder.blocks.0.mlp.lin2.bias" in text
    assert "unexpected keys: image_encoder.blocks.0.mlp.extra" in text
    assert "wrong shapes: image_encoder.neck.1.weight [7] (expected [32])" in text
    (tmp_path / "corrupt.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(ValueError, match="corrupt.pth: not a readable PyTorch checkpoint"):
        build_from_sam(tmp_path / "corrupt.pth", tmp_path / "d.pth", 64)


def test_load_teacher_explains_unmerged_files(tmp_path):
    meta_checkpoint(tmp_path / "sam.pth")
    crack_delta(tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="it is a SAM checkpoint; make one teacher file"):
        load_teacher(tmp_path / "sam.pth")
    with pytest.raises(CheckpointError, match="it is a CrackSAM delta"):
        load_teacher(tmp_path / "d.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_teacher(tmp_path / "nope.pth")


def test_cli_merge_and_describe(tmp_path, cli, sam_shapes):
    meta_checkpoint(tmp_path / "sam.pth")
    crack_delta(tmp_path / "d.pth", "both")
    out = tmp_path / "cracksam.pth"
    args = ["teacher", "merge", "--sam", str(tmp_path / "sam.pth"), "--delta",
            str(tmp_path / "d.pth"), "--out", str(out), "--size", "64"]
    r = cli("distill.cli", args)
    assert r.returncode == 0, r.stderr
    assert "delta both (rank 3, adapter width 5)" in r.stderr
    r = cli("distill.cli", args)
    assert r.returncode == 1 and "--overwrite" in r.stderr
    r = cli("distill.cli", ["describe", "--teacher-config", str(out), "--json"])
    info = json.loads(r.stdout)
    assert info["config"]["delta"]["kind"] == "both" and info["delta_params"] == \
        2 * (2 * 2 * 3 * 32) + 2 * 2 * (32 * 5 + 5 + 5 * 32 + 32)
    r = cli("distill.cli", ["describe", "--teacher-config", "vit_b", "--state-dict", "--json"])
    info = json.loads(r.stdout)
    assert info["state_dict"] == sam_shapes["vit_b/cracksam_448"]
    assert info["params"] == info["tunable_params"] == 90_874_350
    r = cli("distill.cli", ["describe", "--teacher-config", "vit_h", "--delta", "lora", "--json"])
    assert math.isclose(json.loads(r.stdout)["tunable_params"] / 1e6, 4.44, abs_tol=0.01)
    r = cli("distill.cli", ["describe", "--student", "--json"])
    assert json.loads(r.stdout)["params"] == 9_636_242
