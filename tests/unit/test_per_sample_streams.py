"""Attacks given per-sample streams (advkit.rng.SampleStreams) give each sample the same result alone, in a
batch, in a shuffled batch and at any batch size, on a deterministic model; and a batch retried after an
out-of-memory error replays the same draws."""
import pytest
import torch
from torch import nn

from advkit.attacks.apgd import APGD
from advkit.attacks.ensemble import Ensemble
from advkit.attacks.fab import FAB
from advkit.attacks.fgsm import FGSM
from advkit.attacks.pgd import PGD
from advkit.attacks.restarts import BestOf
from advkit.attacks.square import Square
from advkit.errors import BatchSizeReducedWarning, InputError
from advkit.model import Classifier
from advkit.rng import SampleStreams

N = 10


class _RowWise(nn.Module):
    """A small 2-layer net whose per-row arithmetic does not depend on the batch (products summed over the
    last dimension, no matrix kernels whose blocking changes with the batch size): exact comparisons."""

    def __init__(self, limit: int | None = None):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(16, 64, generator=g) / 8)
        self.w2 = nn.Parameter(torch.randn(5, 16, generator=g) / 4)
        self.limit = limit

    def forward(self, x):
        if self.limit is not None and len(x) > self.limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (mocked)")
        h = torch.tanh((x.flatten(1)[:, None, :] * self.w1).sum(-1))
        return (h[:, None, :] * self.w2).sum(-1) * 3


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)  # test data only
    clf = Classifier(_RowWise(), num_classes=5, accelerate=False)
    x = torch.rand(N, 1, 8, 8)
    with torch.no_grad():
        y = clf(x).argmax(1)
    return clf, x, y


ATTACKS = {
    "pgd-linf-restarts": BestOf(PGD("linf:0.03", steps=4), restarts=2),
    "pgd-l2": PGD("l2:0.3", steps=4),
    "pgd-l1": PGD("l1:1.5", steps=4),
    "fgsm-random-start": FGSM("linf:0.04", random_start=True),
    "apgd-linf-restarts": APGD("linf:0.03", steps=6, restarts=2),
    "apgd-l2": APGD("l2:0.3", steps=6),
    "apgd-l1-large-eps": APGD("l1:1.5", steps=6, large_eps=True),
    "apgd-t": APGD("linf:0.03", steps=4, n_targets=2, loss="dlr"),
    "square-linf": Square("linf:0.05", n_queries=25),
    "square-l2": Square("l2:0.5", n_queries=25),
    "square-l1": Square("l1:2", n_queries=25),
    "square-linf-restarts": BestOf(Square("linf:0.03", n_queries=10), restarts=2),
    "square-linf-per-sample-flip": Square("linf:0.05", n_queries=25, per_sample_flip=True),
    "square-l2-per-sample-flip": Square("l2:0.5", n_queries=25, per_sample_flip=True),
    "fab-restarts": FAB("linf:0.03", steps=4, restarts=3),
    "fab-l2-restarts": FAB("l2:0.3", steps=4, restarts=2),
    "ensemble": Ensemble((APGD("linf:0.03", steps=3), Square("linf:0.03", n_queries=15))),
}


def _run(attack, problem, rows, batch_size=None):
    clf, x, y = problem
    streams = SampleStreams.for_samples(5, "test", rows)
    r = attack(clf, x[rows], y[rows], generator=streams, batch_size=batch_size)
    return r.x_adv, r.success


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_sample_gets_the_same_result_alone_in_a_batch_and_shuffled(name, problem):
    attack = ATTACKS[name]
    everyone = torch.arange(N)
    x_adv, success = _run(attack, problem, everyone)
    assert 0 < int(success.sum()) < N, int(success.sum())  # both broken and robust samples
    assert not torch.equal(x_adv, problem[1])  # the attack moved points
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(1))
    x_sh, s_sh = _run(attack, problem, perm, batch_size=3)  # other batch mates, other order, other batches
    assert torch.equal(x_sh, x_adv[perm]) and torch.equal(s_sh, success[perm])
    for i in (0, 3, 7):
        x_one, s_one = _run(attack, problem, torch.tensor([i]))
        assert torch.equal(x_one[0], x_adv[i]) and bool(s_one[0]) == bool(success[i])


def test_a_torch_generator_does_depend_on_the_batch(problem):
    """The property above is not automatic: one shared stream gives a sample other draws in another batch."""
    clf, x, y = problem
    attack = PGD("l2:0.3", steps=4)
    full = attack(clf, x, y, generator=torch.Generator().manual_seed(5)).x_adv
    alone = attack(clf, x[3:4], y[3:4], generator=torch.Generator().manual_seed(5)).x_adv
    assert not torch.equal(alone[0], full[3])


def test_square_shares_an_iterations_window_across_the_batch_and_its_variant_does_not(problem):
    """By default one window (and coin) per iteration serves the batch, from the stream family's shared
    sequence; advkit's variant (``per_sample_flip``) draws a window and a coin per sample."""
    from advkit.attacks import square_draws
    sq = Square("linf:0.1", n_queries=5)
    x = problem[1][:8]
    streams = SampleStreams.for_samples(0, "s", range(8))
    shared = square_draws.Shared(streams, x.device, x.dtype)
    xb = sq._init_linf(x, streams, shared, (0.0, 1.0))
    moved = (sq._step_linf(x, xb, 3, streams, shared, (0.0, 1.0)) - xb).abs().sum(1) > 0
    assert moved.flatten(1).any(1).sum() >= 2 and moved.any(0).sum() <= 3 * 3  # one 3×3 window for all
    again = square_draws.Shared(SampleStreams.for_samples(0, "s", range(3, 5)), x.device, x.dtype)
    assert torch.equal(again.uniform((4,)), square_draws.Shared(SampleStreams.for_samples(0, "s", range(8)),
                                                                 x.device, x.dtype).uniform((4,)))
    eta = square_draws.bump(3)
    per_sample = square_draws.per_sample_oriented(eta, SampleStreams.for_samples(0, "coin", range(8)), x.device)
    flips = [bool(torch.equal(e[0], eta.T)) for e in per_sample]
    assert per_sample.shape == (8, 1, 3, 3) and 0 < sum(flips) < 8
    corners = square_draws.per_sample_corner(8, 3, 8, 8, SampleStreams.for_samples(0, "c", range(8)), x.device)
    assert len(set(zip(corners[0].flatten().tolist(), corners[1].flatten().tolist()))) > 1


def test_a_batch_retried_after_out_of_memory_replays_its_streams(problem):
    _, x, y = problem
    attack = APGD("l2:0.3", steps=4)
    big = Classifier(_RowWise(), num_classes=5, accelerate=False)
    small = Classifier(_RowWise(limit=3), num_classes=5, accelerate=False)
    rows = torch.arange(N)
    want = attack(big, x, y, generator=SampleStreams.for_samples(1, "oom", rows), batch_size=N)
    with pytest.warns(BatchSizeReducedWarning):
        got = attack(small, x, y, generator=SampleStreams.for_samples(1, "oom", rows), batch_size=N)
    assert torch.equal(got.x_adv, want.x_adv) and torch.equal(got.success, want.success)


def test_streams_for_other_samples_are_refused(problem):
    clf, x, y = problem
    with pytest.raises(InputError, match="expected per-sample streams for the 10 inputs, got streams for 4"):
        PGD("linf:0.03", steps=1)(clf, x, y, generator=SampleStreams.for_samples(0, "t", range(4)))


@pytest.mark.parametrize("variant", [False, True])
@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_square_prefetches_exactly_the_words_a_step_draws(norm, variant, problem):
    from advkit.attacks.square_draws import Shared
    x = problem[1][:6].repeat(1, 3, 1, 1)  # 3 channels: c signs per step
    sq = Square(f"{norm}:0.5", n_queries=5, per_sample_flip=variant)
    streams = SampleStreams.for_samples(0, "words", range(6)).subset(torch.arange(6))
    shared = None if variant else Shared(streams, x.device, x.dtype)
    words = sq._words_per_step(3)
    before = streams._state().clone()
    streams.prefetch(words)
    getattr(sq, f"_step_{norm}")(x, x.clone(), 3, streams, shared, (0.0, 1.0))
    assert torch.equal(streams._state() - before, torch.full_like(before, words))
    if words:
        assert streams._buf is not None and streams._used == words == streams._buf.shape[1]
