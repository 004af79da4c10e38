"""MaskAlign behaviour beyond the official-parity fixture: teachers from any transformers vision model (CLIPVisionModel,
ViTModel, Dinov2Model, Dinov2 with registers) loaded from a folder with `from_pretrained`, the frozen eval-mode
teacher, attention-guided masking (salient patches stay visible; same law as the official `torch.multinomial`),
reproducible masks, the published parameter counts, and clear errors on bad input."""

import copy

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import (
    AutoModelForPreTraining,
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    ViTConfig,
    ViTModel,
)

from hf_vision_zoo.layers.masking import random_masking
from hf_vision_zoo.models.maskalign import (
    TINY_TEACHER,
    MaskAlignConfig,
    MaskAlignForPreTraining,
    attention_guided_mask,
)

STUDENT = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
               drop_path_rate=0.0, loss_weights="mean")
CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)  # strict configs wrap the ValueError
TINY = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
TEACHERS = {
    "clip": (CLIPVisionModel, CLIPVisionConfig, dict(intermediate_size=32)),
    "vit": (ViTModel, ViTConfig, dict(intermediate_size=32, hidden_dropout_prob=0.3)),
    "dinov2": (Dinov2Model, Dinov2Config, dict(mlp_ratio=2)),
    "dinov2_registers": (Dinov2WithRegistersModel, Dinov2WithRegistersConfig, dict(mlp_ratio=2, num_register_tokens=2)),
}


def pixel_values(batch=2, size=32, seed=1):
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def save_teacher(kind, directory, **overrides):
    model_class, config_class, extra = TEACHERS[kind]
    torch.manual_seed(0)
    teacher = model_class(config_class(**{**TINY, **extra, **overrides}))
    teacher.save_pretrained(directory)
    return teacher


def model(**overrides):
    torch.manual_seed(0)
    return MaskAlignForPreTraining(MaskAlignConfig(**{**STUDENT, "teacher_config": dict(TINY_TEACHER), **overrides}))


@pytest.mark.parametrize("kind", sorted(TEACHERS))
def test_any_transformers_teacher_from_a_folder_is_frozen_and_trains_the_student(kind, tmp_path):
    saved = save_teacher(kind, tmp_path / "teacher")
    net = model(teacher_name_or_path=str(tmp_path / "teacher"), teacher_config=None)
    assert type(net.teacher) is type(saved)
    # loaded from the folder, not re-initialised by post_init
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(net.teacher.state_dict()[key], value, rtol=0, atol=0, msg=key)
    assert net.config.teacher_config["model_type"] == saved.config.model_type
    assert all(not p.requires_grad for p in net.teacher.parameters())
    net.train()
    assert not net.teacher.training and net.vit.training
    x = pixel_values()
    out = net(x, noise=torch.rand(2, 16, generator=torch.Generator().manual_seed(0)))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    assert out.mask.shape == (2, 16) and out.mask.sum(1).tolist() == [12, 12]  # int(16 * (1 - 0.7)) = 4 kept
    assert out.teacher_attention.shape == (2, 16)
    assert [t.shape[1] for t in out.teacher_features] == [1 + 4] * 2  # teacher [CLS] + the 4 visible patches
    torch.testing.assert_close(out.teacher_attention.sum(1) <= 1 + 1e-5, torch.ones(2, dtype=torch.bool))
    out.loss.backward()
    assert all(p.grad is None for p in net.teacher.parameters())
    assert all(p.grad is not None for n, p in net.named_parameters() if p.requires_grad)
    # in train mode the teacher (dropout 0.3 for the ViT teacher) still gives the same targets
    mask = out.mask.bool()
    again = net(x, mask=mask)
    torch.testing.assert_close(again.teacher_features[-1], net(x, mask=mask).teacher_features[-1], rtol=0, atol=0)


def test_saved_pretraining_folder_reloads_without_the_teacher_folder(tmp_path):
    save_teacher("clip", tmp_path / "teacher")
    net = model(teacher_name_or_path=str(tmp_path / "teacher"), teacher_config=None).eval()
    net.save_pretrained(tmp_path / "run")
    (tmp_path / "teacher" / "model.safetensors").unlink()  # the teacher weights travel with the checkpoint
    (tmp_path / "teacher" / "config.json").unlink()
    (tmp_path / "teacher").rmdir()
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "run")
    assert all(not p.requires_grad for p in reloaded.teacher.parameters()) and not reloaded.teacher.training
    x, mask = pixel_values(), torch.arange(16).repeat(2, 1) % 3 == 0
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x, mask=mask).loss, net(x, mask=mask).loss, rtol=0, atol=0)


def test_attention_guided_masking_keeps_the_most_attended_patches():
    importance = torch.ones(3, 16)
    salient = torch.tensor([[0, 5, 9, 15], [1, 2, 3, 4], [12, 13, 14, 7]])
    importance.scatter_(1, salient, 1e8)
    for seed in range(5):
        noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(seed))
        mask = attention_guided_mask(importance / importance.sum(1, keepdim=True), 0.75, noise)
        visible = [sorted(torch.nonzero(~row).flatten().tolist()) for row in mask]
        assert visible == [sorted(row) for row in salient.tolist()]


def test_attention_guided_masking_samples_like_official_multinomial():
    """Inclusion frequencies of the Gumbel-top-k draw equal those of `torch.multinomial` without replacement
    (the official draw), and grow with the attention."""
    draws, keep = 4000, 4
    importance = torch.arange(1.0, 9.0).repeat(draws, 1)
    generator = torch.Generator().manual_seed(0)
    ours = (~attention_guided_mask(importance, 0.5, torch.rand(draws, 8, generator=generator))).float().mean(0)
    official = torch.zeros(8)
    picks = torch.multinomial(importance, 8, replacement=False, generator=generator)[:, :keep]
    official.scatter_add_(0, picks.flatten(), torch.ones(picks.numel()))
    official /= draws
    torch.testing.assert_close(ours, official, rtol=0, atol=0.04)
    assert (ours[1:] > ours[:-1]).all(), ours


def test_model_masks_from_the_teacher_attention_and_is_reproducible():
    net = model(mask_ratio=0.5).eval()
    x, noise = pixel_values(), torch.rand(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = net(x, noise=noise)
        _, attentions = net.teacher_forward(x)
        again = net(x, noise=noise)
        explicit = net(x, mask=out.mask.bool())
    torch.testing.assert_close(out.teacher_attention, attentions[-1][:, :, 0, 1:].mean(1))
    expected = attention_guided_mask(out.teacher_attention, 0.5, noise)
    assert torch.equal(out.mask.bool(), expected) and torch.equal(again.mask, out.mask)
    assert torch.equal(out.ids_keep, torch.nonzero(~expected)[:, 1].view(2, 8))
    torch.testing.assert_close(explicit.loss, out.loss, rtol=0, atol=0)
    # the student encodes only the visible patches ([CLS] + 8)
    assert out.student_features[0].shape == (2, 9, TINY_TEACHER["hidden_size"])


def test_random_masking_is_maes():
    net = model(mask_type="random", mask_ratio=0.75).eval()
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        out = net(pixel_values(), noise=noise)
    assert out.teacher_attention is None
    assert torch.equal(out.mask, random_masking(noise, 0.75).mask)


def test_unused_layers_and_loss_weights():
    net = model(loss_weights="out", fusion_type="simple")
    out = net(pixel_values(), mask=torch.arange(16).repeat(2, 1) < 8)
    out.loss.backward()
    # "out" aligns only the last teacher layer: the first head gets no gradient, as in the official code
    assert net.distill_heads[0].weight.grad is None and net.distill_heads[1].weight.grad is not None
    assert net.distill_weights is None


def test_published_parameter_counts():
    """Official numbers (catalog): student + Dynamic Alignment 92,734,608 parameters, CLIP-B/16 tower 85,799,424."""
    config = MaskAlignConfig(teacher_config=dict(model_type="clip_vision_model", hidden_size=768,
                                                 intermediate_size=3072, num_hidden_layers=12,
                                                 num_attention_heads=12, image_size=224, patch_size=16))
    with torch.device("meta"):
        net = MaskAlignForPreTraining(config)
    student = sum(p.numel() for n, p in net.named_parameters() if not n.startswith("teacher."))
    teacher = sum(p.numel() for p in net.teacher.parameters())
    assert (student, teacher) == (92_734_608, 85_799_424)


def test_teacher_image_size_matches_a_finer_teacher_grid(tmp_path):
    save_teacher("clip", tmp_path / "teacher", patch_size=4, image_size=32)  # 8x8 grid at 32 px
    with pytest.raises(ValueError, match="patch grid 8x8.*student's 4x4"):
        model(teacher_name_or_path=str(tmp_path / "teacher"), teacher_config=None)
    net = model(teacher_name_or_path=str(tmp_path / "teacher"), teacher_config=None, teacher_image_size=16).eval()
    with torch.no_grad():  # the teacher sees 16 px images (4x4 grid, its positions interpolated)
        out = net(pixel_values(), noise=torch.rand(2, 16, generator=torch.Generator().manual_seed(0)))
    assert torch.isfinite(out.loss) and out.teacher_attention.shape == (2, 16)


def test_clip_teacher_input_is_renormalised():
    net = model().eval()
    x = pixel_values()
    seen = {}
    handle = net.teacher.register_forward_pre_hook(lambda m, a, k: seen.update(x=k["pixel_values"]),
                                                   with_kwargs=True)
    with torch.no_grad():
        net.teacher_forward(x)
    handle.remove()
    imagenet = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))
    clip = (torch.tensor([0.48145466, 0.4578275, 0.40821073]), torch.tensor([0.26862954, 0.26130258, 0.27577711]))
    raw = x * imagenet[1].view(1, 3, 1, 1) + imagenet[0].view(1, 3, 1, 1)
    torch.testing.assert_close(seen["x"], (raw - clip[0].view(1, 3, 1, 1)) / clip[1].view(1, 3, 1, 1))


def test_bad_input_fails_clearly(tmp_path):
    net = model().eval()
    x = pixel_values()
    with pytest.raises(ValueError, match="shape"):
        net(x, mask=torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        net(x, mask=torch.zeros(3, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="same number"):
        net(x, mask=torch.tensor([[True] * 8 + [False] * 8, [True] * 7 + [False] * 9]))
    with pytest.raises(ValueError, match="noise"):
        net(x, noise=torch.rand(2, 3))
    with pytest.raises(ValueError, match="not both"):
        net(x, mask=torch.zeros(2, 16, dtype=torch.bool), noise=torch.rand(2, 16))
    for ratio in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            net(x, mask_ratio=ratio)
        with pytest.raises(CONFIG_ERRORS, match="mask_ratio"):
            MaskAlignConfig(**STUDENT, mask_ratio=ratio)
    with pytest.raises(ValueError, match="image size 48x48"):
        net(pixel_values(size=48))
    with pytest.raises(ValueError, match="channels"):
        net(x[:, :1])
    with pytest.raises(ValueError, match="needs a teacher"):
        MaskAlignForPreTraining(MaskAlignConfig(**STUDENT))
    with pytest.raises(ValueError, match="not a local folder"):
        model(teacher_name_or_path=str(tmp_path / "missing"), teacher_config=None)
    CLIPModel(CLIPConfig(vision_config={**TINY, "intermediate_size": 32},
                         text_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                          num_attention_heads=2))).save_pretrained(tmp_path / "clip")
    with pytest.raises(ValueError, match="vision tower"):
        model(teacher_name_or_path=str(tmp_path / "clip"), teacher_config=None)
    with pytest.raises(ValueError, match="as many student blocks"):
        model(num_hidden_layers=3)
    with pytest.raises(ValueError, match="out of range"):
        model(loss_weights="top5")
    for field, value in (("loss_weights", "top"), ("fusion_type", "conv"), ("target_norm", "x"),
                         ("loss_type", "l3"), ("head_type", "conv"), ("mask_type", "block")):
        with pytest.raises(CONFIG_ERRORS, match=field):
            MaskAlignConfig(**{**STUDENT, field: value})
    with pytest.raises(CONFIG_ERRORS, match="model_type"):
        MaskAlignConfig(**STUDENT, teacher_config={"hidden_size": 16})
    with pytest.raises(CONFIG_ERRORS, match="class_token"):
        MaskAlignConfig(**STUDENT, class_token=False, pooling="mean")
    bad_grid = copy.deepcopy(TINY_TEACHER)
    bad_grid["patch_size"] = 16
    with pytest.raises(ValueError, match="patch grid"):
        model(teacher_config=bad_grid)
