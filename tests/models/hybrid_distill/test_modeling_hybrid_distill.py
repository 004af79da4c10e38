"""Hybrid Distill property tests (no code exists; the losses and schedule follow the zoo's reading of the paper,
see modeling_hybrid_distill): the losses equal their formulas written out on small tensors and inside the model,
the progressive redundant-token masking drops the least-attended patches at a ratio growing with progress, teachers
(from folders or config dicts, CLIP / ViT / ViTMAE / zoo MAE) stay frozen in eval, incompatible patch grids fail
clearly, and gradients reach every student parameter."""

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import CLIPVisionConfig, CLIPVisionModel, ViTMAEConfig, ViTMAEModel

from hf_vision_zoo.models.hybrid_distill import (
    TINY_MIM_TEACHER,
    TINY_TEACHER,
    HybridDistillConfig,
    HybridDistillForPreTraining,
    feature_distillation_loss,
    redundant_token_mask,
    relation_distillation_loss,
    select_relations,
)
from hf_vision_zoo.models.mae import MaeConfig, MaeModel

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)  # strict configs wrap the ValueError
STUDENT = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2)


def model(seed=0, **overrides):
    torch.manual_seed(seed)
    kwargs = {**STUDENT, "teacher_config": dict(TINY_TEACHER), "mim_teacher_config": dict(TINY_MIM_TEACHER),
              **overrides}
    return HybridDistillForPreTraining(HybridDistillConfig(**kwargs)).eval()


def pixels(batch=2, seed=1):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def smooth_l1(d):
    return torch.where(d.abs() < 1, 0.5 * d**2, d.abs() - 0.5)


def test_feature_loss_equals_the_formula():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g) * 3 + 1
    variance = teacher.var(-1, unbiased=False, keepdim=True)
    whitened = (teacher - teacher.mean(-1, keepdim=True)) / (variance + 1e-5).sqrt()
    torch.testing.assert_close(feature_distillation_loss(student, teacher), smooth_l1(student - whitened).mean())
    torch.testing.assert_close(feature_distillation_loss(student, teacher, "none", "l2"),
                               ((student - teacher) ** 2).mean())
    l2normed = teacher / teacher.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(feature_distillation_loss(student, teacher, "l2", "l1"),
                               (student - l2normed).abs().mean())


def test_relation_selection_and_kl_equal_the_formula():
    g = torch.Generator().manual_seed(0)
    attention = torch.rand(1, 2, 5, 5, generator=g).softmax(-1)
    index = torch.tensor([[0, 2, 4]])
    sub = select_relations(attention, index)
    for h in range(2):
        for i, q in enumerate([0, 2, 4]):
            row = torch.stack([attention[0, h, q, k] for k in (0, 2, 4)])
            torch.testing.assert_close(sub[0, h, i], row / row.sum())
    student = torch.rand(1, 2, 3, 3, generator=g).softmax(-1)
    expected = 0.0
    for h in range(2):
        for i in range(3):
            expected += sum(sub[0, h, i, k] * torch.log(sub[0, h, i, k] / student[0, h, i, k]) for k in range(3))
    torch.testing.assert_close(relation_distillation_loss(student, sub), expected / 6)
    # different head counts: head-averaged maps
    one_head = student.mean(1, keepdim=True)
    torch.testing.assert_close(relation_distillation_loss(one_head, sub),
                               relation_distillation_loss(one_head, sub.mean(1, keepdim=True)))
    torch.testing.assert_close(relation_distillation_loss(student, sub, "l2"), ((student - sub) ** 2).mean())
    assert relation_distillation_loss(sub, sub).abs() < 1e-6


def test_model_loss_equals_the_formulas_on_the_teachers_outputs():
    m = model(feature_loss_weight=0.7, relation_loss_weight=1.3)
    x = pixels()
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [1, 5, 6]] = True
    mask[1, [0, 9, 15]] = True
    with torch.no_grad():
        out = m(x, mask=mask, output_attentions=True)
        teacher = m.teacher(pixel_values=x, output_hidden_states=True, output_attentions=True)
        mim = m.mim_teacher(pixel_values=x, output_attentions=True)
        student = m.vit(x, mask=mask, output_attentions=True)
    keep = (~mask).nonzero()[:, 1].view(2, -1)
    index = torch.cat([torch.zeros(2, 1, dtype=torch.long), 1 + keep], 1)  # [CLS] + visible patches
    target = torch.stack([teacher.hidden_states[-1][b, index[b]] for b in range(2)])
    projected = m.feature_head(student.last_hidden_state)
    feat = feature_distillation_loss(projected, target)
    rel = relation_distillation_loss(student.attentions[0], select_relations(mim.attentions[0], index))
    assert m.relation_pairs == [(1, 1)]
    torch.testing.assert_close(out.feature_loss, feat)
    torch.testing.assert_close(out.relation_loss, rel)
    torch.testing.assert_close(out.loss, 0.7 * feat + 1.3 * rel)
    assert out.token_importance is None and torch.equal(out.mask.bool(), mask)


def test_redundant_token_mask_drops_the_least_important():
    importance = torch.tensor([[0.5, 0.1, 0.9, 0.3, 0.2, 0.8, 0.05, 0.6]])
    assert redundant_token_mask(importance, 0.0).sum() == 0
    mask = redundant_token_mask(importance, 0.5)
    assert mask[0].nonzero().flatten().tolist() == [1, 3, 4, 6]  # the four smallest
    assert redundant_token_mask(importance, 0.25)[0].nonzero().flatten().tolist() == [1, 6]
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        redundant_token_mask(importance, 1.0)


def test_progressive_schedule_and_which_tokens_are_dropped():
    m = model(mask_ratio_start=0.0, mask_ratio_end=0.5)
    x = pixels()
    assert [m.mask_ratio_at(p) for p in (0.0, 0.5, 1.0)] == [0.0, 0.25, 0.5]
    with torch.no_grad():
        teacher = m.teacher(pixel_values=x, output_attentions=True)
        cls_attention = teacher.attentions[-1][:, :, 0, 1:].mean(1)
        counts = []
        for progress in (0.0, 0.25, 0.5, 0.75, 1.0):
            m.set_progress(progress)
            out = m(x)
            dropped = out.mask.bool()
            counts.append(int(dropped[0].sum()))
            assert (dropped.sum(1) == 16 - int(16 * (1 - m.mask_ratio_at()))).all()
            torch.testing.assert_close(out.token_importance, cls_attention)
            for b in range(2):  # every dropped patch is less attended than every kept one
                if dropped[b].any():
                    assert cls_attention[b][dropped[b]].max() <= cls_attention[b][~dropped[b]].min()
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] == 8
    with torch.no_grad():
        m.set_progress(0.0)
        assert m(x, mask_ratio=0.5).mask.sum(1).tolist() == [8.0, 8.0]  # explicit ratio overrides the schedule
    m2 = model(redundancy_source="mim_teacher")
    m2.set_progress(1.0)
    with torch.no_grad():
        mim = m2.mim_teacher(pixel_values=x, output_attentions=True)
        torch.testing.assert_close(m2(x).token_importance, mim.attentions[-1][:, :, 0, 1:].mean(1))
    for bad in (-0.1, 1.5, True, "half"):
        with pytest.raises(ValueError, match="progress"):
            m.set_progress(bad)


def test_teachers_are_frozen_in_eval_and_students_get_every_gradient():
    m = model(hidden_dropout_prob=0.0).train()
    m.set_progress(1.0)
    assert not m.teacher.training and not m.mim_teacher.training
    before = {k: v.clone() for k, v in m.state_dict().items() if "teacher" in k}
    out = m(pixels())
    out.loss.backward()
    for name, p in m.named_parameters():
        if name.startswith(("teacher.", "mim_teacher.")):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.grad is not None and p.grad.any(), f"no gradient for {name}"
    torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=1.0).step()
    for k, v in m.state_dict().items():
        if k in before:
            assert torch.equal(v, before[k]), k


def _tiny(cls, config_cls, **extra):
    torch.manual_seed(0)
    return cls(config_cls(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8,
                          **extra))


@pytest.mark.parametrize("kind", ["vit_mae", "zoo_mae"])
def test_teachers_from_folders(tmp_path, kind):
    clip = _tiny(CLIPVisionModel, CLIPVisionConfig, intermediate_size=32)
    clip.save_pretrained(tmp_path / "clip")
    if kind == "vit_mae":
        mim = _tiny(ViTMAEModel, ViTMAEConfig, intermediate_size=32)
    else:
        mim = _tiny(MaeModel, MaeConfig, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                    decoder_num_attention_heads=2)
    mim.save_pretrained(tmp_path / "mim")
    m = model(teacher_name_or_path=str(tmp_path / "clip"), mim_teacher_name_or_path=str(tmp_path / "mim"))
    for key, value in clip.state_dict().items():
        torch.testing.assert_close(m.teacher.state_dict()[key], value, rtol=0, atol=0)
    for key, value in mim.state_dict().items():
        torch.testing.assert_close(m.mim_teacher.state_dict()[key], value, rtol=0, atol=0)
    assert m.config.teacher_config["model_type"] == "clip_vision_model"
    x = pixels()
    with torch.no_grad():
        out, prefix = m.teacher_forward("mim_teacher", x)
        assert prefix == 1 and out.hidden_states[-1].shape[1] == 17  # every patch, in patch order
        kwargs = {"noise": torch.arange(16.0).expand(2, -1)} if kind == "vit_mae" else {}
        mim.config._attn_implementation = "eager"
        if kind == "vit_mae":  # the reference without masking; the model sets this on its own copy
            mim.config.mask_ratio = 0.0
        reference = mim.eval()(pixel_values=x, output_attentions=True, **kwargs).attentions[-1]
        torch.testing.assert_close(out.attentions[-1], reference)
        m.set_progress(1.0)
        loss = m(x).loss
    m.save_pretrained(tmp_path / "pretrain")
    reloaded = HybridDistillForPreTraining.from_pretrained(tmp_path / "pretrain").eval()
    assert not any(p.requires_grad for p in reloaded.teacher.parameters())
    reloaded.set_progress(1.0)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(x).loss, loss)


def test_vit_teacher_and_layer_mapping():
    m = model(teacher_config=dict(model_type="vit", hidden_size=24, num_hidden_layers=3, num_attention_heads=3,
                                  intermediate_size=32, image_size=32, patch_size=8),
              mim_teacher_config={**TINY_MIM_TEACHER, "num_hidden_layers": 4}, relation_layers=[1, 2])
    assert m.relation_pairs == [(1, 2), (2, 4)]
    assert m.feature_head.out_features == 24
    with torch.no_grad():
        assert torch.isfinite(m(pixels()).loss)


def test_incompatible_teachers_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="patch grid"):
        model(teacher_config={**TINY_TEACHER, "patch_size": 16})
    with pytest.raises(ValueError, match="patch grid"):
        model(mim_teacher_config={**TINY_MIM_TEACHER, "patch_size": 4, "image_size": 16})
    with pytest.raises(ValueError, match="MIM teacher"):
        model(mim_teacher_config=None)
    with pytest.raises(ValueError, match="exceed"):
        model(relation_layers=[2], mim_teacher_layers=[3])
    with pytest.raises(ValueError, match="not a local folder"):
        model(teacher_config=None, teacher_name_or_path=str(tmp_path / "missing"))


def test_bad_input_fails_clearly():
    m = model()
    x = pixels()
    with pytest.raises(ValueError, match="shape"):
        m(x, mask=torch.zeros(2, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="same number"):
        m(x, mask=torch.tensor([[True] + [False] * 15, [False] * 16]))
    with pytest.raises(ValueError, match="not both"):
        m(x, mask=torch.zeros(2, 16, dtype=torch.bool), mask_ratio=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        m(x, mask_ratio=1.0)
    with pytest.raises(ValueError, match="image_size"):
        m(torch.randn(2, 3, 48, 48))
    for bad in (dict(mask_ratio_end=1.0), dict(relation_layers=[3]), dict(class_token=False, pooling="mean"),
                dict(feature_loss_type="cosine"), dict(teacher_config={"hidden_size": 3}),
                dict(mim_teacher_layers=[1, 2]), dict(relation_loss_weight=-1.0)):
        with pytest.raises(CONFIG_ERRORS):
            HybridDistillConfig(**STUDENT, **bad)
