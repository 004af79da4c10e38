"""Property tests of the zoo's Path-Ensemble ViT (paper 42; no official code): the multi-path form equals the
cascade (a plain zoo ViT with the same weights), what path pruning removes (output and FLOPs), what EnsembleScale
does, and clear errors for inconsistent configs."""

import pytest
import torch
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
    ensemble_only = {k: settings.pop(k) for k in ("pruned_paths", "ensemble_scale", "path_form") if k in settings}
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


@pytest.mark.parametrize(("overrides", "message"), [
    ({"pruned_paths": ["ffn9"]}, "unknown paths"),
    ({"pruned_paths": ["attn1", "attn1"]}, "twice"),
    ({"pruned_paths": path_names(3)}, "every path"),
    ({"pruned_paths": ["ffn1"], "path_form": "cascade"}, "multi_path"),
    ({"ensemble_scale": True, "path_form": "cascade"}, "multi_path"),
    ({"path_form": "parallel"}, "path_form"),
    ({"use_pooler": True}, "use_pooler"),
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
