"""Common tests for every registered self-supervised pre-training model (registry task "pretraining").

The contract `examples/pretrain.py` relies on: `XForPreTraining(config)(pixel_values)` returns a finite scalar
`.loss` that is reproducible under a seed and trains every trainable parameter; the model round-trips through
`save_pretrained` / `AutoModelForPreTraining`; its encoder reloads with `AutoModel` from the same folder; and bad
pixel input fails clearly. Method-specific behaviour (parity, schedules, teachers) is tested in tests/models/<arch>/.
"""

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining

from common.zoo_model_tester import PRETRAINING, ZooModelTester, architectures
from hf_vision_zoo import registry

PRETRAINING_ARCHS = [a for a in architectures() if PRETRAINING in registry.get_architecture(a).model_classes]


def test_some_architecture_pretrains():
    assert "mae" in PRETRAINING_ARCHS, PRETRAINING_ARCHS


def _model_and_input(arch_name):
    tester = ZooModelTester(arch_name)
    config = tester.config()
    model = tester.model(PRETRAINING, config=config)
    return tester, config, model, tester.pixel_values(config=config)


def _loss(model, pixel_values, seed=0):
    torch.manual_seed(seed)
    return model(pixel_values=pixel_values).loss


@pytest.mark.parametrize("arch_name", PRETRAINING_ARCHS)
def test_loss_is_a_reproducible_finite_scalar(arch_name):
    _, _, model, pixel_values = _model_and_input(arch_name)
    with torch.no_grad():
        loss = _loss(model, pixel_values)
        assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0, loss
        torch.testing.assert_close(_loss(model, pixel_values), loss, rtol=0, atol=0)
        out = model(pixel_values=pixel_values, return_dict=False)
        assert isinstance(out, tuple) and out[0].ndim == 0


@pytest.mark.parametrize("arch_name", PRETRAINING_ARCHS)
def test_every_trainable_parameter_gets_a_gradient(arch_name):
    _, _, model, pixel_values = _model_and_input(arch_name)
    model.train()
    _loss(model, pixel_values).backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("arch_name", PRETRAINING_ARCHS)
def test_save_load_and_encoder_reuse(arch_name, tmp_path):
    _, config, model, pixel_values = _model_and_input(arch_name)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(reloaded) is type(model)
    with torch.no_grad():
        torch.testing.assert_close(_loss(reloaded, pixel_values), _loss(model, pixel_values), rtol=0, atol=1e-6)
    encoder = AutoModel.from_pretrained(tmp_path)
    expected = registry.get_architecture(arch_name).model_classes.get("feature-extraction")
    assert expected is not None and isinstance(encoder, expected)
    source = getattr(model, model.base_model_prefix).state_dict()
    loaded = encoder.state_dict()
    shared = set(source) & set(loaded)
    assert shared and len(shared) >= 0.9 * len(loaded), "the encoder did not load from the pre-training folder"
    for key in shared:
        torch.testing.assert_close(loaded[key], source[key], rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("arch_name", PRETRAINING_ARCHS)
def test_bad_pixel_values_fail_clearly(arch_name):
    tester, config, model, pixel_values = _model_and_input(arch_name)
    with pytest.raises(ValueError, match="channels"):
        model(pixel_values=pixel_values[:, :1])
    with pytest.raises(ValueError, match="NaN|infinite"):
        model(pixel_values=torch.full_like(pixel_values, float("nan")))
