"""Common tests for every registered architecture (DESIGN.md §6): each check of `ZooModelTester` runs for every
architecture in `hf_vision_zoo.registry` (and, where it depends on the head, for every task it registers), on the
architecture's tiny config. Registering a new architecture is enough to get all of them."""

import pytest

from common.zoo_model_tester import (
    BACKBONE,
    FEATURE_EXTRACTION,
    IMAGE_CLASSIFICATION,
    ZooModelTester,
    architecture_tasks,
    architectures,
)

ARCHS = architectures()
ARCH_TASKS = architecture_tasks()
_ids = [f"{a}-{t}" for a, t in ARCH_TASKS]


def _tester(arch_name: str) -> ZooModelTester:
    return ZooModelTester(arch_name)


def _require(arch_name: str, *tasks: str) -> ZooModelTester:
    tester = _tester(arch_name)
    missing = [t for t in tasks if t not in tester.tasks]
    assert not missing, f"{arch_name} registers no model for {missing}; every zoo architecture must provide them"
    return tester


def test_registry_is_not_empty():
    assert ARCHS, "no architecture registered: the common tests would test nothing"
    for arch_name in ARCHS:
        tester = _tester(arch_name)
        # every architecture provides features and classification; hierarchical ones also a backbone
        assert FEATURE_EXTRACTION in tester.tasks and IMAGE_CLASSIFICATION in tester.tasks, tester.tasks


@pytest.mark.parametrize("arch_name", ARCHS)
def test_tiny_config_is_tiny(arch_name):
    _tester(arch_name).check_config_is_tiny()


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_forward_shapes(arch_name, task):
    _tester(arch_name).check_forward_shapes(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_no_nan(arch_name, task):
    _tester(arch_name).check_no_nan(task)


@pytest.mark.parametrize("arch_name", [a for a, t in ARCH_TASKS if t == BACKBONE])
def test_backbone_stage_selection(arch_name):
    _require(arch_name, BACKBONE).check_backbone_stage_selection()


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_tuple_dict_equivalence(arch_name, task):
    _tester(arch_name).check_tuple_dict_equivalence(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_determinism(arch_name, task):
    _tester(arch_name).check_determinism(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_batching_equivalence(arch_name, task):
    _tester(arch_name).check_batching_equivalence(task, atol=1e-5)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_hidden_states_output(arch_name, task):
    _tester(arch_name).check_hidden_states(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_attention_outputs(arch_name, task):
    _tester(arch_name).check_attentions(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_save_load_safetensors(arch_name, task, tmp_dir):
    _tester(arch_name).check_save_load(task, tmp_dir)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_auto_round_trip(arch_name, tmp_dir):
    _tester(arch_name).check_auto_round_trip(tmp_dir)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_base_model_from_classification_checkpoint(arch_name, tmp_dir):
    _require(arch_name, FEATURE_EXTRACTION, IMAGE_CLASSIFICATION).check_base_model_from_classification_checkpoint(
        tmp_dir)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_meta_device_init_is_complete(arch_name, task):
    _tester(arch_name).check_meta_init_completeness(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_every_parameter_gets_a_gradient(arch_name, task):
    _tester(arch_name).check_every_parameter_gets_a_gradient(task)


@pytest.mark.parametrize("use_reentrant", [False, True], ids=["non_reentrant", "reentrant"])
@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_gradient_checkpointing(arch_name, task, use_reentrant):
    _tester(arch_name).check_gradient_checkpointing(task, use_reentrant)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_eager_matches_sdpa(arch_name, task, tmp_dir):
    _tester(arch_name).check_eager_matches_sdpa(task, tmp_dir, atol=1e-5)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_other_input_sizes(arch_name, task):
    _tester(arch_name).check_other_input_sizes(task)


@pytest.mark.parametrize(("arch_name", "task"), ARCH_TASKS, ids=_ids)
def test_bad_inputs_raise_clear_errors(arch_name, task):
    _tester(arch_name).check_bad_inputs(task)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_problem_types(arch_name):
    _require(arch_name, IMAGE_CLASSIFICATION).check_problem_types()


@pytest.mark.parametrize("arch_name", ARCHS)
def test_pipelines_on_real_photo(arch_name, tmp_dir, photo):
    _require(arch_name, FEATURE_EXTRACTION, IMAGE_CLASSIFICATION).check_pipelines(tmp_dir, photo)


@pytest.mark.parametrize("arch_name", ARCHS)
def test_image_processor_backends(arch_name, tmp_dir, photos):
    _tester(arch_name).check_image_processor_backends(tmp_dir, photos)
