"""Properties of GMML's group masking (`hf_vision_zoo.layers.group_masking`): connected rectangular groups aligned as
configured, the corrupted fraction in the configured range, the corruption sources (noise, zeros, same-image blocks,
another image of the batch) and their probabilities, determinism under a generator seed, and the sampler's
distribution compared with samples of the OFFICIAL `GMML_drop_rand_patches` / `GMML_replace_list` stored by
tests/fixtures/make_gmml_official_fixture.py: exactly, by replaying the official code's recorded random draws
(bounds included), and in distribution (two-sample Kolmogorov-Smirnov test on the corrupted fraction, spatial
profiles, replacement frequencies)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from scipy import ndimage, stats

from hf_vision_zoo.layers.group_masking import (
    CORRUPTION_CODES,
    check_group_masking_args,
    copy_blocks_within_image,
    group_mask_corruption,
    patch_mask_to_pixel_mask,
    pixel_mask_to_patch_mask,
    sample_group_blocks,
)

FIXTURES = Path(__file__).parents[2] / "fixtures" / "gmml_official"
NOISE, ZEROS, REPLACE, OTHER = (CORRUPTION_CODES[k] for k in ("noise", "zeros", "replace", "other_image"))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("side,align,max_replace", [(32, 1, 0.75), (48, 8, 0.75), (64, 16, 0.5), (40, 1, 0.3)])
def test_blocks_are_aligned_connected_groups_covering_the_target(side, align, max_replace):
    g = gen(1)
    low = min(0.5, max_replace)
    for _ in range(20):
        mask, blocks = sample_group_blocks(side, side, max_replace, align, 0.3, g)
        union = torch.zeros(side, side, dtype=torch.bool)
        for top, left, h, w in blocks:
            assert top % align == 0 and left % align == 0 and h % align == 0 and w % align == 0
            assert align <= h <= int(0.3 * side) + align and align <= w <= int(0.3 * side) + align
            union[top:top + h, left:left + w] = True
        assert torch.equal(union, mask)
        # every connected group of corrupted pixels is a union of whole blocks: fewer groups than blocks
        _, groups = ndimage.label(mask.numpy())
        assert 1 <= groups <= len(blocks)
        fraction = mask.float().mean().item()
        assert fraction >= low - 1e-9
        # the sampler stops at the first block that reaches the target (<= max_replace): without its last block
        # the coverage was below max_replace
        before = torch.zeros_like(mask)
        for top, left, h, w in blocks[:-1]:
            before[top:top + h, left:left + w] = True
        assert before.float().mean().item() < max_replace
        if align > 1:  # patch-aligned blocks: the pixel mask is exactly a patch mask
            patches = pixel_mask_to_patch_mask(mask[None], align)
            assert torch.equal(patch_mask_to_pixel_mask(patches, (side // align,) * 2, align)[0], mask)


class RecordedDraws:
    """Replays the official code's NumPy draws in order, checking that each is asked with the same bounds."""

    def __init__(self, randints, uniforms):
        self.randints, self.uniforms = randints.tolist(), uniforms.tolist()

    def randint(self, low, high):
        expected_low, expected_high, value = self.randints.pop(0)
        assert (low, high) == (expected_low, expected_high), "randint bounds differ from the official code"
        return value

    def uniform(self, low, high):
        expected_low, expected_high, value = self.uniforms.pop(0)
        assert (low, high) == (expected_low, expected_high), "uniform bounds differ from the official code"
        return value


@pytest.mark.parametrize("name,side,align,max_replace,calls", [("px32_align1_noise", 32, 1, 0.75, 8),
                                                               ("px48_align8_zeros", 48, 8, 0.75, 8),
                                                               ("px224_align16_noise", 224, 16, 0.75, 3),
                                                               ("px32_align1_replace", 32, 1, 0.5, 5)])
def test_replaying_official_draws_gives_the_official_blocks(name, side, align, max_replace, calls):
    replay = load_file(FIXTURES / "corruption_replay.safetensors")
    with_sources = name.endswith("replace")
    for call in range(calls):
        key = f"replay.{name}.{call}"
        draws = RecordedDraws(replay[f"{key}.randint"], replay[f"{key}.uniform"])
        mask, blocks = sample_group_blocks(side, side, max_replace, align, 0.3, with_sources=with_sources,
                                           draws=draws)
        assert not draws.randints and not draws.uniforms, "the official code drew a different number of values"
        assert torch.equal(mask, replay[f"{key}.mask"])
        if with_sources:  # same-image block copies, one after the other, as the official in-place loop
            image = copy_blocks_within_image(replay[f"replay.{name}.image"].clone(), blocks)
            assert torch.equal(image, replay[f"{key}.output"])


@pytest.mark.parametrize("name,side,align,max_replace", [("px32_align1_r75", 32, 1, 0.75),
                                                         ("px32_align1_r30", 32, 1, 0.3),
                                                         ("px48_align8_r75", 48, 8, 0.75),
                                                         ("px224_align16_r75", 224, 16, 0.75)])
def test_distribution_matches_official_samples(name, side, align, max_replace):
    official = load_file(FIXTURES / "corruption_distribution.safetensors")
    reference = official[f"dist.{name}.fraction"]
    g = gen(7)
    masks = torch.stack([sample_group_blocks(side, side, max_replace, align, 0.3, g)[0]
                         for _ in range(len(reference))]).float()
    fractions = masks.mean(dim=(1, 2))
    result = stats.ks_2samp(fractions.numpy(), reference.numpy())
    assert result.pvalue > 0.01, (name, result, fractions.mean(), reference.mean())
    assert abs(fractions.mean() - reference.mean()) < 0.02
    for profile, dims in (("row_profile", (0, 2)), ("column_profile", (0, 1))):
        ours, theirs = masks.mean(dim=dims), official[f"dist.{name}.{profile}"]
        assert (ours - theirs).abs().max() < 0.12, (profile, ours, theirs)  # per-row means of ~150-400 masks
        # the edge effects of the official sampler (e.g. the last aligned row never reached) are reproduced
        assert torch.equal(ours == 0, theirs == 0)


def test_other_image_replacement_probability_matches_official():
    counts = load_file(FIXTURES / "corruption_distribution.safetensors")["dist.replace_list.counts"]
    images, other, self_donor = counts.tolist()
    g = gen(3)
    ours_other = ours_self = 0
    trials, batch = 300, 4
    for _ in range(trials):
        out = group_mask_corruption(torch.randn(batch, 3, 32, 32), drop_type="noise-zeros", generator=g)
        replaced = out.corruption == OTHER
        ours_other += int(replaced.sum())
        ours_self += int((out.donor_index[replaced] == torch.arange(batch)[replaced]).sum())
    # official: 1 / (2 types + 1) of the images are replaced from another image; donors uniform (itself: 1/4)
    for value in (other / images, ours_other / (trials * batch)):
        assert abs(value - 1 / 3) < 0.05
    assert abs(ours_other / (trials * batch) - other / images) < 0.06
    assert abs(ours_self / ours_other - self_donor / other) < 0.1 and abs(ours_self / ours_other - 0.25) < 0.08


def test_replacement_sources():
    x = torch.randn(6, 3, 32, 32, generator=gen(0))
    seen = set()
    for seed in range(12):
        out = group_mask_corruption(x, drop_type="noise-zeros-replace", drop_replace=0.3, generator=gen(seed))
        keep = ~out.mask.unsqueeze(1).expand_as(x)
        assert torch.equal(out.corrupted_pixel_values[keep], x[keep])  # untouched outside the mask
        for i, code in enumerate(out.corruption.tolist()):
            seen.add(code)
            region = out.mask[i]
            corrupted, clean = out.corrupted_pixel_values[i][:, region], x[i][:, region]
            if code == OTHER:
                assert torch.equal(corrupted, x[out.donor_index[i]][:, region])
            else:
                assert out.donor_index[i] == -1
            if code == ZEROS:
                assert torch.all(corrupted == 0)
            if code == NOISE:  # fresh N(0, 1) values, not the image's
                assert not torch.isclose(corrupted, clean).any()
                assert abs(corrupted.mean()) < 0.15 and abs(corrupted.std() - 1) < 0.15
            if code == REPLACE:  # every corrupted pixel is a pixel of the same clean image, moved
                pixels = x[i].flatten(1).T
                moved = corrupted.T
                assert torch.cdist(moved, pixels, compute_mode="donot_use_mm_for_euclid_dist").min(dim=1).values.max() < 1e-6
                assert not torch.equal(corrupted, clean)
    assert seen == {NOISE, ZEROS, REPLACE, OTHER}


def test_switches_and_fraction_ranges():
    x = torch.randn(8, 3, 32, 32)
    out = group_mask_corruption(x, drop_replace=0.0, generator=gen(0))
    assert torch.all(out.corruption == NOISE)
    fractions = out.mask.float().mean(dim=(1, 2))
    assert torch.all(fractions >= 0.5) and torch.all(fractions < 0.75 + 0.1)
    out = group_mask_corruption(x, drop_perc=0.0, drop_replace=0.0, generator=gen(0))
    assert not out.mask.any() and torch.equal(out.corrupted_pixel_values, x)
    out = group_mask_corruption(x, drop_perc=0.0, drop_replace=0.3, generator=gen(0))
    assert set(out.corruption.tolist()) <= {CORRUPTION_CODES["none"], OTHER}
    replaced = out.mask[out.corruption == OTHER].float().mean(dim=(1, 2))
    assert torch.all(replaced >= 0.3) and not out.mask[out.corruption != OTHER].any()


def test_determinism_under_a_seed():
    x = torch.randn(4, 3, 32, 32)
    a = group_mask_corruption(x, drop_type="noise-replace", generator=gen(5))
    b = group_mask_corruption(x, drop_type="noise-replace", generator=gen(5))
    c = group_mask_corruption(x, drop_type="noise-replace", generator=gen(6))
    assert torch.equal(a.corrupted_pixel_values, b.corrupted_pixel_values) and torch.equal(a.mask, b.mask)
    assert torch.equal(a.corruption, b.corruption) and torch.equal(a.donor_index, b.donor_index)
    assert not torch.equal(a.mask, c.mask)
    torch.manual_seed(1)
    d = group_mask_corruption(x)
    torch.manual_seed(1)
    assert torch.equal(group_mask_corruption(x).corrupted_pixel_values, d.corrupted_pixel_values)
    assert not torch.equal(x, a.corrupted_pixel_values)  # the input is not modified in place
    assert torch.equal(x, x.clone())


def test_bad_input():
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="drop_type"):
        group_mask_corruption(x, drop_type="blur")
    with pytest.raises(ValueError, match="drop_type"):
        group_mask_corruption(x, drop_type="")
    for value in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            group_mask_corruption(x, drop_perc=value)
        with pytest.raises(ValueError, match=r"\[0, 1\)"):
            group_mask_corruption(x, drop_replace=value)
    with pytest.raises(ValueError, match="align"):
        group_mask_corruption(x, align=0)
    with pytest.raises(ValueError, match="too small"):
        group_mask_corruption(x, align=16)  # int(32 * 0.3) = 9 <= 16: no block size can be drawn
    with pytest.raises(ValueError, match="never stop"):
        check_group_masking_args(32, 32, 0.75, align=8)  # aligned blocks reach only 24x24 of 32x32
    with pytest.raises(ValueError, match="max_block_size"):
        sample_group_blocks(32, 32, 0.5, max_block_size=0.0)
    with pytest.raises(ValueError, match="shape"):
        group_mask_corruption(torch.randn(3, 32, 32))
    with pytest.raises(ValueError, match="empty"):
        group_mask_corruption(torch.randn(0, 3, 32, 32))
    with pytest.raises(ValueError, match="multiple of the patch"):
        pixel_mask_to_patch_mask(torch.zeros(1, 30, 32, dtype=torch.bool), 8)
