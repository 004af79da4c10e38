"""The CPU sparse kernels behind Sparsifiner's real sparse path (layers/sparse_attention.py): the block-diagonal CSR
top-k attention equals masked dense attention (outputs, probabilities and gradients), the CSR row-sparse product
equals the gathered one, the int32 top-k equals torch.topk exactly (ties included), and the model really runs the
CSR kernels (spied), falling back to the gather kernel where CSR cannot run."""

import pytest
import torch

from hf_vision_zoo.layers import sparse_attention
from hf_vision_zoo.layers.sparse_attention import (
    csr_topk_attention,
    row_sparse_matmul,
    topk_indices,
    topk_sparse_attention,
    use_kernel,
)
from hf_vision_zoo.models.sparsifiner import SparsifinerConfig, SparsifinerForImageClassification

SMALL = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, num_labels=5,
             reduce_n_factor=4, basis_coef_topk=2)


def _masked_reference(query, key, value, indices, scaling):
    mask = torch.zeros(*query.shape[:-1], key.shape[-2], dtype=torch.bool).scatter(-1, indices, True)
    probs = (query @ key.transpose(-1, -2) * scaling).masked_fill(~mask, float("-inf")).softmax(-1)
    return probs @ value, probs


def _inputs(batch, heads, queries, tokens, dim, keep, dtype, contiguous, seed=0):
    generator = torch.Generator().manual_seed(seed)
    if contiguous:
        query = torch.randn(batch, heads, queries, dim, dtype=dtype, generator=generator)
        key, value = torch.randn(2, batch, heads, tokens, dim, dtype=dtype, generator=generator).unbind(0)
    else:  # like the model: heads split out of a fused qkv projection, the [CLS] query sliced off
        qkv = torch.randn(batch, tokens, 3, heads, dim, dtype=dtype, generator=generator).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        query = query[:, :, tokens - queries:]
        assert not query.is_contiguous() and not key.is_contiguous()
    indices = torch.rand(batch, heads, queries, tokens, generator=generator).topk(keep, dim=-1).indices
    return query, key, value, indices


SHAPES = {  # (batch, heads, queries, tokens, head_dim, k)
    "k1": (1, 1, 5, 5, 4, 1),
    "k_equals_n": (2, 3, 7, 7, 8, 7),
    "groups_queries_ne_keys": (2, 3, 6, 9, 8, 4),
    "deit_s_like": (2, 6, 196, 197, 64, 50),
}


@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_csr_attention_equals_masked_dense_attention(shape, dtype, contiguous):
    query, key, value, indices = _inputs(*SHAPES[shape], dtype, contiguous)
    reference, reference_probs = _masked_reference(query, key, value, indices, 0.37)
    out, probs = csr_topk_attention(query, key, value, indices, 0.37)
    torch.testing.assert_close(out, reference, atol=1e-5, rtol=0)
    torch.testing.assert_close(probs, reference_probs.gather(-1, indices), atol=1e-5, rtol=0)
    dispatched, dispatched_probs = topk_sparse_attention(query, key, value, indices, 0.37)
    assert torch.equal(dispatched, out) and torch.equal(dispatched_probs, probs)
    gathered, _ = topk_sparse_attention(query, key, value, indices, 0.37, kernel="gather")
    torch.testing.assert_close(out, gathered, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape", ["k1", "k_equals_n", "groups_queries_ne_keys"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_csr_attention_gradients_equal_masked_dense_attention(shape, dtype):
    """PyTorch's own backward for CSR values is wrong with unsorted columns (top-k order); ours is not."""
    tensors = [t.detach().requires_grad_() for t in _inputs(*SHAPES[shape], dtype, contiguous=True)[:3]]
    indices = _inputs(*SHAPES[shape], dtype, contiguous=True)[3]
    weights = torch.randn(*tensors[0].shape, dtype=dtype)
    out, probs = csr_topk_attention(*tensors, indices, 0.37)
    grads = torch.autograd.grad((out * weights).sum() + probs.square().sum(), tensors)
    reference, reference_probs = _masked_reference(*tensors, indices, 0.37)
    expected = torch.autograd.grad((reference * weights).sum() + reference_probs.square().sum(), tensors)
    for grad, want in zip(grads, expected):
        torch.testing.assert_close(grad, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_row_sparse_matmul_equals_gathered_product(dtype):
    values = torch.randn(2, 3, 5, 4, dtype=dtype, requires_grad=True)
    columns = torch.rand(2, 3, 5, 7).topk(4, dim=-1).indices  # unsorted within a row
    dense = torch.randn(7, 6, dtype=dtype, requires_grad=True)
    weights = torch.randn(2, 3, 5, 6, dtype=dtype)
    out = row_sparse_matmul(values, columns, dense)
    expected = (values.unsqueeze(-2) @ dense[columns]).squeeze(-2)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    grads = torch.autograd.grad((out * weights).sum(), (values, dense))
    expected_grads = torch.autograd.grad((expected * weights).sum(), (values, dense))
    for grad, want in zip(grads, expected_grads):
        torch.testing.assert_close(grad, want, atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(row_sparse_matmul(values, columns, dense), expected, atol=1e-6, rtol=0)


def test_topk_indices_equal_torch_topk_exactly():
    generator = torch.Generator().manual_seed(0)
    cases = []
    for tokens, keep in ((197, 50), (32, 8), (9, 9), (5, 1), (300, 16)):
        x = torch.randn(4, 3, tokens, generator=generator)
        cases += [x, x.abs(),  # signed; non-negative
                  torch.where(torch.rand(x.shape, generator=generator) < 0.7, 0.0, x.abs()),  # many tied zeros
                  torch.randint(-3, 3, x.shape, generator=generator).float(),  # ties everywhere
                  torch.where(x > 0, 0.0, -0.0) + torch.where(x.abs() > 1, x, 0.0)]  # +0.0 and -0.0 mixed
        for case in cases[-5:]:
            assert torch.equal(topk_indices(case, keep), case.topk(keep, dim=-1, sorted=False).indices)
    with_nan = cases[0].clone()
    with_nan[0, 0, 3] = float("nan")
    assert torch.equal(topk_indices(with_nan, 5), with_nan.topk(5, dim=-1, sorted=False).indices)
    half = cases[0].to(torch.bfloat16)
    assert torch.equal(topk_indices(half, 5), half.topk(5, dim=-1, sorted=False).indices)


def test_kernel_selection_and_bad_arguments():
    query, key, value, indices = _inputs(1, 2, 4, 6, 8, 3, torch.float32, contiguous=True)
    with pytest.raises(ValueError, match="kernel must be one of"):
        topk_sparse_attention(query, key, value, indices, 0.3, kernel="fast")
    with pytest.raises(ValueError, match="kernel must be one of"):
        with use_kernel("fast"):
            pass
    with pytest.raises(ValueError, match="csr kernel needs CPU fp32/fp64"):
        topk_sparse_attention(query.bfloat16(), key.bfloat16(), value.bfloat16(), indices, 0.3, kernel="csr")
    with pytest.raises(ValueError, match="indices"):
        topk_sparse_attention(query, key, value, indices[:, :1], 0.3)
    # bf16 (unsupported by CPU sampled_addmm) and attention dropout fall back to the gather kernel
    out, _ = topk_sparse_attention(query.bfloat16(), key.bfloat16(), value.bfloat16(), indices, 0.3)
    torch.testing.assert_close(out.float(), _masked_reference(query, key, value, indices, 0.3)[0], atol=3e-2,
                               rtol=0)
    assert not sparse_attention.csr_applies(query, key, value, dropout=0.1)
    with use_kernel("gather"):
        assert sparse_attention._DEFAULT_KERNEL[0] == "gather"
    assert sparse_attention._DEFAULT_KERNEL[0] == "auto"


def _spy(monkeypatch, name):
    calls = []
    original = getattr(sparse_attention, name)

    def spy(*args, **kwargs):
        calls.append(args[0].dtype)
        return original(*args, **kwargs)

    monkeypatch.setattr(sparse_attention, name, spy)
    return calls


def test_model_sparse_path_runs_the_csr_kernels(monkeypatch):
    """Fails if the CSR kernel is removed or no longer taken: the sparse path (eval, fp32) runs it in every block,
    with or without attention maps, and its result equals the gather kernel's; bf16 falls back to gathering."""
    attention_calls = _spy(monkeypatch, "csr_topk_attention")
    matmul_calls = _spy(monkeypatch, "_FixedRowPattern")
    torch.manual_seed(0)
    model = SparsifinerForImageClassification(SparsifinerConfig(**SMALL)).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        out = model(x, output_attentions=True)
        assert len(attention_calls) == 2 and len(matmul_calls) == 4  # per block: approximation + attention
        plain = model(x)
        assert len(attention_calls) == 4
        with use_kernel("gather"):
            gathered = model(x, output_attentions=True)
        assert len(attention_calls) == 4
        model.to(torch.bfloat16)(x.bfloat16())
        assert len(attention_calls) == 4
    torch.testing.assert_close(out.logits, gathered.logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(plain.logits, gathered.logits, atol=1e-5, rtol=0)
    for a, b in zip(out.attentions, gathered.attentions):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def test_model_sparse_path_training_gradients_equal_masked_path():
    torch.manual_seed(0)
    model = SparsifinerForImageClassification(SparsifinerConfig(**SMALL, attention_path="sparse")).train()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x, weights = torch.randn(2, 3, 32, 32), torch.randn(2, 5)

    def grads(path):
        model.config.attention_path = path
        model.zero_grad()
        out = model(x, output_connectivity=True)
        ((out.logits * weights).sum() + sum(a.square().sum() for a in out.approximate_attentions)).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    sparse, masked = grads("sparse"), grads("masked")
    assert sparse.keys() == masked.keys() and "vit.blocks.0.attn.mask_predictor.proj_back_n" in sparse
    for name in sparse:
        torch.testing.assert_close(sparse[name], masked[name], atol=1e-5, rtol=1e-5, msg=name)
