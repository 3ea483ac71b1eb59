"""The native kernels (models/native): they build here, compute what the PyTorch paths they
replace compute, and their absence falls back to those paths."""

import logging
import os
import shutil
import stat
from pathlib import Path

import pytest
import torch
from torch import nn

from models import native
from models.layers import (Dropout, SelfAttention, _GRUSteps, _NativeGRUSteps, _apply_dropout, _seed, _threads,
                           gru_train_forward)


@pytest.fixture
def two_threads():
    """torch's pool at 2 threads whatever the host has: the kernels' OpenMP branches run on a
    1-thread runner too (they take torch.get_num_threads())."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def fresh_cache(monkeypatch, tmp_path):
    """The kernels' cache directory under an empty NEXTSWEEP_CACHE; the process loads afresh."""
    monkeypatch.setenv("NEXTSWEEP_CACHE", str(tmp_path))
    native._load.cache_clear()
    yield tmp_path / "native"
    native._load.cache_clear()


@pytest.fixture(scope="module")
def own_library() -> Path:
    """This process's kernels as its own cache holds them: a genuine library to plant elsewhere."""
    return Path(native.kernels()._name)


def _graph(t: torch.Tensor) -> set[str]:
    """The names of every autograd node t was computed through."""
    seen, todo = {}, [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = node.name()
            todo += [n for n, _ in node.next_functions]
    return set(seen.values())


def test_the_kernels_build_on_this_machine():
    assert native.kernels() is not None  # CI has gcc: the fast paths are what the suite exercises


def test_loading_the_kernels_leaves_the_process_floating_point_mode_alone():
    """-ffast-math at link time would add a constructor that flushes denormals to zero process-wide."""
    assert native.kernels() is not None
    tiny = torch.tensor([1e-39])  # a float32 denormal
    assert (tiny * 1.0).item() > 0


@pytest.mark.parametrize("steps, batch, d", [(7, 64, 12), (1, 40, 5), (5, 3, 8), (9, 33, 6)])
def test_native_gru_recurrence_matches_the_float64_reference(steps, batch, d, two_threads):
    """Every batch split (2 threads; 1 below 32 sequences; an odd split) and a single step."""
    assert _threads(batch) == (2 if batch >= 32 else 1)
    torch.manual_seed(steps)
    gi, w, b = torch.randn(steps, batch, 3 * d), torch.randn(3 * d, d) * 0.4, torch.randn(3 * d) * 0.2
    up = torch.randn(steps, batch, d)  # dL/dh_t: every step's output weighed differently
    ref_in = [t.double().requires_grad_() for t in (gi, w, b)]
    ref = _GRUSteps.apply(*ref_in)
    ref_grads = torch.autograd.grad((ref * up.double()).sum(), ref_in)
    ours_in = [t.clone().requires_grad_() for t in (gi, w, b)]
    ours = _NativeGRUSteps.apply(*ours_in)
    grads = torch.autograd.grad((ours * up).sum(), ours_in)
    assert torch.allclose(ours.double(), ref, atol=1e-5)
    for name, a, r in zip(["gi", "w_hh", "b_hh"], grads, ref_grads):
        assert torch.allclose(a.double(), r, atol=1e-4 * max(1.0, r.abs().max().item())), name


def test_gru_train_forward_is_native_in_float32_and_matches_nn_gru(two_threads):
    assert _threads(40) == 2
    torch.manual_seed(0)
    rnn = nn.GRU(16, 16, 2, batch_first=True)
    x = torch.randn(40, 9, 16, requires_grad=True)
    ours = gru_train_forward(rnn, x, Dropout(0.0))
    assert "_NativeGRUStepsBackward" in _graph(ours)
    stock = rnn(x)[0]
    assert torch.allclose(ours, stock, atol=1e-5)
    g_ours = torch.autograd.grad(ours.square().sum(), [x, *rnn.parameters()])
    g_stock = torch.autograd.grad(stock.square().sum(), [x, *rnn.parameters()])
    for a, b in zip(g_ours, g_stock):
        assert torch.allclose(a, b, atol=1e-4)


def test_native_dropout_rate_scale_seeding_and_backward(two_threads):
    assert torch.get_num_threads() == 2  # 300K elements: dropout.c's parallel loop
    drop = Dropout(0.25).train()
    x = torch.randn(300, 1000, requires_grad=True)
    torch.manual_seed(5)
    y = drop(x)
    assert y.grad_fn.name() == "_NativeDropoutBackward"
    kept = y != 0
    share = 1 - kept.double().mean().item()
    assert abs(share - 0.25) < 5 * (0.25 * 0.75 / x.numel()) ** 0.5
    assert torch.allclose(y[kept], x[kept] / 0.75)
    y.backward(torch.ones_like(y))
    assert torch.equal(x.grad != 0, kept) and torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 1 / 0.75))
    torch.manual_seed(5)
    assert torch.equal(drop(x), y)  # the mask is a function of torch's seeded generator
    assert not torch.equal(drop(x), y)  # and a fresh one per call
    # neighbouring elements and rows are independent: no correlation between adjacent decisions
    k = kept.double().flatten()
    assert abs(torch.corrcoef(torch.stack([k[:-1], k[1:]]))[0, 1].item()) < 0.01
    assert abs(torch.corrcoef(torch.stack([k[:-1000], k[1000:]]))[0, 1].item()) < 0.01
    # elements 16 apart take two bytes of one hash (dropout.c): independent too
    assert abs(torch.corrcoef(torch.stack([k[:-16], k[16:]]))[0, 1].item()) < 0.01


def test_native_dropout_add_to_matches_the_residual_plus_the_same_mask(two_threads):
    assert torch.get_num_threads() == 2  # 45K elements: dropout.c's parallel loop
    drop = Dropout(0.5).train()
    res, x = torch.randn(64, 700), torch.randn(64, 700)
    torch.manual_seed(2)
    fused = drop.add_to(res, x)
    torch.manual_seed(2)
    seed = _seed()
    mask = _apply_dropout(torch.ones_like(x), None, seed, drop.cut, 2.0)
    assert torch.allclose(fused, res + x * mask)
    assert set(mask.unique().tolist()) == {0.0, 2.0}


def test_no_compiler_falls_back_to_the_pytorch_paths(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("NEXTSWEEP_CACHE", str(tmp_path))
    native._load.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            assert native.kernels() is None
        assert "native kernels unavailable" in caplog.text
        torch.manual_seed(0)
        rnn = nn.GRU(4, 4, 1, batch_first=True)
        x = torch.randn(2, 3, 4)
        out = gru_train_forward(rnn, x, Dropout(0.0))
        assert "_GRUStepsBackward" in _graph(out) and "_NativeGRUStepsBackward" not in _graph(out)
        assert torch.allclose(out, rnn(x)[0], atol=1e-6)
        assert Dropout(0.5).train()(x.requires_grad_()).grad_fn.name() == "MulBackward0"
    finally:
        native._load.cache_clear()


def test_native_off_switch(monkeypatch):
    monkeypatch.setenv("NEXTSWEEP_NATIVE", "0")
    assert native.kernels() is None


def _reference_attention(attn, x, pad, mask):
    """SelfAttention's function written out in torch ops, with a given dropout mask on the weights."""
    b, t, d = x.shape
    q, k, v = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(
        b, t, 3, attn.heads, -1).permute(2, 0, 3, 1, 4)
    scores = q @ k.transpose(-2, -1) / (d // attn.heads) ** 0.5
    weights = scores.masked_fill(pad[:, None, None, :], float("-inf")).softmax(-1) * mask
    return attn.out_proj((weights @ v).transpose(1, 2).reshape(b, t, d))


@pytest.mark.parametrize("batch, width, d, heads", [(5, 7, 16, 4), (64, 23, 32, 2), (3, 1, 8, 1), (2, 19, 48, 2)])
def test_native_attention_matches_torch_ops_with_the_same_mask(batch, width, d, heads, two_threads):
    assert torch.get_num_threads() == 2  # attention.c splits (sequence, head) pairs over them
    torch.manual_seed(batch)
    attn = SelfAttention(d, heads, 0.3).train()
    x = torch.randn(batch, width, d, requires_grad=True)
    lengths = torch.randint(1, width + 1, (batch,))
    pad = torch.arange(width)[None, :] >= lengths[:, None]
    up = torch.randn(batch, width, d)  # every output weighed differently
    torch.manual_seed(7)
    ours = attn(x, pad)
    grads = torch.autograd.grad((ours * up).sum(), [x, *attn.parameters()])
    torch.manual_seed(7)  # the same seed, drawn as the native function draws it
    seed = _seed()
    mask = _apply_dropout(torch.ones(batch, heads, width, width), None, seed, attn.drop.cut, attn.drop._scale)
    assert 0 < (mask == 0).double().mean() < 1 or width == 1
    ref = _reference_attention(attn, x, pad, mask)
    ref_grads = torch.autograd.grad((ref * up).sum(), [x, *attn.parameters()])
    assert torch.allclose(ours, ref, atol=1e-5)
    for name, a, r in zip(["x", *dict(attn.named_parameters())], grads, ref_grads):
        assert torch.allclose(a, r, atol=1e-4), name
    torch.manual_seed(7)
    assert torch.equal(attn(x, pad), ours)  # seeded by torch's generator


def test_native_attention_is_the_training_path_and_eval_is_unchanged():
    attn = SelfAttention(16, 4, 0.2)
    x, pad = torch.randn(2, 5, 16), torch.zeros(2, 5, dtype=torch.bool)
    assert "_NativeAttentionBackward" in _graph(attn.train()(x, pad))
    assert torch.allclose(attn.eval()(x, pad), _reference_attention(attn, x, pad, torch.ones(2, 4, 5, 5)), atol=1e-5)


def test_the_cache_directory_and_library_are_private_and_reused(fresh_cache):
    """Created 0700 and 0700 under a loose umask too, so the next process loads the cached file."""
    before = os.umask(0o002)
    try:
        first = native.kernels()
    finally:
        os.umask(before)
    assert first is not None and Path(first._name).parent == fresh_cache
    assert stat.S_IMODE(fresh_cache.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(first._name).stat().st_mode) & 0o077 == 0
    native._load.cache_clear()
    assert native.kernels()._name == first._name  # its own cache passes the checks


def _group_writable(path: Path) -> None:
    path.chmod(0o775)


def _other_user(path: Path) -> None:
    os.chown(path, 65534, 65534)  # nobody: we run as root


@pytest.mark.parametrize("spoil, why", [(_group_writable, "writable by group or others"),
                                        (_other_user, "owned by uid 65534")])
@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_cached_library_someone_else_could_have_written_is_not_loaded(own_library, fresh_cache, caplog, spoil,
                                                                        why, what):
    """A library in the cache runs in every worker: loaded only when this user alone could write it
    and its directory. Else a private copy is compiled for this process, with one warning."""
    fresh_cache.mkdir(mode=0o700)
    cached = fresh_cache / own_library.name  # what the process would load from this cache
    shutil.copy(own_library, cached)
    cached.chmod(0o700)
    spoil(cached if what == "file" else fresh_cache)
    native._load.cache_clear()
    with caplog.at_level(logging.WARNING):
        lib = native.kernels()
    assert lib is not None and lib._name != str(cached)
    assert not Path(lib._name).exists()  # the private copy's directory is gone once it is loaded
    assert [r.message.count("not loading") for r in caplog.records] == [1] and why in caplog.text
    x = torch.randn(8, 5000, requires_grad=True)
    assert Dropout(0.5).train()(x).grad_fn.name() == "_NativeDropoutBackward"  # the private copy runs
