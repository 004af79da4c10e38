"""CvT-specific behaviour beyond the common tester: published sizes and preprocessing, config errors, strided k/v
attention (eager == SDPA, shapes), the class-token head, BatchNorm folding, and reduced-precision attention."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError

import hf_vision_zoo
from hf_vision_zoo.models.cvt import CvtBackbone, CvtConfig, CvtForImageClassification, CvtModel

# the official count for CvT-13 (catalog: 19,997,480 with 1000 classes); the others counted the same way
PUBLISHED_PARAMS = {"cvt_13_224.in1k": 19_997_480, "cvt_21_384.in1k": 31_622_696,
                    "cvt_w24_384.in22k_ft_in1k": 277_196_392}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_published_sizes(name):
    with torch.device("meta"):
        model = hf_vision_zoo.create_model(name)
    assert sum(p.numel() for p in model.parameters()) == PUBLISHED_PARAMS[name]


def test_variants_and_their_preprocessing():
    names = hf_vision_zoo.list_models("cvt_*")
    assert names == sorted(["cvt_13_224.in1k", "cvt_13_384.in1k", "cvt_13_384.in22k_ft_in1k", "cvt_21_224.in1k",
                            "cvt_21_384.in1k", "cvt_21_384.in22k_ft_in1k", "cvt_w24_384.in22k_ft_in1k"])
    variant = hf_vision_zoo.registry.get_variant("cvt_w24_384.in22k_ft_in1k")
    assert variant.top1 == 87.6 and "CvT-w24-384x384-IN-22k.pth" in variant.notes
    small = hf_vision_zoo.create_image_processor("cvt_13_224.in1k")
    assert small.size["shortest_edge"] == 256 and small.crop_size == {"height": 224, "width": 224}
    large = hf_vision_zoo.create_image_processor("cvt_21_384.in22k_ft_in1k", backend="pil")
    assert large.size == {"height": 384, "width": 384} and not large.do_center_crop
    assert hf_vision_zoo.get_config("cvt_13_224.in1k").hidden_act == "quick_gelu"


@pytest.mark.parametrize("kwargs, message", [
    (dict(embed_dim=[64, 190, 384]), "does not divide"),
    (dict(depth=[1, 2], embed_dim=[64, 192, 384]), "one per stage"),
    (dict(cls_token=[False, True, True]), "only the last stage"),
    (dict(qkv_projection_method="linear"), "qkv_projection_method"),
    (dict(stride_q=[1, 2, 1]), "keep the token grid"),
    (dict(drop_path_rate=[0.0, 0.0, 1.0]), "drop_path_rate"),
    (dict(image_size=3), "smaller than one patch"),
    (dict(hidden_act="swish_fancy"), "hidden_act"),
])
def test_inconsistent_config_is_rejected_clearly(kwargs, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        CvtConfig(**kwargs)


def test_scalars_stand_for_every_stage():
    config = CvtConfig(drop_path_rate=0.0, qkv_bias=False, mlp_ratio=2)
    assert config.drop_path_rate == [0.0] * 3 and config.qkv_bias == [False] * 3 and config.mlp_ratio == [2] * 3


def _tiny(**overrides):
    kwargs = dict(image_size=48, embed_dim=[16, 32], num_heads=[1, 2], depth=[1, 2], patch_sizes=[7, 3],
                  patch_stride=[4, 2], patch_padding=[2, 1], cls_token=[False, True], stride_kv=2, num_labels=3,
                  drop_path_rate=0.0)
    return CvtConfig(**{**kwargs, **overrides})


def _perturbed(model):
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=generator) + 0.5)
    return model.eval()


def test_strided_kv_attention_eager_equals_sdpa_and_shapes(tmp_path):
    torch.manual_seed(0)
    model = _perturbed(CvtForImageClassification(_tiny()))
    model.save_pretrained(tmp_path)
    eager = CvtForImageClassification.from_pretrained(tmp_path, attn_implementation="eager").eval()
    sdpa = CvtForImageClassification.from_pretrained(tmp_path, attn_implementation="sdpa").eval()
    pixels = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        a, b = eager(pixels, output_hidden_states=True), sdpa(pixels, output_hidden_states=True)
        attn = sdpa(pixels, output_attentions=True).attentions
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=1e-4)
    # stage 1: 12x12 queries over 6x6 keys; stage 2: 6x6 + class token over 3x3 + class token
    assert [tuple(x.shape) for x in attn] == [(2, 1, 144, 36), (2, 2, 37, 10)]
    torch.testing.assert_close(attn[1].sum(-1), torch.ones(2, 2, 37))


def test_class_token_head_and_outputs():
    torch.manual_seed(0)
    model = _perturbed(CvtForImageClassification(_tiny()))
    pixels = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        out = model.cvt(pixels, output_hidden_states=True)
        logits = model(pixels).logits
    assert out.last_hidden_state.shape == (2, 36, 32) and out.cls_token_value.shape == (2, 1, 32)
    torch.testing.assert_close(out.pooler_output, model.cvt.layernorm(out.cls_token_value[:, 0]))
    torch.testing.assert_close(logits, model.classifier(out.pooler_output))
    assert [tuple(h.shape) for h in out.reshaped_hidden_states] == [(2, 16, 12, 12), (2, 16, 12, 12), (2, 32, 6, 6)]


def test_last_query_convolution_gets_no_gradient_through_the_class_token():
    """The official design: the class token joins q after the convolutional projection, so for the classifier the
    last block's query convolution is dead (zero gradient), which is why the common tester's tiny config has no
    class token. Every other parameter learns."""
    torch.manual_seed(0)
    model = CvtForImageClassification(_tiny()).train()
    model(torch.randn(2, 3, 48, 48), labels=torch.tensor([0, 2])).loss.backward()
    zero = sorted(n for n, p in model.named_parameters() if not p.grad.abs().sum() > 0)
    prefix = "cvt.stages.1.blocks.1.attn.conv_proj_q."
    assert zero == [prefix + "bn.bias", prefix + "bn.weight", prefix + "conv.weight"]


def test_batchnorm_folding_equals_batchnorm():
    """Eval mode folds BatchNorm into the depthwise kernel; the unfolded module gives the same result."""
    torch.manual_seed(0)
    model = _perturbed(CvtModel(_tiny()))
    projection = model.stages[1].blocks[0].attn.conv_proj_k
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        folded = projection(x)
        reference = projection.bn(projection.conv(x))
    torch.testing.assert_close(folded, reference, atol=1e-6, rtol=1e-5)


def test_bfloat16_autocast_close_to_float32():
    torch.manual_seed(0)
    model = _perturbed(CvtForImageClassification(_tiny()))
    pixels = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        full = model(pixels).logits
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = model(pixels).logits
    assert (half.float() - full).abs().max() < 0.1 * full.abs().max()


def test_gradient_checkpointing_with_class_token_and_strided_kv():
    torch.manual_seed(0)
    pixels, labels = torch.randn(2, 3, 48, 48), torch.tensor([1, 2])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = CvtForImageClassification(_tiny()).train()
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model(pixels, labels=labels).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=1e-6, rtol=1e-4)


def test_backbone_stages_and_small_images():
    torch.manual_seed(0)
    backbone = CvtBackbone(_tiny(out_features=["stem", "stage1", "stage2"])).eval()
    assert backbone.channels == [16, 16, 32]
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 61, 45)).feature_maps
    assert [tuple(m.shape) for m in maps] == [(1, 16, 15, 11), (1, 16, 15, 11), (1, 32, 8, 6)]
    with pytest.raises(ValueError, match="smaller than one patch"):
        backbone(torch.randn(1, 3, 3, 40))
