"""Property tests of the zoo's Path-Ensemble ViT (paper 42; no official code): the multi-path form equals the
cascade (a plain zoo ViT with the same weights), what path pruning removes (output and FLOPs), what EnsembleScale
does, what self-distillation adds to the loss (recomputed by hand; the teacher gets no gradient; off changes nothing),
and clear errors for inconsistent configs."""

import math

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from torch.utils.flop_counter import FlopCounterMode

from hf_vision_zoo.models.path_ensemble_vit import (
    PathEnsembleVitConfig,
    PathEnsembleVitForImageClassification,
    PathEnsembleVitModel,
    path_names,
)
from hf_vision_zoo.models.vit import VitConfig, VitForImageClassification

CONFIG_ERRORS = (ValueError, StrictDataclassClassValidationError)
BASE = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, num_labels=5)
VIT_SETTINGS = [
    {},
    {"pooling": "mean"},  # fc_norm after pooling
    {"layer_scale_init_value": 0.5, "num_register_tokens": 2},
    {"class_token": False, "pooling": "mean", "use_fc_norm": False, "position_embedding_type": "sincos"},
]


def _vit_and_ensemble(seed=0, **overrides):
    """A zoo ViT classifier with perturbed random weights (std 0.1) and a Path-Ensemble ViT holding the same
    weights (strict load: same parameter names)."""
    settings = {**BASE, **overrides}
    ensemble_only = {k: settings.pop(k) for k in list(settings)
                     if k in ("pruned_paths", "ensemble_scale", "path_form") or "distillation" in k}
    torch.manual_seed(seed)
    vit = VitForImageClassification(VitConfig(**settings)).eval()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in vit.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)
    ensemble = PathEnsembleVitForImageClassification(PathEnsembleVitConfig(**settings, **ensemble_only)).eval()
    missing, unexpected = ensemble.load_state_dict(vit.state_dict(), strict=False)
    assert not unexpected and set(missing) <= {"vit.path_scales"}, (missing, unexpected)
    return vit, ensemble


def _pixels(batch=2, seed=1):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _flops(model, x) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def test_path_names():
    assert path_names(2) == ["embed", "attn1", "ffn1", "attn2", "ffn2"]
    assert len(PathEnsembleVitConfig().path_names) == 1 + 2 * 12


@pytest.mark.parametrize("settings", VIT_SETTINGS, ids=["cls", "mean_fc_norm", "layerscale_registers", "gap_sincos"])
def test_multi_path_form_equals_the_cascade_vit(settings, photo_tensor):
    """The central claim: x_L = x_0 + sum_l (a_l + f_l) exactly, so the explicit ensemble reproduces the plain ViT
    (logits, features, every hidden state) at 1e-5, on random input and on a real photo."""
    vit, ensemble = _vit_and_ensemble(**settings)
    for x in (_pixels(), photo_tensor):
        with torch.no_grad():
            reference = vit(x, output_hidden_states=True)
            multi = ensemble(x, path_form="multi_path", output_hidden_states=True)
            cascade = ensemble(x, path_form="cascade", output_hidden_states=True)
        for out in (multi, cascade):
            torch.testing.assert_close(out.logits, reference.logits, atol=1e-5, rtol=0)
            for mine, theirs in zip(out.hidden_states, reference.hidden_states, strict=True):
                torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
        # the decomposition itself: the path outputs sum to the pre-norm feature of the ViT's last block
        with torch.no_grad():
            paths = ensemble.vit(x, output_path_outputs=True).path_outputs
        assert len(paths) == 1 + 2 * BASE["num_hidden_layers"]
        torch.testing.assert_close(torch.stack(paths).sum(0), reference.hidden_states[-1], atol=1e-5, rtol=0)
        # ...and are not trivial: every path contributes
        assert all(p.abs().mean() > 1e-3 for p in paths)


@pytest.fixture
def photo_tensor(photo):
    from hf_vision_zoo.models.path_ensemble_vit import PathEnsembleVitImageProcessor

    processor = PathEnsembleVitImageProcessor(size={"height": 32, "width": 32}, do_center_crop=False)
    return processor(photo, return_tensors="pt").pixel_values


def test_pruning_a_middle_path_removes_exactly_its_direct_contribution():
    """Pruning attn2 subtracts a_2 from the classifier's input and nothing else: the longer paths still receive it
    (hidden states unchanged), and no computation is saved."""
    vit, ensemble = _vit_and_ensemble()
    _, pruned = _vit_and_ensemble(pruned_paths=["attn2"])
    x = _pixels()
    with torch.no_grad():
        reference = vit(x, output_hidden_states=True)
        paths = ensemble.vit(x, output_path_outputs=True).path_outputs
        out = pruned(x, output_hidden_states=True)
        expected_feature = reference.hidden_states[-1] - paths[path_names(3).index("attn2")]
        expected_logits = vit.classifier(vit.vit.pool(vit.vit.layernorm(expected_feature)))
    torch.testing.assert_close(out.logits, expected_logits, atol=1e-5, rtol=0)
    for mine, theirs in zip(out.hidden_states, reference.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    assert (out.logits - reference.logits).abs().max() > 1e-3, "pruning a path must change the prediction"
    assert _flops(pruned, x[:1]) == _flops(ensemble, x[:1])


def test_pruning_trailing_paths_saves_their_flops():
    """Paths after the last kept one feed nothing the classifier reads: they are not computed. Pruning ffn3 saves
    the last FFN (2 linears over all T tokens: 4*T*D*H FLOPs); pruning attn3+ffn3 saves the whole last layer."""
    vit, ensemble = _vit_and_ensemble()
    x = _pixels(batch=1)
    tokens, dim, hidden = 1 + 16, 32, 128
    ffn = 4 * tokens * dim * hidden
    attention = 8 * tokens * dim * dim + 4 * tokens * tokens * dim
    ensemble.set_attn_implementation("eager")  # CPU SDPA kernels are invisible to the flop counter
    full = _flops(ensemble, x)
    with torch.no_grad():
        paths = ensemble.vit(x, output_path_outputs=True).path_outputs
        reference = vit(x, output_hidden_states=True)
    for pruned_paths, saved, removed in ((["ffn3"], ffn, ["ffn3"]), (["attn3", "ffn3"], ffn + attention,
                                                                        ["attn3", "ffn3"])):
        _, pruned = _vit_and_ensemble(pruned_paths=pruned_paths)
        pruned.set_attn_implementation("eager")
        assert _flops(pruned, x) == full - saved
        with torch.no_grad():
            out = pruned(x, output_hidden_states=True)
            got = pruned.vit(x, output_path_outputs=True).path_outputs
        assert [name for name, p in zip(path_names(3), got) if p is None] == removed
        assert len(out.hidden_states) == 1 + 3 - (len(removed) == 2)  # x_0, x_1, x_2 (+ x_3 if computed)
        feature = reference.hidden_states[-1] - sum(paths[path_names(3).index(n)] for n in removed)
        expected = vit.classifier(vit.vit.pool(vit.vit.layernorm(feature)))
        torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=0)


def test_ensemble_scale_starts_as_the_unscaled_model_and_reweights_paths():
    vit, scaled = _vit_and_ensemble(ensemble_scale=True)
    x = _pixels()
    names = path_names(3)
    assert scaled.vit.path_scales.shape == (len(names),) and torch.equal(scaled.vit.path_scales,
                                                                           torch.ones(len(names)))
    with torch.no_grad():
        reference = vit(x, output_hidden_states=True)
        torch.testing.assert_close(scaled(x).logits, reference.logits, atol=1e-5, rtol=0)
        paths = scaled.vit(x, output_path_outputs=True).path_outputs
        scales = torch.linspace(0.2, 1.5, len(names))
        scaled.vit.path_scales.copy_(scales)
        out = scaled(x, output_hidden_states=True)
    feature = sum(s * p for s, p in zip(scales, paths))
    expected = vit.classifier(vit.vit.pool(vit.vit.layernorm(feature)))
    torch.testing.assert_close(out.logits, expected, atol=1e-5, rtol=0)
    # the scales weigh only the direct contributions: the inputs of the longer paths stay the ViT's
    for mine, theirs in zip(out.hidden_states, reference.hidden_states, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    # they are learnable: a loss gives every scale a gradient
    scaled.train()
    scaled(x, labels=torch.tensor([0, 1])).loss.backward()
    assert scaled.vit.path_scales.grad is not None and (scaled.vit.path_scales.grad != 0).all()


def test_ensemble_scale_ignores_pruned_paths():
    _, model = _vit_and_ensemble(ensemble_scale=True, pruned_paths=["embed", "ffn1"])
    x = _pixels()
    model.train()
    model(x, labels=torch.tensor([0, 1])).loss.backward()
    grad = model.vit.path_scales.grad
    names = path_names(3)
    assert grad[names.index("embed")] == 0 and grad[names.index("ffn1")] == 0
    assert (grad[[names.index(n) for n in ("attn1", "attn2", "ffn2", "attn3", "ffn3")]] != 0).all()


def test_zoo_vit_checkpoint_loads_through_from_pretrained(tmp_path):
    vit, _ = _vit_and_ensemble()
    vit.save_pretrained(tmp_path)
    loaded, info = PathEnsembleVitForImageClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    x = _pixels()
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x).logits, vit(x).logits, atol=1e-5, rtol=0)



@pytest.mark.parametrize("settings", [{}, {"ensemble_scale": True, "pruned_paths": ["attn2"], "pooling": "mean"},
                                      {"path_form": "cascade"}], ids=["plain", "scaled_pruned_gap", "cascade"])
def test_leave_one_path_out_logits_are_the_pruned_models(settings):
    """Row p of `leave_one_path_out_logits` (one forward) is what a model with p added to `pruned_paths` predicts;
    the row of an already pruned path is the model's own logits."""
    _, model = _vit_and_ensemble(**settings)
    if model.vit.path_scales is not None:
        with torch.no_grad():
            model.vit.path_scales.copy_(torch.linspace(0.5, 1.5, len(path_names(3))))
    x = _pixels()
    rows = model.leave_one_path_out_logits(x)
    assert rows.shape == (len(path_names(3)), 2, BASE["num_labels"]) and not rows.requires_grad
    already = settings.get("pruned_paths", [])
    for index, name in enumerate(path_names(3)):
        overrides = {**settings, "path_form": "multi_path", "pruned_paths": sorted(set(already) | {name})}
        _, pruned = _vit_and_ensemble(**overrides)
        if pruned.vit.path_scales is not None:
            with torch.no_grad():
                pruned.vit.path_scales.copy_(model.vit.path_scales)
        with torch.no_grad():
            expected = pruned(x).logits
        torch.testing.assert_close(rows[index], expected, atol=1e-5, rtol=0, msg=name)
        if name not in already:
            assert (rows[index] - model(x).logits).abs().max() > 1e-4, name
    _, single = _vit_and_ensemble(pruned_paths=[n for n in path_names(3) if n != "attn1"])
    rows = single.leave_one_path_out_logits(x)
    assert rows[path_names(3).index("attn1")].isnan().all() and not rows[0].isnan().any()

@pytest.mark.parametrize(("overrides", "message"), [
    ({"pruned_paths": ["ffn9"]}, "unknown paths"),
    ({"pruned_paths": ["attn1", "attn1"]}, "twice"),
    ({"pruned_paths": path_names(3)}, "every path"),
    ({"pruned_paths": ["ffn1"], "path_form": "cascade"}, "multi_path"),
    ({"ensemble_scale": True, "path_form": "cascade"}, "multi_path"),
    ({"path_form": "parallel"}, "path_form"),
    ({"use_pooler": True}, "use_pooler"),
    ({"ensemble_scale": True, "ensemble_scale_init": float("inf")}, "ensemble_scale_init"),
])
def test_bad_configs_fail_clearly(overrides, message):
    with pytest.raises(CONFIG_ERRORS) as error:
        PathEnsembleVitConfig(**{**BASE, **overrides})
    assert message in str(error.value), str(error.value)


def test_bad_forward_arguments_fail_clearly():
    model = PathEnsembleVitModel(PathEnsembleVitConfig(**BASE, pruned_paths=["ffn3"])).eval()
    with pytest.raises(ValueError, match="multi_path"):
        model(_pixels(), path_form="cascade")
    with pytest.raises(ValueError, match="path_form"):
        model(_pixels(), path_form="ensemble")


# --- self-distillation (long paths teach short paths; the zoo's reading, see the module docstring) ---------------

def _distillation_by_hand(model, x, layers, temperature):
    """The students' logits and the distillation term recomputed from the model's own path outputs: u_l = the kept,
    scaled sum of the paths embed ... ffn{l}, read out by the shared final norm, pooling and classifier; the mean over
    students of T^2 * KL(teacher || student) with the full ensemble's logits as teacher."""
    encoder = model.vit
    paths = encoder(x, output_path_outputs=True).path_outputs
    kept = model.config.kept_paths
    scales = encoder.path_scales if encoder.path_scales is not None else torch.ones(len(paths))
    teacher = model.classifier(encoder.pool(encoder.layernorm(
        sum(s * p for s, p, k in zip(scales, paths, kept) if k and p is not None))))
    students, kls = [], []
    for layer in layers:
        prefix = [(s, p) for s, p, k in list(zip(scales, paths, kept))[:1 + 2 * layer] if k and p is not None]
        logits = model.classifier(encoder.pool(encoder.layernorm(sum(s * p for s, p in prefix))))
        students.append(logits)
        kls.append(F.kl_div(F.log_softmax(logits / temperature, -1), F.log_softmax(teacher / temperature, -1),
                            log_target=True, reduction="batchmean") * temperature ** 2)
    return teacher, students, torch.stack(kls).mean()


DISTILLATION_SETTINGS = [
    {},  # [CLS], every shorter prefix (layers 1, 2), T = 1, alpha = 1
    {"pooling": "mean", "distillation_layers": [1, 3], "distillation_temperature": 2.0, "distillation_weight": 0.3},
    {"pooling": "mean", "use_fc_norm": False, "ensemble_scale": True, "pruned_paths": ["attn2", "ffn3"],
     "distillation_layers": [2, 1], "distillation_temperature": 4, "distillation_weight": 0.5},
    {"path_form": "cascade", "layer_scale_init_value": 0.5, "num_register_tokens": 1, "distillation_layers": [2]},
]
DISTILLATION_IDS = ["cls_default", "mean_fc_norm_T2", "scaled_pruned_gap", "cascade_layerscale"]


@pytest.mark.parametrize("settings", DISTILLATION_SETTINGS, ids=DISTILLATION_IDS)
def test_self_distillation_off_changes_nothing(settings):
    """Off (the default) the output is what it was: no distillation fields, loss = CE exactly; switching it on
    leaves the prediction (the teacher) bit-identical and only adds the term to the loss. (The pre-change module was
    also compared bit for bit, logits, loss and gradients, in the report's scratch check.)"""
    assert PathEnsembleVitConfig().self_distillation is False
    _, off = _vit_and_ensemble(**settings)
    _, on = _vit_and_ensemble(**settings, self_distillation=True)
    if off.vit.path_scales is not None:
        with torch.no_grad():
            scales = torch.linspace(0.5, 1.5, len(path_names(3)))
            off.vit.path_scales.copy_(scales)
            on.vit.path_scales.copy_(scales)
    x, labels = _pixels(batch=3), torch.tensor([0, 4, 2])
    with torch.no_grad():
        out_off = off(x, labels=labels, output_hidden_states=True)
        out_on = on(x, labels=labels, output_hidden_states=True)
        as_tuple = off(x, labels=labels, return_dict=False)
    assert out_off.distillation_loss is None and out_off.short_path_logits is None
    assert len(as_tuple) == 2  # (loss, logits), as before
    assert torch.equal(out_off.loss, F.cross_entropy(out_off.logits, labels))
    assert torch.equal(out_on.logits, out_off.logits)
    for mine, theirs in zip(out_on.hidden_states, out_off.hidden_states, strict=True):
        assert torch.equal(mine, theirs)
    assert out_on.distillation_loss > 1e-4
    torch.testing.assert_close(out_on.loss, out_off.loss + on.config.distillation_weight * out_on.distillation_loss,
                               atol=1e-6, rtol=0)


@pytest.mark.parametrize("settings", DISTILLATION_SETTINGS, ids=DISTILLATION_IDS)
def test_self_distillation_loss_is_ce_plus_alpha_kl_computed_by_hand(settings):
    """loss = CE(z) + alpha * mean_l T^2 KL(softmax(z/T) || softmax(z_l/T)), z_l the classifier on the prefix sums of
    the model's own path outputs (kept, scaled), recomputed here from `path_outputs`; students in config order."""
    _, model = _vit_and_ensemble(**settings, self_distillation=True)
    config = model.config
    if model.vit.path_scales is not None:
        with torch.no_grad():
            model.vit.path_scales.copy_(torch.linspace(0.4, 1.6, len(path_names(3))))
    x, labels = _pixels(batch=3), torch.tensor([1, 0, 3])
    layers = config.student_layers
    assert layers == settings.get("distillation_layers", [1, 2])
    with torch.no_grad():
        out = model(x, labels=labels)
        teacher, students, kl = _distillation_by_hand(model, x, layers, config.distillation_temperature)
    torch.testing.assert_close(out.logits, teacher, atol=1e-5, rtol=0)
    assert len(out.short_path_logits) == len(layers)
    for mine, theirs in zip(out.short_path_logits, students, strict=True):
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    torch.testing.assert_close(out.distillation_loss, kl, atol=1e-6, rtol=0)
    expected = F.cross_entropy(teacher, labels) + config.distillation_weight * kl
    torch.testing.assert_close(out.loss, expected, atol=1e-5, rtol=0)
    assert kl > 1e-3, "the students must differ from the teacher for the check to mean anything"
    # without labels the term is still returned (a training loop that computes its own CE can add it)
    with torch.no_grad():
        torch.testing.assert_close(model(x).distillation_loss, kl, atol=1e-6, rtol=0)


def test_students_are_the_hidden_states_of_the_plain_vit():
    """Nothing pruned or scaled: student l is the ViT's own x_l (hidden state l) through its final norm and head."""
    vit, model = _vit_and_ensemble(self_distillation=True, distillation_layers=[1, 2])
    x = _pixels()
    with torch.no_grad():
        hidden = vit(x, output_hidden_states=True).hidden_states
        out = model(x)
    for layer, logits in zip([1, 2], out.short_path_logits, strict=True):
        expected = vit.classifier(vit.vit.pool(vit.vit.layernorm(hidden[layer])))
        torch.testing.assert_close(logits, expected, atol=1e-5, rtol=0)


def test_the_teacher_gets_no_gradient_from_the_distillation_term():
    """The teacher is detached: the distillation term has no path to the full-ensemble logits, so it gives no
    gradient to what only the long paths use (the last block, the last layer's path scales), while the students'
    blocks do get one. Without the detach the last block would get a gradient (checked, so the test can fail)."""
    _, model = _vit_and_ensemble(self_distillation=True, ensemble_scale=True)  # students: layers 1, 2 of 3
    model.train()
    x = _pixels()
    out = model(x)
    assert torch.autograd.grad(out.distillation_loss, out.logits, retain_graph=True, allow_unused=True)[0] is None
    out.distillation_loss.backward(retain_graph=True)
    last = list(model.vit.blocks[-1].parameters())
    assert all(p.grad is None or not p.grad.any() for p in last)
    names = path_names(3)
    assert not model.vit.path_scales.grad[[names.index("attn3"), names.index("ffn3")]].any()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.vit.blocks[0].parameters())
    assert model.classifier.weight.grad.abs().sum() > 0  # the shared head learns from the students
    # the same KL with a non-detached teacher would reach the last block
    model.zero_grad()
    temperature = model.config.distillation_temperature
    attached = torch.stack([F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(out.logits / temperature, -1),
                                     log_target=True, reduction="batchmean") for s in out.short_path_logits]).mean()
    torch.testing.assert_close(attached, out.distillation_loss, atol=1e-6, rtol=0)
    attached.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in last)


@pytest.mark.parametrize("pruned", [None, ["ffn3"]])
def test_a_student_holding_every_path_is_the_teacher(pruned):
    """The layer-L student sums every (kept) path: it is the teacher, so its KL is 0 and the loss is the CE."""
    _, model = _vit_and_ensemble(self_distillation=True, distillation_layers=[3], pruned_paths=pruned)
    x, labels = _pixels(), torch.tensor([2, 3])
    with torch.no_grad():
        out = model(x, labels=labels)
    torch.testing.assert_close(out.short_path_logits[0], out.logits, atol=1e-6, rtol=0)
    assert abs(out.distillation_loss.item()) < 1e-6
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits, labels), atol=1e-6, rtol=0)


def test_self_distillation_reuses_the_forward():
    """No second forward: switching it on adds only the students' classifier matmul (2 * students * B * D * C
    FLOPs; the norms are not counted by the flop counter), whatever the number of students."""
    x = _pixels(batch=2)
    _, off = _vit_and_ensemble()
    off.set_attn_implementation("eager")
    base = _flops(off, x)
    for layers in ([1], [1, 2]):
        _, on = _vit_and_ensemble(self_distillation=True, distillation_layers=layers)
        on.set_attn_implementation("eager")
        assert _flops(on, x) - base == 2 * len(layers) * 2 * BASE["hidden_size"] * BASE["num_labels"]


def test_training_steps_make_the_students_agree_with_the_teacher():
    """A few AdamW steps on a fixed batch of real photos, from the same start with alpha = 1 and alpha = 0 (the term
    computed but not trained): both fit the labels, and the distillation term ends far lower with alpha = 1."""
    from skimage import data

    photos = [getattr(data, name)() for name in ("astronaut", "chelsea", "coffee", "rocket")]
    x = torch.stack([F.interpolate(torch.as_tensor(p).permute(2, 0, 1)[None].float() / 127.5 - 1, size=(32, 32),
                                   mode="bilinear", antialias=True)[0] for p in photos])
    labels = torch.tensor([0, 1, 2, 3])
    final = {}
    for alpha in (1.0, 0.0):
        _, model = _vit_and_ensemble(self_distillation=True, distillation_weight=alpha)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(12):
            out = model(x, labels=labels)
            if step == 0:
                first_ce = (out.loss - alpha * out.distillation_loss).item()
            optimizer.zero_grad()
            out.loss.backward()
            optimizer.step()
        with torch.no_grad():
            last = model(x, labels=labels)
        ce = F.cross_entropy(last.logits, labels).item()
        assert ce < 0.2 * first_ce, (alpha, first_ce, ce)
        final[alpha] = last.distillation_loss.item()
    assert final[1.0] < 0.5 * final[0.0], final


@pytest.mark.parametrize(("overrides", "message"), [
    ({"distillation_layers": [0]}, "out of range"),
    ({"distillation_layers": [4]}, "out of range"),
    ({"distillation_layers": []}, "empty"),
    ({"distillation_layers": [1, 1]}, "twice"),
    ({"distillation_temperature": 0}, "distillation_temperature"),
    ({"distillation_temperature": -1.0}, "distillation_temperature"),
    ({"distillation_weight": -0.1}, "distillation_weight"),
    ({"distillation_weight": float("nan")}, "distillation_weight"),
    ({"num_labels": 1}, "num_labels"),
    ({"problem_type": "multi_label_classification"}, "single-label"),
    ({"num_hidden_layers": 1}, "1-layer"),
    ({"pruned_paths": ["embed", "attn1", "ffn1"], "distillation_layers": [1, 2]}, "no kept path"),
])
def test_bad_self_distillation_configs_fail_clearly(overrides, message):
    with pytest.raises(CONFIG_ERRORS) as error:
        PathEnsembleVitConfig(**{**BASE, "self_distillation": True, **overrides})
    assert message in str(error.value), str(error.value)


def test_bad_self_distillation_calls_fail_clearly():
    model = PathEnsembleVitForImageClassification(PathEnsembleVitConfig(**BASE, self_distillation=True))
    multi_hot = torch.tensor([[1.0, 0, 1, 0, 0], [0, 1, 0, 0, 0]])
    with pytest.raises(ValueError, match="single-label"):
        model(_pixels(), labels=multi_hot)
    for layers in ([0], [4], [True], "1", [1.5]):
        with pytest.raises(ValueError, match="short_path_layers"):
            model.vit(_pixels(), short_path_layers=layers)
    pruned = PathEnsembleVitModel(PathEnsembleVitConfig(**BASE, pruned_paths=["embed", "attn1", "ffn1"]))
    with pytest.raises(ValueError, match="pruned"):
        pruned(_pixels(), short_path_layers=[1])
    from hf_vision_zoo.models.path_ensemble_vit import self_distillation_loss

    with pytest.raises(ValueError, match="temperature"):
        self_distillation_loss(torch.zeros(1, 2, 5), torch.zeros(2, 5), temperature=0)
    with pytest.raises(ValueError, match="students"):
        self_distillation_loss(torch.zeros(2, 5), torch.zeros(2, 5))


def test_a_self_distilling_model_trains_through_the_shared_loop(tmp_path):
    """The classification loop builds, trains, saves and reloads it (config fields round-trip); it adds the
    distillation term to its own cross-entropy (`training_loss_terms`) and logs it."""
    from accelerate.state import AcceleratorState, GradientState

    from hf_vision_zoo.training.arguments import TrainingArguments
    from hf_vision_zoo.training.loop import train

    overrides = ["image_size=28", "patch_size=7", "hidden_size=32", "num_hidden_layers=3", "num_attention_heads=2",
                 "self_distillation=true", "distillation_layers=[1,2]", "distillation_temperature=2.0"]
    args = TrainingArguments(
        output_dir=str(tmp_path / "model"), model="path_ensemble_vit", model_overrides=overrides,
        dataset="fashion_mnist", max_train_samples=64, max_eval_samples=32, epochs=1, batch_size=16,
        eval_batch_size=32, learning_rate=3e-3, warmup_steps=1, num_threads=1, progress=False, report_to="none",
        seed=3)
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    try:
        result = train(args)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    assert result.global_step == 4 and math.isfinite(result.history[-1]["train_loss"])
    assert result.history[-1]["train_distillation_loss"] > 0
    model = PathEnsembleVitForImageClassification.from_pretrained(result.output_dir)
    config = model.config
    assert (config.self_distillation, config.distillation_layers, config.distillation_temperature) == (True, [1, 2],
                                                                                                        2.0)
    with torch.no_grad():
        out = model(torch.randn(2, 3, 28, 28), labels=torch.tensor([0, 1]))
    assert len(out.short_path_logits) == 2 and out.distillation_loss > 0
