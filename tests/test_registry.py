"""The zoo index: variants, configs, model and image-processor factories, Auto registration, provenance."""

import re

import pytest
import torch

import hf_vision_zoo
from hf_vision_zoo import registry

SWIN_VARIANTS = sorted(
    [f"swin_{size}_patch4_window7_224.{tag}" for size in ("tiny", "small", "base")
     for tag in ("ms_in1k", "ms_in22k", "ms_in22k_ft_in1k")]
    + [f"swin_large_patch4_window7_224.{tag}" for tag in ("ms_in22k", "ms_in22k_ft_in1k")]
    + [f"swin_base_patch4_window12_384.{tag}" for tag in ("ms_in1k", "ms_in22k", "ms_in22k_ft_in1k")]
    + [f"swin_large_patch4_window12_384.{tag}" for tag in ("ms_in22k", "ms_in22k_ft_in1k")]
)
SWIN_T = "swin_tiny_patch4_window7_224.ms_in1k"
TINY = dict(image_size=32, patch_size=2, embed_dim=16, depths=[1, 1], num_heads=[2, 2], window_size=4)


def test_public_api_is_exported():
    for name in ("list_models", "get_config", "create_model", "create_image_processor", "get_variant",
                 "list_architectures"):
        assert getattr(hf_vision_zoo, name) is getattr(registry, name)


def test_list_models_has_the_16_swin_variants():
    swin = hf_vision_zoo.list_models("swin_*")
    assert swin == SWIN_VARIANTS and len(swin) == 16
    everything = hf_vision_zoo.list_models()
    assert everything == sorted(everything) and set(swin) <= set(everything)
    assert "swin" in hf_vision_zoo.list_architectures()


@pytest.mark.parametrize(("pattern", "expected"), [
    ("swin_base*", [n for n in SWIN_VARIANTS if n.startswith("swin_base")]),
    ("swin*_384.*", [n for n in SWIN_VARIANTS if "_384." in n]),
    ("*.ms_in22k", [n for n in SWIN_VARIANTS if n.endswith(".ms_in22k")]),
    (SWIN_T, [SWIN_T]),
    ("resnet*", []),
])
def test_list_models_pattern(pattern, expected):
    assert hf_vision_zoo.list_models(pattern) == expected
    assert expected == [] or len(expected) < 16


def test_variant_configs_follow_the_official_settings():
    sizes = {"tiny": (96, [2, 2, 6, 2], [3, 6, 12, 24]), "small": (96, [2, 2, 18, 2], [3, 6, 12, 24]),
             "base": (128, [2, 2, 18, 2], [4, 8, 16, 32]), "large": (192, [2, 2, 18, 2], [6, 12, 24, 48])}
    for name in SWIN_VARIANTS:
        config = hf_vision_zoo.get_config(name)
        size, resolution = re.match(r"swin_(\w+?)_patch4_window\d+_(\d+)\.", name).groups()
        window = int(re.search(r"window(\d+)", name).group(1))
        assert (config.embed_dim, config.depths, config.num_heads) == sizes[size], name
        assert config.image_size_2d == (int(resolution),) * 2 and config.window_size == window, name
        assert config.patch_size == 4 and config.num_labels == (21841 if name.endswith(".ms_in22k") else 1000), name
        assert type(config) is hf_vision_zoo.SwinConfig and config.model_type == "zoo_swin"


def test_get_config_overrides():
    config = hf_vision_zoo.get_config(SWIN_T, num_labels=10, drop_path_rate=0.3, image_size=256, window_size=8)
    assert (config.num_labels, config.drop_path_rate, config.window_size) == (10, 0.3, 8)
    assert config.image_size_2d == (256, 256)
    assert config.embed_dim == 96  # untouched fields keep the variant's value
    assert hf_vision_zoo.get_config(SWIN_T).num_labels == 1000  # overrides do not leak into the registry
    backbone = hf_vision_zoo.get_config(SWIN_T, out_features=["stage2", "stage4"])
    assert backbone.out_features == ["stage2", "stage4"] and backbone.out_indices == [2, 4]
    # an architecture name gives the architecture's default config
    default = hf_vision_zoo.get_config("swin", embed_dim=48)
    assert default.embed_dim == 48 and default.depths == [2, 2, 6, 2] and default.image_size_2d == (224, 224)


def test_get_config_rejects_unknown_fields():
    with pytest.raises(TypeError, match="no_such_field"):
        hf_vision_zoo.get_config(SWIN_T, no_such_field=1)
    with pytest.raises(TypeError, match="SwinConfig"):
        hf_vision_zoo.get_config("swin", embed_dims=96)  # a near miss is still rejected


def test_get_config_rejects_inconsistent_values():
    # huggingface_hub's strict dataclasses wrap the config's ValueError in StrictDataclassClassValidationError
    # (not a ValueError subclass); either way the message names the field
    from huggingface_hub.errors import StrictDataclassClassValidationError

    errors = (ValueError, StrictDataclassClassValidationError)
    with pytest.raises(errors, match="num_heads"):
        hf_vision_zoo.get_config(SWIN_T, num_heads=[3, 6, 12])
    with pytest.raises(errors, match="does not divide"):
        hf_vision_zoo.get_config(SWIN_T, num_heads=[5, 6, 12, 24])


@pytest.mark.parametrize(("task", "cls"), [("feature-extraction", hf_vision_zoo.SwinModel),
                                           ("image-classification", hf_vision_zoo.SwinForImageClassification),
                                           ("backbone", hf_vision_zoo.SwinBackbone)])
def test_create_model_for_each_task(task, cls):
    model = hf_vision_zoo.create_model(SWIN_T, task=task, num_labels=7, **TINY)
    assert type(model) is cls
    assert model.config.num_labels == 7 and model.config.embed_dim == 16
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 32, 32))
    if task == "image-classification":
        assert out.logits.shape == (1, 7)
    elif task == "feature-extraction":
        assert out.pooler_output.shape == (1, 32)
    else:
        assert [tuple(f.shape) for f in out.feature_maps] == [(1, 32, 8, 8)]
    # architecture name works too
    assert type(hf_vision_zoo.create_model("swin", task=task, **TINY)) is cls


def test_create_model_default_task_is_classification():
    assert type(hf_vision_zoo.create_model(SWIN_T, **TINY)) is hf_vision_zoo.SwinForImageClassification


def test_create_model_unknown_task():
    with pytest.raises(ValueError, match="segmentation"):
        hf_vision_zoo.create_model(SWIN_T, task="segmentation", **TINY)


def test_unknown_name_raises_key_error_with_close_matches():
    with pytest.raises(KeyError, match=re.escape(SWIN_T)) as info:
        hf_vision_zoo.create_model("swin_tiny_patch4_window7_224.ms_in1")
    assert "Unknown model" in str(info.value)
    for call in (hf_vision_zoo.get_config, hf_vision_zoo.get_variant, hf_vision_zoo.create_image_processor):
        with pytest.raises(KeyError, match="swin_small_patch4_window7_224"):
            call("swin_smal_patch4_window7_224.ms_in1k")
    with pytest.raises(KeyError, match="list_models"):  # nothing close: point to the index
        hf_vision_zoo.create_model("zzzzzz")
    with pytest.raises(KeyError):
        registry.get_architecture("swim")


@pytest.mark.parametrize("name", SWIN_VARIANTS)
def test_create_image_processor_per_variant(name, photo):
    resolution = int(re.search(r"_(\d+)\.", name).group(1))
    for backend in ("torchvision", "pil"):
        processor = hf_vision_zoo.create_image_processor(name, backend=backend)
        expected_class = {"torchvision": hf_vision_zoo.SwinImageProcessor,
                          "pil": hf_vision_zoo.SwinImageProcessorPil}[backend]
        assert type(processor) is expected_class
        if resolution == 384:  # official 384 configs: TEST.CROP False, resize straight to 384x384
            assert not processor.do_center_crop and processor.size == {"height": 384, "width": 384}
        else:  # resize the short side to 256 (224 / 0.875), centre-crop 224
            assert processor.do_center_crop and processor.size == {"shortest_edge": 256}
            assert processor.crop_size == {"height": 224, "width": 224}
        assert list(processor.image_mean) == pytest.approx([0.485, 0.456, 0.406])
        assert list(processor.image_std) == pytest.approx([0.229, 0.224, 0.225])
        assert int(processor.resample) == 3  # bicubic
    pixels = hf_vision_zoo.create_image_processor(name)(photo, return_tensors="pt").pixel_values
    assert tuple(pixels.shape) == (1, 3, resolution, resolution)


def test_create_image_processor_overrides_and_bad_backend():
    processor = hf_vision_zoo.create_image_processor(SWIN_T, size={"height": 32, "width": 32}, do_center_crop=False)
    assert processor.size == {"height": 32, "width": 32} and not processor.do_center_crop
    assert hf_vision_zoo.create_image_processor(SWIN_T).size == {"shortest_edge": 256}  # no leak
    with pytest.raises(ValueError, match="backend"):
        hf_vision_zoo.create_image_processor(SWIN_T, backend="opencv")


def test_swin_t_parameter_count_is_exact():
    with torch.device("meta"):
        model = hf_vision_zoo.create_model(SWIN_T)
    assert sum(p.numel() for p in model.parameters()) == 28_288_354  # the paper's 28M; timm/official count


def test_variant_sizes_grow_and_22k_heads_are_wider():
    def count(name):
        with torch.device("meta"):
            model = hf_vision_zoo.create_model(name)
        return sum(p.numel() for p in model.parameters())

    tiny, small, base, large = (count(f"swin_{s}_patch4_window7_224.ms_in22k_ft_in1k") for s in
                                ("tiny", "small", "base", "large"))
    assert tiny < small < base < large
    head_1k = count("swin_base_patch4_window7_224.ms_in1k")
    head_22k = count("swin_base_patch4_window7_224.ms_in22k")
    assert head_22k - head_1k == (21841 - 1000) * (1024 + 1)  # Linear(1024 -> classes)


def test_auto_classes_know_zoo_swin():
    from transformers import (
        CONFIG_MAPPING,
        AutoBackbone,
        AutoConfig,
        AutoModel,
        AutoModelForImageClassification,
    )
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    assert CONFIG_MAPPING["zoo_swin"] is hf_vision_zoo.SwinConfig
    assert type(AutoConfig.for_model("zoo_swin")) is hf_vision_zoo.SwinConfig
    config = hf_vision_zoo.SwinConfig(**TINY)
    assert AutoModel._model_mapping[hf_vision_zoo.SwinConfig] is hf_vision_zoo.SwinModel
    classification = AutoModelForImageClassification._model_mapping[hf_vision_zoo.SwinConfig]
    assert classification is hf_vision_zoo.SwinForImageClassification
    assert AutoBackbone._model_mapping[hf_vision_zoo.SwinConfig] is hf_vision_zoo.SwinBackbone
    assert type(AutoModel.from_config(config)) is hf_vision_zoo.SwinModel
    assert type(AutoModelForImageClassification.from_config(config)) is hf_vision_zoo.SwinForImageClassification
    assert type(AutoBackbone.from_config(config)) is hf_vision_zoo.SwinBackbone
    processors = IMAGE_PROCESSOR_MAPPING[hf_vision_zoo.SwinConfig]
    assert processors == {"torchvision": hf_vision_zoo.SwinImageProcessor, "pil": hf_vision_zoo.SwinImageProcessorPil}
    # our type never shadows transformers' own Swin
    from transformers import SwinConfig as TransformersSwinConfig

    assert CONFIG_MAPPING["swin"] is TransformersSwinConfig
    # registering twice (e.g. re-importing) is harmless
    registry.register_with_transformers()
    assert CONFIG_MAPPING["zoo_swin"] is hf_vision_zoo.SwinConfig


def test_every_architecture_and_variant_has_provenance():
    for arch_name in hf_vision_zoo.list_architectures():
        arch = registry.get_architecture(arch_name)
        assert arch.paper and arch.paper_url.startswith("https://arxiv.org/abs/"), arch_name
        # papers without released code say so in their module docstring; the rest name their official repository
        assert arch.official_repo == "" or arch.official_repo.startswith("https://github.com/"), arch_name
        assert arch.license and arch.license == arch.license.strip().lower(), arch_name
        assert set(arch.image_processor_classes) == {"torchvision", "pil"}, arch_name
        assert arch.tiny_config, f"{arch_name} has no tiny_config for the common tests"
        assert arch.config_class.model_type == f"zoo_{arch_name}"
    for name in hf_vision_zoo.list_models():
        variant = hf_vision_zoo.get_variant(name)
        assert variant.name == name and variant.architecture in hf_vision_zoo.list_architectures()
        assert variant.dataset, name
        # where no weights were released the variant says so in its notes
        assert (variant.checkpoint or "").startswith("https://") or (variant.checkpoint is None and variant.notes), (
            f"{name} has neither a checkpoint URL nor a note on why not")
        assert variant.preprocessing, name
        assert variant.top1 is None or 50 < variant.top1 < 100
    swin = registry.get_architecture("swin")
    assert swin.paper_url == "https://arxiv.org/abs/2103.14030"
    assert swin.official_repo == "https://github.com/microsoft/Swin-Transformer" and swin.license == "mit"
    assert hf_vision_zoo.get_variant(SWIN_T).top1 == 81.2
    assert hf_vision_zoo.get_variant(SWIN_T).checkpoint.endswith("/swin_tiny_patch4_window7_224.pth")
    # ImageNet-22k pre-training checkpoints have no ImageNet-1k accuracy
    assert all(hf_vision_zoo.get_variant(n).top1 is None for n in hf_vision_zoo.list_models("*.ms_in22k"))


def test_registering_twice_is_rejected():
    arch = registry.get_architecture("swin")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_architecture(arch)
    with pytest.raises(ValueError, match="already registered"):
        registry.register_variant(hf_vision_zoo.get_variant(SWIN_T))
    with pytest.raises(ValueError, match="unknown architecture"):
        registry.register_variant(registry.Variant(name="x.y", architecture="nope", config={}, preprocessing={},
                                                   dataset="d"))
