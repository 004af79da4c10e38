"""Parity with the official Hyena N-D code (Itamarzimm/HyenaND @ e8b875e) through stored fixtures.

`tests/fixtures/make_hyena_nd_official_fixture.py` ran the official `VisionTransformer(args=...)` on CPU with random
weights perturbed by N(0, 0.1^2), for four tiny configs covering every mixer pattern of the official `--method`
(all-Hyena, Hyena-then-attention, attention-then-Hyena, alternating), both directional modes, Hyena order 2 and 3,
the sqrt decay and three grid sizes; it stored the official state dict, the input (a real photo and a noise image),
the logits and the final-norm tokens. Here the state dict is converted (zero missing / unexpected keys) and the zoo
model must reproduce both outputs to 1e-5. (The FFT convolutions themselves agree to float32 round-off: the
all-Hyena fixture matches bit for bit; attention blocks add ~1e-7 through SDPA.)
"""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hf_vision_zoo import registry
from hf_vision_zoo.conversion import convert_to_model
from hf_vision_zoo.conversion.hyena_nd import infer_config

FIXTURES = Path(__file__).parents[2] / "fixtures" / "hyena_nd_official"
RECIPE = json.loads((FIXTURES / "recipe.json").read_text())
NAMES = sorted(RECIPE["fixtures"])
_PATTERN = {"hyena2d": "all_hyena", "hyena2dattn": "hyena_then_attention", "attnhyena2d": "attention_then_hyena",
            "onebyone": "alternating"}


def load_fixture(name: str) -> tuple[dict, dict, dict]:
    entry = RECIPE["fixtures"][name]
    tensors = load_file(FIXTURES / entry["file"])
    state_dict = {k[len("state_dict."):]: v for k, v in tensors.items() if k.startswith("state_dict.")}
    return entry, state_dict, tensors


def explicit_config(entry: dict):
    """The zoo config written out from the official command line (not read off the weights)."""
    argv, vit = entry["argv"], entry["vision_transformer_kwargs"]

    def flag(name):
        return argv[argv.index(name) + 1]

    return registry.get_config(
        "hyena_nd", image_size=vit["img_size"], patch_size=vit["patch_size"], hidden_size=vit["embed_dim"],
        num_hidden_layers=vit["depth"], num_attention_heads=vit["num_heads"], num_labels=vit["num_classes"],
        mixer_pattern=_PATTERN[flag("--method")], directional_mode=flag("--directional_mode"),
        hyena_order=int(flag("--hyena_order")), filter_order=int(flag("--hyena_filter_order")),
        sqrt_decay="--hyena2d_sqrt_decay" in argv, drop_path_rate=0.0)


def test_fixtures_cover_the_official_variants_and_are_intact():
    assert RECIPE["commit"].startswith("e8b875e")
    methods = {e["argv"][e["argv"].index("--method") + 1] for e in RECIPE["fixtures"].values()}
    assert methods == set(_PATTERN)
    for name in NAMES:
        entry = RECIPE["fixtures"][name]
        path = FIXTURES / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], f"{path} changed"
        assert path.stat().st_size < 400_000
        assert entry["perturbation"]["std"] == 0.1


@pytest.mark.parametrize("name", NAMES)
def test_converted_official_weights_reproduce_the_official_outputs(name):
    entry, state_dict, tensors = load_fixture(name)
    config = explicit_config(entry)
    # the block layout the official code built (mixer and direction per block) is the config's
    official = [(b["mixer"], b["directional_mode"]) for b in entry["official_blocks"]]
    ours = [("hyena2d" if m == "hyena" else "attention", d) for m, d in
            zip(config.block_mixers(), config.block_directions())]
    assert ours == official
    model = convert_to_model("hyena_nd", state_dict, config, "official")  # strict: 0 missing / 0 unexpected
    assert sum(p.numel() for p in model.parameters()) == entry["num_parameters"]
    with torch.no_grad():
        out = model(tensors["pixel_values"], output_hidden_states=True)
    torch.testing.assert_close(out.logits, tensors["logits"], atol=1e-5, rtol=0)
    assert out.logits.abs().max() > 0.1  # a real signal, not a vanishing one
    encoder = convert_to_model("hyena_nd", state_dict, config, "official", task="feature-extraction")
    with torch.no_grad():
        features = encoder(tensors["pixel_values"]).last_hidden_state
    torch.testing.assert_close(features, tensors["last_hidden_state"], atol=1e-5, rtol=0)
    # the official classifier reads token 0 (no class token): global_pool="token"
    torch.testing.assert_close(model.classifier(features[:, 0]), tensors["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", NAMES)
def test_config_inferred_from_the_official_weights(name):
    entry, state_dict, tensors = load_fixture(name)
    expected = explicit_config(entry)
    # direction and sqrt decay are not in the weights; the rest is read off the shapes
    inferred = infer_config(state_dict, "official", directional_mode=expected.directional_mode,
                            sqrt_decay=expected.sqrt_decay, num_attention_heads=expected.num_attention_heads)
    for field in ("image_size", "patch_size", "hidden_size", "num_hidden_layers", "mixer_pattern", "hyena_order",
                  "filter_order", "filter_emb_dim", "filter_num_inner_mlps", "num_labels", "use_cls_token"):
        assert getattr(inferred, field) == getattr(expected, field), field
    with torch.no_grad():
        logits = convert_to_model("hyena_nd", state_dict, inferred, "official")(tensors["pixel_values"]).logits
    torch.testing.assert_close(logits, tensors["logits"], atol=1e-5, rtol=0)


def test_sdpa_and_eager_attention_match_the_official_hybrid():
    entry, state_dict, tensors = load_fixture("hybrid_seq")
    config = explicit_config(entry)
    config._attn_implementation = "eager"
    model = convert_to_model("hyena_nd", state_dict, config, "official")
    assert model.config._attn_implementation == "eager"
    with torch.no_grad():
        torch.testing.assert_close(model(tensors["pixel_values"]).logits, tensors["logits"], atol=1e-5, rtol=0)
