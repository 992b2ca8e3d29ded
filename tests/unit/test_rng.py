"""Per-sample random streams (advkit.rng): the hash, the distributions, and that a sample's draws depend
only on (seed, label, its index) and its own history of draws."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from advkit import rng
from advkit.errors import InputError
from advkit.rng import SampleStreams

_M = 2**64


def _splitmix_reference(z: int) -> int:  # the SplitMix64 finaliser on Python ints (exact uint64)
    z %= _M
    z ^= z >> 30
    z = (z * 0xBF58476D1CE4E5B9) % _M
    z ^= z >> 27
    z = (z * 0x94D049BB133111EB) % _M
    return z ^ (z >> 31)


def test_int64_hash_equals_the_uint64_reference_including_wraparound_and_negative_words():
    values = [0, 1, -1, 2**63 - 1, -2**63, 0x0123456789ABCDEF, -0x0FEDCBA987654321, 12345]
    got = rng.mix(torch.tensor(values, dtype=torch.int64)).tolist()
    assert [v % _M for v in got] == [_splitmix_reference(v) for v in values]


def _streams(n=4, seed=11, label="test"):
    return SampleStreams.for_samples(seed, label, range(n))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_uniform_is_uniform_on_the_half_open_unit_interval(dtype):
    u = _streams().uniform((4, 5000), dtype)
    assert u.dtype == dtype and u.shape == (4, 5000)
    assert float(u.min()) >= 0.0 and float(u.max()) < 1.0
    for row in u:  # each sample's stream on its own, and all together
        assert stats.kstest(row.double().numpy(), "uniform").pvalue > 1e-3
    assert abs(float(u.double().mean()) - 0.5) < 0.01 and abs(float(u.double().var()) - 1 / 12) < 0.005


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_normal_is_standard_normal(dtype):
    z = _streams(seed=3).normal((4, 5000), dtype)
    assert z.dtype == dtype and torch.isfinite(z).all()
    for row in z:
        assert stats.kstest(row.double().numpy(), "norm").pvalue > 1e-3
    assert abs(float(z.double().mean())) < 0.03 and abs(float(z.double().std()) - 1) < 0.03


def test_integers_respect_per_sample_bounds_and_are_uniform():
    s = _streams(n=3, seed=5)
    low, high = torch.tensor([0, -3, 10]), torch.tensor([2, 4, 11])
    v = s.integers(low, high, (3, 4000))
    assert v.dtype == torch.int64
    for i in range(3):
        assert int(v[i].min()) >= int(low[i]) and int(v[i].max()) < int(high[i])
        counts = np.bincount((v[i] - low[i]).numpy(), minlength=int(high[i] - low[i]))
        assert len(counts) == int(high[i] - low[i]) and counts.min() > 0
        if len(counts) > 1:
            assert stats.chisquare(counts).pvalue > 1e-3
    scalar = s.integers(0, 7, (3, 2, 5))
    assert scalar.shape == (3, 2, 5) and int(scalar.min()) >= 0 and int(scalar.max()) < 7


def test_coin_is_fair_and_per_sample():
    s = SampleStreams.for_samples(2, "coin", range(4000))
    c = s.coin()
    assert c.dtype == torch.bool and c.shape == (4000,)
    assert stats.binomtest(int(c.sum()), 4000).pvalue > 1e-3


def test_streams_depend_on_seed_label_and_index_only():
    a = SampleStreams.for_samples(0, "stage", [3, 5, 9]).uniform((3, 8))
    b = SampleStreams.for_samples(0, "stage", [9, 3]).uniform((2, 8))  # other batch mates, other order
    assert torch.equal(a[2], b[0]) and torch.equal(a[0], b[1])
    other_label = SampleStreams.for_samples(0, "stage2", [3]).uniform((1, 8))
    other_seed = SampleStreams.for_samples(1, "stage", [3]).uniform((1, 8))
    assert not torch.equal(other_label[0], a[0]) and not torch.equal(other_seed[0], a[0])
    rows = SampleStreams.for_samples(0, "x", range(50)).uniform((50, 1000))
    corr = np.corrcoef(rows.numpy())[np.triu_indices(50, 1)]
    assert np.abs(corr).max() < 0.15  # neighbouring indices give unrelated streams


def test_subset_draws_equal_the_rows_of_a_full_draw_and_advance_only_their_counters():
    full, part = _streams(n=6), _streams(n=6)
    want = full.uniform((6, 10))
    rows = torch.tensor([4, 1])
    sub = part.subset(rows)
    assert len(sub) == 2 and torch.equal(sub.uniform((2, 10)), want[rows])
    # the others' streams have not moved: their next draw is their first one
    rest = torch.tensor([0, 2, 3, 5])
    assert torch.equal(part.subset(rest).uniform((4, 10)), want[rest])
    # a subset of a subset, a boolean mask and a slice address the same samples
    nested = _streams(n=6).subset(torch.tensor([5, 4, 1])).subset(torch.tensor([False, True, True]))
    assert torch.equal(nested.uniform((2, 10)), want[torch.tensor([4, 1])])
    assert torch.equal(_streams(n=6).subset(slice(2, 4)).uniform((2, 10)), want[2:4])
    # a sample's second draw is the same whether its first was drawn alone or with others
    a, b = _streams(n=6), _streams(n=6)
    a.normal((6, 3)), b.subset([4]).normal((1, 3))
    assert torch.equal(a.integers(0, 100, (6, 5))[4], b.subset([4]).integers(0, 100, (1, 5))[0])


def test_copy_is_independent_and_spawn_is_deterministic():
    s = _streams()
    c = s.copy()
    first = c.uniform((4, 3))
    assert torch.equal(s.uniform((4, 3)), first)  # the copy's draws did not advance s
    k1, k2 = _streams().spawn(), _streams().spawn()
    assert torch.equal(k1.uniform((4, 3)), k2.uniform((4, 3)))
    parent = _streams()
    child = parent.spawn().uniform((4, 3))
    assert not torch.equal(child, _streams().uniform((4, 3)))
    assert torch.equal(parent._counters, torch.ones(4, dtype=torch.int64))  # a spawn costs one word


def test_wrong_shapes_and_lengths_are_input_errors():
    s = _streams(n=4)
    with pytest.raises(InputError, match="first dimension is the 4 samples, got \\(3, 2\\)"):
        s.uniform((3, 2))
    with pytest.raises(InputError, match="expected per-sample streams for the 5 inputs, got streams for 4"):
        rng.check_length(s, 5)


def test_dispatch_gives_generators_exactly_the_torch_call():
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(rng.rand(g1, (3, 2)), torch.rand((3, 2), generator=g2))
    assert torch.equal(rng.randn(g1, (3, 2), dtype=torch.float64), torch.randn((3, 2), generator=g2, dtype=torch.float64))
    assert torch.equal(rng.randint(g1, 0, 9, (3, 2)), torch.randint(0, 9, (3, 2), generator=g2))
    assert rng.take(g1, torch.tensor([0])) is g1 and rng.take(None, [1]) is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_equal_cpu_draws():
    cpu = SampleStreams.for_samples(0, "dev", range(8))
    gpu = SampleStreams.for_samples(0, "dev", range(8), device="cuda")
    assert torch.equal(cpu.bits(16), gpu.bits(16).cpu())
    assert torch.equal(cpu.integers(0, 5, (8, 4)), gpu.integers(0, 5, (8, 4)).cpu())
    assert torch.allclose(cpu.normal((8, 4)), gpu.normal((8, 4)).cpu(), atol=1e-6)
    assert math.isclose(float(gpu.subset([1, 2]).uniform((2, 1)).sum()), float(cpu.subset([1, 2]).uniform((2, 1)).sum()))


def test_the_stream_scheme_is_part_of_the_code_version_that_resume_compares():
    """Batches stored before per-sample streams (code_version "0.1.0" on an install without git) drew other
    random numbers: the scheme in code_version makes --resume refuse to mix them in."""
    from advkit import __version__
    from advkit.evaluation.run_info import check_resumable, code_version
    from advkit.errors import ConfigError
    assert code_version().startswith(f"{__version__}+{rng.SCHEME}")
    old = {"run_id": 3, "model_hash": "m", "data_hash": "d", "code_version": __version__}
    with pytest.raises(ConfigError, match="the advkit code"):
        check_resumable(old, {"model_hash": "m", "data_hash": "d", "code_version": code_version()})


def test_prefetched_words_are_the_words_drawn_one_by_one():
    a, b = _streams(), _streams()
    a.prefetch(7)
    got = [a.integers(0, 9, (4, 1)), a.coin(), a.uniform((4, 2)), a.normal((4, 3))]  # 1 + 1 + 2 + 3 words
    want = [b.integers(0, 9, (4, 1)), b.coin(), b.uniform((4, 2)), b.normal((4, 3))]
    assert all(torch.equal(g, w) for g, w in zip(got, want))
    assert torch.equal(a.uniform((4, 5)), b.uniform((4, 5)))  # past the buffer: afresh, in step
    c, d = _streams(), _streams()
    c.prefetch(3)
    c.uniform((4, 1))
    d.bits(3)
    assert torch.equal(c.uniform((4, 4)), d.uniform((4, 4)))  # 2 words left do not fit 4: drawn after them


def test_shared_keys_depend_on_seed_label_and_order_never_on_the_samples():
    """Draws shared by a batch (Square's windows) come from the family's key: the same for any subset of the
    samples, a new one per derivation, replayed by a copy, changed by the seed or label."""
    from advkit.rng import shared_uniform
    a = SampleStreams.for_samples(3, "stage", range(10))
    b = SampleStreams.for_samples(3, "stage", [7, 2])
    first = a.shared_key("square")
    assert first == b.shared_key("square")
    second = a.subset(torch.tensor([1, 4])).shared_key("square")  # views share the family's count
    assert second != first and second == b.shared_key("square")
    c = b.copy()  # a copy replays the family's next keys
    assert c.shared_key("square") == b.shared_key("square")
    assert SampleStreams.for_samples(4, "stage", range(10)).shared_key("square") != \
        SampleStreams.for_samples(3, "stage", range(10)).shared_key("square")
    assert SampleStreams.for_samples(3, "other", range(10)).shared_key("square") != \
        SampleStreams.for_samples(3, "stage", range(10)).shared_key("square")
    fresh = [SampleStreams.for_samples(3, "stage", rows) for rows in (range(10), [7, 2])]
    assert fresh[0].spawn().shared_key("square") == fresh[1].spawn().shared_key("square")
    u = shared_uniform(123, 5, (2, 3))
    assert u.shape == (2, 3) and ((u >= 0) & (u < 1)).all()
    assert torch.equal(u.flatten()[1:], shared_uniform(123, 6, (5,)))
