"""The Brain-Score CrossViT recipe's pieces (Berrios & Deza 2022): pixel-space FGSM-with-random-start and PGD
(`training/adversarial.py`), the rotation-invariance augmentation, the recipe preset and its LR schedule, fast
adversarial training inside the accelerate loop (gradient accumulation, bf16, exact resume, 2 processes), and
robust-accuracy evaluation. The end-to-end test trains a tiny model on real Fashion-MNIST both ways and checks the
adversarially trained one is clearly more robust under PGD."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from training_helpers import REPO, subprocess_env, tiny_args

from hf_vision_zoo.training import (
    RECIPES,
    AttackError,
    TrainingError,
    evaluate_main,
    evaluate_model,
    fgsm_random_start,
    pgd,
    train,
    training_arguments_from_recipe,
)
from hf_vision_zoo.training.adversarial import parse_pixel_value, to_normalized, to_pixels
from hf_vision_zoo.training.arguments import TrainingArguments, parse_into
from hf_vision_zoo.training.data import Preprocessing, TrainTransform
from hf_vision_zoo.training.loop import halving_schedule

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FMNIST_MEAN, FMNIST_STD = (0.286,), (0.353,)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: two threads on a loaded 2-core machine are several times slower for these small ops."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------------ fixed models
class LinearClassifier(torch.nn.Module):
    def __init__(self, channels=1, size=28, classes=10):
        super().__init__()
        self.fc = torch.nn.Linear(channels * size * size, classes)

    def forward(self, pixel_values):
        return self.fc(pixel_values.flatten(1))


@pytest.fixture(scope="module")
def fitted_linear(fmnist_arrays):
    """A softmax classifier fitted (full batch, 100 Adam steps, 1 thread) on 1,000 real Fashion-MNIST images; returns
    the model and 500 normalised test images with labels."""
    train_x, train_y, test_x, test_y = fmnist_arrays
    torch.manual_seed(0)
    model = LinearClassifier()
    x = to_normalized(torch.tensor(train_x[:1000], dtype=torch.float32)[:, None] / 255, FMNIST_MEAN, FMNIST_STD)
    y = torch.tensor(train_y[:1000], dtype=torch.long)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    model.eval()
    test = to_normalized(torch.tensor(test_x, dtype=torch.float32)[:, None] / 255, FMNIST_MEAN, FMNIST_STD)
    return model, test, torch.tensor(test_y, dtype=torch.long)


def _accuracy(model, x, y):
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


# ------------------------------------------------------------------------------------------------ attacks
@pytest.mark.parametrize("attack", ["fgsm", "pgd"])
def test_perturbation_stays_in_the_epsilon_ball_and_the_pixel_range(attack):
    """Checked in pixel space with ImageNet's per-channel normalisation (so a normalised-space bound would fail)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(8 * 14 * 14, 5))
    pixels = torch.rand(6, 3, 16, 16)
    pixels[:, :, :4] = 0.0  # saturated regions: the clip to [0, 1] must act
    pixels[:, :, -4:] = 1.0
    x = to_normalized(pixels, IMAGENET_MEAN, IMAGENET_STD)
    labels = torch.arange(6) % 5
    eps = 8 / 255
    generator = torch.Generator().manual_seed(1)
    if attack == "fgsm":
        adv = fgsm_random_start(model, x, labels, epsilon=eps, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                generator=generator)
    else:
        adv = pgd(model, x, labels, epsilon=eps, steps=5, alpha=3 / 255, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                  generator=generator)
    adv_pixels = to_pixels(adv, IMAGENET_MEAN, IMAGENET_STD)
    delta = adv_pixels - pixels
    assert delta.abs().max() <= eps + 1e-5
    assert delta.abs().max() > 0.9 * eps  # it really moves (sign steps reach the boundary)
    assert adv_pixels.min() >= -1e-5 and adv_pixels.max() <= 1 + 1e-5
    assert not adv.requires_grad


def test_pgd_lowers_accuracy_more_than_random_noise_of_the_same_size(fitted_linear):
    model, x, y = fitted_linear
    eps = 0.1
    clean = _accuracy(model, x, y)
    pixels = to_pixels(x, FMNIST_MEAN, FMNIST_STD)
    sign = torch.randint(0, 2, pixels.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    noisy = to_normalized((pixels + eps * sign).clamp(0, 1), FMNIST_MEAN, FMNIST_STD)
    random_noise = _accuracy(model, noisy, y)
    fgsm = _accuracy(model, fgsm_random_start(model, x, y, epsilon=eps, mean=FMNIST_MEAN, std=FMNIST_STD,
                                              generator=torch.Generator().manual_seed(0)), y)
    attacked = _accuracy(model, pgd(model, x, y, epsilon=eps, steps=10, mean=FMNIST_MEAN, std=FMNIST_STD,
                                    generator=torch.Generator().manual_seed(0)), y)
    assert clean > 0.7
    assert random_noise > clean - 0.15  # noise of the same L-inf size barely hurts ...
    assert attacked < random_noise - 0.4  # ... PGD does
    assert attacked < fgsm < clean  # and more PGD steps beat one FGSM step
    two = _accuracy(model, pgd(model, x, y, epsilon=eps, steps=10, restarts=2, mean=FMNIST_MEAN, std=FMNIST_STD,
                               generator=torch.Generator().manual_seed(0)), y)
    assert two <= attacked + 1e-6  # restarts can only break more images


def test_attacks_are_deterministic_with_a_seed_and_leave_parameter_gradients_alone(fitted_linear):
    model, x, y = fitted_linear
    x, y = x[:64], y[:64]

    def run(seed, attack):
        generator = torch.Generator().manual_seed(seed)
        if attack == "fgsm":
            return fgsm_random_start(model, x, y, epsilon=0.05, mean=FMNIST_MEAN, std=FMNIST_STD, generator=generator)
        return pgd(model, x, y, epsilon=0.05, steps=3, mean=FMNIST_MEAN, std=FMNIST_STD, generator=generator)

    model.zero_grad(set_to_none=True)
    model.fc.weight.grad = torch.full_like(model.fc.weight, 0.5)  # e.g. gradients being accumulated
    for attack in ("fgsm", "pgd"):
        assert torch.equal(run(3, attack), run(3, attack))
        assert not torch.equal(run(3, attack), run(4, attack))
    assert torch.equal(model.fc.weight.grad, torch.full_like(model.fc.weight, 0.5))
    assert model.fc.bias.grad is None
    model.fc.weight.grad = None
    # epsilon 0 is the identity (up to the pixel round trip)
    torch.testing.assert_close(pgd(model, x, y, epsilon=0.0, mean=FMNIST_MEAN, std=FMNIST_STD), x, atol=1e-5,
                               rtol=0)
    # soft targets (mixup/cutmix) are accepted by the training attack
    soft = F.one_hot(y, 10).float()
    assert fgsm_random_start(model, x, soft, epsilon=0.05, mean=FMNIST_MEAN, std=FMNIST_STD).shape == x.shape


@pytest.mark.parametrize("kwargs, message", [
    (dict(epsilon=-0.1), "epsilon must be a number >= 0"),
    (dict(epsilon=float("nan")), "epsilon must be a number >= 0"),
    (dict(epsilon=2.0), "Did you mean 2.0/255"),
    (dict(epsilon=0.1, steps=0), "steps must be an integer >= 1"),
    (dict(epsilon=0.1, steps=2.5), "steps must be an integer >= 1"),
    (dict(epsilon=0.1, alpha=0.0), "alpha must be > 0"),
    (dict(epsilon=0.1, alpha=-1e-3), "alpha must be > 0"),
    (dict(epsilon=0.1, restarts=0), "restarts must be an integer >= 1"),
    (dict(epsilon=0.1, mean=(0.1, 0.2)), "mean has 2 values but the input has 1 channels"),
    (dict(epsilon=0.1, std=(0.0,)), "std must be > 0"),
])
def test_bad_attack_settings_are_clear_errors(kwargs, message):
    model = LinearClassifier(size=4)
    x, y = torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long)
    with pytest.raises(AttackError, match=message):
        pgd(model, x, y, **kwargs)
    if "steps" not in kwargs and "restarts" not in kwargs:
        with pytest.raises(AttackError, match=message):
            fgsm_random_start(model, x, y, **kwargs)


def test_bad_attack_inputs_are_clear_errors():
    model = LinearClassifier(size=4)
    with pytest.raises(AttackError, match="empty batch"):
        pgd(model, torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long), epsilon=0.1)
    with pytest.raises(AttackError, match="one row per image"):
        fgsm_random_start(model, torch.zeros(2, 1, 4, 4), torch.zeros(3, dtype=torch.long), epsilon=0.1)
    with pytest.raises(AttackError, match=r"\(batch, channels, height, width\)"):
        pgd(model, torch.zeros(1, 16), torch.zeros(1, dtype=torch.long), epsilon=0.1)


def test_pixel_values_from_the_command_line():
    assert parse_pixel_value("2/255") == pytest.approx(2 / 255)
    assert parse_pixel_value("0.5") == 0.5
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="fraction like 2/255"):
        parse_pixel_value("two")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_pixel_value("2/0")


# ------------------------------------------------------------------------------------------------ rotation
def _asymmetric_image(height=12, width=12):
    array = np.zeros((height, width), dtype=np.uint8)
    array[1:4, 1:8] = 255  # an "L": no rotation maps it onto itself
    array[1:10, 1:3] = 180
    return Image.fromarray(array)


def test_rotation_invariance_is_the_official_transform():
    """Per sample: RandomApply(RandomRotation((90, 90)), p) then RandomApply(RandomRotation((180, 180)), p), before
    the crop; the result equals torchvision's rotation of the PIL image, and the four rotations are equally likely."""
    import torchvision.transforms.v2.functional as TF

    image = _asymmetric_image()
    prep = Preprocessing(height=12, width=12, mean=[0.0], std=[1.0], num_channels=1)
    rotating = TrainTransform(prep, augment=False, rotation_invariance=True, seed=5)
    plain = TrainTransform(prep, augment=False, seed=5)
    out = rotating([image] * 400, list(range(400)), epoch=0)
    expected = [TF.pil_to_tensor(image.rotate(angle)).float() / 255 for angle in (0, 90, 180, 270)]
    which = [next(k for k, e in enumerate(expected) if torch.equal(o, e)) for o in out]  # every output is one
    counts = np.bincount(which, minlength=4)
    assert counts.min() > 70  # ~100 each
    assert torch.equal(plain([image], [0], epoch=0)[0], expected[0])  # off by default
    # the same draws on another epoch give another pattern; training-only (eval transforms never rotate)
    assert not torch.equal(out, rotating([image] * 400, list(range(400)), epoch=1))
    # a non-square image keeps its size and matches torchvision's RandomRotation((90, 90)) (expand=False)
    wide = _asymmetric_image(10, 14)
    wide_prep = Preprocessing(height=10, width=14, mean=[0.0], std=[1.0], num_channels=1)
    transform = TrainTransform(wide_prep, augment=False, rotation_invariance=True, rotation_prob=1.0)
    reference = TF.pil_to_tensor(TF.rotate(TF.rotate(wide, 90.0), 180.0)).float() / 255  # 270 degrees
    torch.testing.assert_close(transform([wide], [0], 0)[0], reference, atol=0, rtol=0)
    with pytest.raises(ValueError, match="rotation probability"):
        TrainTransform(prep, rotation_invariance=True, rotation_prob=1.5)


# ------------------------------------------------------------------------------------------------ recipe
def test_recipe_preset_sets_the_official_settings_and_options_override_it():
    args = parse_into(TrainingArguments, ["--recipe", "brainscore_crossvit18", "--output-dir", "out",
                                          "--epochs", "2", "--adv-epsilon", "4/255"])
    assert args.recipe == "brainscore_crossvit18"
    assert (args.rotation_invariance, args.adversarial, args.optimizer, args.lr_schedule) == (
        True, "fgsm", "adam", "halving")
    assert args.adv_alpha == pytest.approx(2.5 / 255) and args.adv_epsilon == pytest.approx(4 / 255)
    assert (args.learning_rate, args.weight_decay, args.batch_size, args.seed, args.epochs) == (2e-4, 1e-4, 64, 0, 2)
    assert (args.label_smoothing, args.max_grad_norm, args.crop_pct) == (0.0, 0.0, 0.875)
    plain = parse_into(TrainingArguments, ["--output-dir", "out"])
    assert (plain.adversarial, plain.rotation_invariance, plain.optimizer) == ("none", False, "adamw")
    assert set(RECIPES) >= {"brainscore_crossvit18", "brainscore_crossvit18_adv", "brainscore_crossvit18_rot"}
    assert not RECIPES["brainscore_crossvit18_adv"]["rotation_invariance"]
    with pytest.raises(SystemExit):
        parse_into(TrainingArguments, ["--recipe", "nope", "--output-dir", "out"])
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        training_arguments_from_recipe("nope", output_dir="out")


def test_halving_schedule_matches_the_official_custom_lr_scheduler():
    """Official `custom_lr_scheduler_v1(epoch, i, n)`: 8e-5 -> 2e-4 over epoch 0, 2e-4 -> 1e-4 over epoch 1, then
    halving per epoch, linear in the step i of n."""
    def official(epoch, i, n):
        bounds = [8e-5, 2e-4, 1e-4, 5e-5, 2.5e-5, 1.25e-5, 6.25e-6, 3.125e-6]
        return bounds[epoch] + (bounds[epoch + 1] - bounds[epoch]) / n * i

    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=2e-4)
    n = 7
    scheduler = halving_schedule(optimizer, n, start_factor=0.4)
    for step in range(6 * n):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(official(step // n, step % n, n), rel=1e-9)
        optimizer.step()
        scheduler.step()


def test_bad_training_settings_are_clear_errors(tmp_path):
    for changes, message in [
        (dict(adversarial="fgsm", adv_epsilon=-1.0), "--adv-epsilon / --adv-alpha: epsilon must be"),
        (dict(adversarial="fgsm", adv_alpha=0.0), "alpha must be > 0"),
        (dict(rotation_prob=2.0), "--rotation-prob must be in"),
        (dict(random_grayscale=-0.1), "--random-grayscale must be in"),
        (dict(recipe="nope"), "unknown --recipe 'nope'"),
        (dict(lr_start_factor=0.0), "--lr-start-factor must be > 0"),
    ]:
        with pytest.raises(TrainingError, match=message):
            train(tiny_args(tmp_path, **changes))
    assert not (tmp_path / "model").exists()


def test_bad_evaluation_settings_are_clear_errors(tmp_path, capsys):
    folder = tmp_path / "not-used"  # validation comes before any loading
    for kwargs, message in [(dict(pgd_steps=0.5), "--pgd-steps must be an integer"),
                            (dict(pgd_steps=-1), "--pgd-steps must be an integer"),
                            (dict(pgd_steps=3, adv_epsilon=-0.01), "epsilon must be a number >= 0"),
                            (dict(pgd_steps=3, adv_alpha=0.0), "alpha must be > 0"),
                            (dict(pgd_steps=3, pgd_restarts=0), "restarts must be an integer >= 1")]:
        with pytest.raises(TrainingError, match=message):
            evaluate_model(folder, **kwargs)
    assert evaluate_main([str(folder), "--pgd-steps", "2", "--adv-epsilon=-1/255"]) == 1
    assert "epsilon must be a number >= 0" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ in the loop
FAT = dict(adversarial="fgsm", adv_epsilon=8 / 255, rotation_invariance=True, max_train_samples=128,
           max_eval_samples=32, batch_size=16, gradient_accumulation_steps=2, checkpoint_every=3, keep_checkpoints=0,
           mixup=0.4, optimizer="adam", lr_schedule="halving")


def test_fast_adversarial_training_resumes_exactly_with_gradient_accumulation(tmp_path):
    """FGSM-RS + rotations + mixup + accumulation: stopped mid-epoch and resumed == uninterrupted (the random start
    comes from the micro-batch's seeded generator). And the attack really changes training."""
    from safetensors.torch import load_file

    reference = train(tiny_args(tmp_path / "ref", **FAT))
    stopped = train(tiny_args(tmp_path / "b", stop_after_steps=5, **FAT))
    assert stopped.stopped
    resumed = train(tiny_args(tmp_path / "b", resume="latest", **FAT))
    a, b = load_file(str(reference.output_dir / "model.safetensors")), load_file(str(resumed.output_dir /
                                                                                   "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    plain = train(tiny_args(tmp_path / "plain", **{**FAT, "adversarial": "none"}))
    c = load_file(str(plain.output_dir / "model.safetensors"))
    assert max(float((a[k] - c[k]).abs().max()) for k in a) > 1e-3
    card = (reference.output_dir / "README.md").read_text()
    assert "fast FGSM with random start" in card and "8/255" in card and "rotation invariance" in card
    saved = json.loads((reference.output_dir / "training_args.json").read_text())
    assert saved["adversarial"] == "fgsm" and saved["rotation_invariance"] is True


def test_fast_adversarial_training_under_bf16_autocast(tmp_path):
    result = train(tiny_args(tmp_path, adversarial="fgsm", adv_epsilon=4 / 255, mixed_precision="bf16",
                             max_train_samples=64, max_eval_samples=32, epochs=1, batch_size=16))
    assert result.global_step == 4 and np.isfinite(result.history[-1]["train_loss"])


# ------------------------------------------------------------------------------------------------ end to end
EPS = 0.1  # Fashion-MNIST's usual L-inf budget (about 25/255)
# A ~30k-parameter dual-branch CrossViT (4 px and 8 px patches, one multi-scale block with cross-attention); both
# branches resize the 28 px input to 32 px themselves.
TINY_CROSSVIT = ["image_size=[32,32]", "patch_size=[4,8]", "embed_dim=[16,32]", "depth=[[1,1,0]]", "num_heads=[2,2]",
                 "mlp_ratio=[2,2,1]", "drop_path_rate=0.0"]


@pytest.fixture(scope="module")
def standard_and_robust(tmp_path_factory):
    """The same tiny CrossViT trained on 1,024 real Fashion-MNIST images (28 px) for 3 epochs, standard vs fast
    adversarial (FGSM-RS, eps 0.1, step 0.125)."""
    from accelerate.state import AcceleratorState, GradientState

    root = tmp_path_factory.mktemp("fat")
    runs = {}
    for mode in ("none", "fgsm"):
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
        runs[mode] = train(tiny_args(root / mode, model="crossvit", model_overrides=TINY_CROSSVIT, input_size=28,
                                     adversarial=mode, adv_epsilon=EPS, max_train_samples=1024, max_eval_samples=200,
                                     epochs=3, learning_rate=5e-3, augment=False, label_smoothing=0.0,
                                     eval_every=10))
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    return runs


@pytest.mark.slow
def test_adversarial_training_gives_higher_robust_accuracy_on_fashion_mnist(standard_and_robust, tmp_path, capsys):
    """The standard model through `evaluate_model`, the robust one through `hf-vision-zoo evaluate --pgd-steps`."""
    from hf_vision_zoo.cli import main as cli

    standard = evaluate_model(standard_and_robust["none"].output_dir, max_eval_samples=200, pgd_steps=5,
                              adv_epsilon=EPS, batch_size=100)
    out = tmp_path / "robust.json"
    code = cli(["evaluate", str(standard_and_robust["fgsm"].output_dir), "--max-eval-samples", "200", "--pgd-steps",
                "5", "--adv-epsilon", str(EPS), "--batch-size", "100", "--output-json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "robust top-1" in printed and "PGD-5 L-inf, eps 0.1, step 0.05" in printed
    robust = json.loads(out.read_text())
    assert f"{robust['robust_top1_accuracy']:.4f}" in printed
    with capsys.disabled():
        print("clean / PGD-5 top-1:", {m: (round(r["top1_accuracy"], 3), round(r["robust_top1_accuracy"], 3))
                                       for m, r in (("none", standard), ("fgsm", robust))})
    # measured (seed 7, 1 thread): clean 0.375 / robust 0.0 standard, clean 0.24 / robust 0.175 adversarial
    assert standard["top1_accuracy"] > 0.3 and robust["top1_accuracy"] > 0.2  # both learned (chance 0.1)
    assert standard["robust_top1_accuracy"] < 0.05  # PGD breaks the standard model ...
    assert robust["robust_top1_accuracy"] > standard["robust_top1_accuracy"] + 0.1  # ... much less the robust one
    assert robust["robust_top1_accuracy"] > 0.12
    assert robust["attack"]["steps"] == 5 and robust["attack"]["alpha"] == pytest.approx(2.5 * EPS / 5)
    assert robust["num_samples"] == standard["num_samples"] == 200


@pytest.mark.slow
def test_fast_adversarial_training_on_two_cpu_processes(tmp_path):
    """`accelerate launch` with 2 real processes: the recipe's options run under DDP and the ranks stay identical."""
    accelerate = Path(sys.executable).with_name("accelerate")
    out = tmp_path / "ddp"
    cmd = [str(accelerate), "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "examples" / "brainscore_crossvit.py"),
           "--model", "crossvit", "--model-overrides", *TINY_CROSSVIT, "--input-size", "28",
           "--max-train-samples", "128", "--max-eval-samples",
           "32", "--epochs", "1", "--batch-size", "16", "--gradient-accumulation-steps", "2", "--eval-batch-size",
           "32", "--mixed-precision", "no", "--num-threads", "1", "--no-progress", "--report-to", "none",
           "--rank-report", "--output-dir", str(out)]
    env = subprocess_env()
    env["ACCELERATE_USE_CPU"] = "1"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    reports = [json.loads((tmp_path / "ddp-run" / f"rank_{r}.json").read_text()) for r in (0, 1)]
    assert [r["num_processes"] for r in reports] == [2, 2]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    saved = json.loads((out / "training_args.json").read_text())
    assert saved["recipe"] == "brainscore_crossvit18" and saved["adversarial"] == "fgsm"
    assert saved["rotation_invariance"] and saved["optimizer"] == "adam"
    assert done.stdout.count("recipe brainscore_crossvit18:") == 1  # printed by the main process only
    config = json.loads((out / "config.json").read_text())
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert config["model_type"] == "zoo_crossvit"
    assert processor["crop_size"] == {"height": 28, "width": 28}  # --input-size 28 with the recipe's crop 0.875
    assert processor["size"] == {"shortest_edge": 32}


def test_input_size_of_multi_branch_models():
    """CrossViT has one image size per branch; the processor makes the largest (or the recipe's 224 crop)."""
    import hf_vision_zoo
    from hf_vision_zoo.training.loop import model_input_size

    config = hf_vision_zoo.get_config("crossvit_18_dagger_408.in1k")
    assert model_input_size(config) == 408
    assert RECIPES["brainscore_crossvit18"]["input_size"] == 224  # the official 224 px crops
    swin = hf_vision_zoo.get_config("swin_tiny_patch4_window7_224.ms_in1k")
    assert model_input_size(swin) == swin.image_size
