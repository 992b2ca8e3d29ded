"""Checked faster copies of the model (advkit/attacks/fastpath.py): used where safe, never where not,
never stale, and never the sole basis of a reported decision."""
import copy
import weakref

import pytest
import torch
from torch import nn

from advkit import APGD, FAB, FGSM, PGD, Square
from advkit.attacks import fastpath
from advkit.attacks.oracle import Oracle
from advkit.model import Classifier


@pytest.fixture
def model(digits_model):
    clf, x, y = digits_model
    return copy.deepcopy(clf), x[:64], y[:64]


def _ce(y):
    return lambda z: nn.functional.cross_entropy(z, y, reduction="none")


def _used(oracle) -> tuple[str | None, str | None]:
    """Which copies the oracle's passes went through: 'frozen', 'channels_last' or None (the module)."""
    def kind(entry):
        if entry in (None, fastpath._UNSET):
            return None
        return "channels_last" if entry[1] is torch.channels_last else "frozen"
    return kind(oracle.paths._fwd), kind(oracle.paths._grad)


def test_copies_are_used_and_agree_with_the_module(model):
    clf, x, y = model
    with clf.inference():
        o = Oracle(clf)
        zs = [o.logits(x) for _ in range(fastpath.COMPILE_AFTER)]
        l, g, z = o.value_and_grad(x, _ce(y))
        with torch.no_grad():
            ref = clf(x)
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            ref_g, = torch.autograd.grad(nn.functional.cross_entropy(clf(xg), y, reduction="sum"), xg)
    assert _used(o) == ("frozen", "channels_last")
    assert not o.paths.exact
    for zz in zs + [z]:
        assert torch.allclose(zz, ref, atol=1e-4)
    assert torch.allclose(g, ref_g, atol=1e-5) and g.is_contiguous()
    assert o.calls == len(x) * (fastpath.COMPILE_AFTER + 1) and o.grads == len(x)


def test_first_forward_calls_use_channels_last_then_compile(model):
    clf, x, _ = model
    fastpath._CACHE.clear()
    with clf.inference():
        o = Oracle(clf)
        o.logits(x)
        assert _used(o)[0] == "channels_last"
        for _ in range(fastpath.COMPILE_AFTER - 1):
            o.logits(x)
        assert _used(o)[0] == "frozen"
        o2 = Oracle(clf)  # a later attack on the same model state reuses the compiled copy at once
        o2.logits(x)
        assert _used(o2)[0] == "frozen"


def _never_accelerated(clf, x, y, eot=1):
    with clf.inference():
        o = Oracle(clf, eot=eot)
        for _ in range(fastpath.COMPILE_AFTER + 1):
            o.logits(x)
        o.value_and_grad(x, _ce(y))
    return _used(o) == (None, None) and o.paths.exact


def test_switches_off(model, monkeypatch):
    clf, x, y = model
    assert not _never_accelerated(clf, x, y)
    assert _never_accelerated(clf, x, y, eot=2)
    off = Classifier(clf.net, num_classes=10, accelerate=False)
    assert _never_accelerated(off, x, y)
    monkeypatch.setenv("ADVKIT_ACCELERATE", "0")
    assert _never_accelerated(clf, x, y)


def test_never_for_models_with_hooks_float64_or_randomness(model):
    clf, x, y = model
    hooked = copy.deepcopy(clf)
    hooked.net[0].register_forward_hook(lambda m, i, o: o * 2)  # TorchScript would drop this hook
    assert _never_accelerated(hooked, x, y)
    double = copy.deepcopy(clf).double()
    assert _never_accelerated(double, x.double(), y)

    class Noisy(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, v):
            return self.net(v + 0.01 * torch.randn_like(v))
    assert _never_accelerated(Classifier(Noisy(copy.deepcopy(clf.net)), num_classes=10), x, y)


def test_a_copy_that_disagrees_is_dropped(model, monkeypatch):
    clf, x, y = model

    class Off(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, v):
            return self.inner(v) + 1e-2
    real = fastpath._Copies.channels_last
    monkeypatch.setattr(fastpath._Copies, "frozen", lambda self, m, example=None: (Off(clf), torch.contiguous_format))
    monkeypatch.setattr(fastpath._Copies, "channels_last",
                        lambda self, m: (Off(real(self, m)[0]), torch.channels_last))
    fastpath._CACHE.clear()
    assert _never_accelerated(clf, x, y)


def _warm_oracle(clf, x) -> Oracle:
    """An oracle that has served ``COMPILE_AFTER`` forward calls (so its compiled copy is in use)."""
    with clf.inference():
        o = Oracle(clf)
        for _ in range(fastpath.COMPILE_AFTER):
            o.logits(x)
    return o


def test_weights_changed_in_place_are_never_served_stale(model):
    clf, x, y = model
    o = _warm_oracle(clf, x)
    assert _used(o)[0] == "frozen"
    with torch.no_grad():
        clf.net[0].weight.mul_(-1.0)  # an optimizer step does the same: in place
        ref = clf(x)
    with clf.inference():
        o = Oracle(clf)
        for _ in range(fastpath.COMPILE_AFTER + 1):
            z = o.logits(x)
    assert torch.allclose(z, ref, atol=1e-4)
    res = PGD("linf:0.1", steps=5)(clf, x, y, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(res.predictions, clf(res.x_adv).argmax(1))


def test_the_callers_model_is_left_as_it_was(model):
    clf, x, y = model
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    Square("linf:0.2", n_queries=20)(clf, x, y, generator=torch.Generator().manual_seed(0))
    APGD("linf:0.2", steps=5)(clf, x, y, generator=torch.Generator().manual_seed(0))
    for k, v in clf.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous(), k


def test_the_cache_does_not_keep_models_alive(model):
    import gc
    clf, x, y = model
    clf = copy.deepcopy(clf)
    with clf.inference():
        o = Oracle(clf)
        for _ in range(fastpath.COMPILE_AFTER):
            o.logits(x)
        o.value_and_grad(x, _ce(y))
    assert clf in fastpath._CACHE
    alive = weakref.ref(clf)
    del o, clf
    gc.collect()
    assert alive() is None


class _FakePaths:
    exact = False


class _FakeOracle:
    """Fast logits put every row just over the boundary; the module puts row 0 just under it."""

    def __init__(self, exact_z):
        self.paths, self.exact_z, self.asked = _FakePaths(), exact_z, []

    def exact_logits(self, x):
        self.asked.append(len(x))
        return self.exact_z[: len(x)]

    def from_copy(self, z):
        return True

    def mark_exact(self, z, rows):
        pass


def test_decisions_near_the_boundary_are_rechecked_on_the_module():
    y = torch.tensor([0, 0])
    fast = torch.tensor([[1.0, 1.0 + 1e-6], [1.0, 5.0]])  # row 0: success by 1e-6; row 1: clear success
    exact = torch.tensor([[1.0 + 1e-6, 1.0], [1.0, 5.0]])  # the module says row 0 is not adversarial
    oracle = _FakeOracle(exact)
    ok = FGSM("linf:0.1")._checked_success(oracle, torch.zeros(2, 1, 2, 2), fast.clone(), y, None)
    assert ok.tolist() == [False, True]
    assert oracle.asked == [1]  # only the borderline row went back to the module


@pytest.mark.parametrize("attack", [FGSM("linf:0.1"), PGD("linf:0.1", steps=10, random_start=False),
                                    APGD("linf:0.1", steps=20)])
def test_attacks_decide_the_same_with_and_without_copies(model, attack, monkeypatch):
    clf, x, y = model
    fast = attack(clf, x, y, generator=torch.Generator().manual_seed(0))
    monkeypatch.setenv("ADVKIT_ACCELERATE", "0")
    slow = attack(clf, x, y, generator=torch.Generator().manual_seed(0))
    assert (fast.success != slow.success).sum() <= 1
    assert (fast.x_adv - slow.x_adv).abs().amax((1, 2, 3)).le(1e-5).float().mean() >= 0.95


class _Unscriptable(nn.Module):
    """TorchScript cannot compile this forward (a Python-only construct); a trace of it can."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, **unused):
        return self.net(x)


def test_unscriptable_models_are_traced(model):
    clf, x, y = model
    wrapped = Classifier(_Unscriptable(copy.deepcopy(clf.net)), num_classes=10)
    with wrapped.inference():
        o = Oracle(wrapped)
        for _ in range(fastpath.COMPILE_AFTER + 1):
            z = o.logits(x)
        ref = wrapped(x)
    assert _used(o)[0] == "frozen"
    assert torch.allclose(z, ref, atol=1e-4)


def test_models_without_convolutions_get_only_the_compiled_forward(model):
    _, x, y = model
    torch.manual_seed(0)
    mlp = Classifier(nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), num_classes=10)
    with mlp.inference():
        o = Oracle(mlp)
        o.logits(x)
        o.value_and_grad(x, _ce(y))
        assert _used(o) == (None, None)  # channels-last is for convolutions only
        for _ in range(fastpath.COMPILE_AFTER):
            z = o.logits(x)
        assert torch.allclose(z, mlp(x), atol=1e-5)
    assert _used(o) == ("frozen", None)  # the compiled copy still serves its forward passes


def test_weights_swapped_through_data_are_never_served_stale(model):
    clf, x, _ = model
    _warm_oracle(clf, x)
    key = fastpath._state_key(clf)
    clf.net[0].weight.data = -clf.net[0].weight.data  # no in-place write: a new tensor behind the Parameter
    assert fastpath._state_key(clf) != key


def test_no_compiled_copy_for_a_classifier_with_its_own_forward(model):
    clf, x, _ = model

    class Shifted(Classifier):
        def forward(self, v):
            return super().forward(v) + 1.0
    sub = Shifted(copy.deepcopy(clf.net), num_classes=10)
    assert fastpath._Copies(fastpath._state_key(sub)).frozen(sub) is None


class _ViewCNN(nn.Module):
    """A user model as many are written (TRADES' SmallCNN style): ``.view`` after the convolutions, which
    channels-last strides do not allow, and a forward TorchScript cannot compile (dynamic ``getattr``)."""

    def __init__(self):
        super().__init__()
        self.names = ["c1", "c2"]
        self.c1 = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
        self.c2 = nn.Sequential(nn.Conv2d(4, 8, 3), nn.ReLU())
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        for name in self.names:
            x = getattr(self, name)(x)
        return self.fc(x.view(-1, 8 * 4 * 4))


class _Branchy(_ViewCNN):
    """Data-dependent Python control flow: a trace would bake in one branch."""

    def forward(self, x):
        x = super().forward(x)
        return x * 2 if float(x.sum()) > 0 else x


def _user_model(cls):
    torch.manual_seed(0)
    return Classifier(cls().eval(), num_classes=10), torch.rand(16, 1, 8, 8), torch.arange(16) % 10


def test_a_copy_that_raises_is_dropped_not_fatal():
    """Regression: a model with ``.view`` made the channels-last probe raise, and every attack with it
    ('advkit bug', exit 4).  Now that copy is refused and the module's own passes are used."""
    clf, x, y = _user_model(_ViewCNN)
    fastpath._CACHE.clear()
    with clf.inference():
        o = Oracle(clf)
        z = o.logits(x)
        l, g, z2 = o.value_and_grad(x, _ce(y))
        ref = clf(x)
    assert _used(o)[1] is None  # no channels-last gradient copy
    assert torch.allclose(z, ref, atol=1e-5) and torch.allclose(z2, ref, atol=1e-5)
    res = APGD(threat="linf:0.1", steps=5)(clf, x, y, generator=torch.Generator().manual_seed(0))
    assert res.x_adv.shape == x.shape


def test_unscriptable_model_gets_a_traced_copy_checked_at_two_batch_sizes():
    clf, x, y = _user_model(_ViewCNN)
    fastpath._CACHE.clear()
    with clf.inference():
        o = Oracle(clf)
        for _ in range(fastpath.COMPILE_AFTER):
            o.logits(x)
        assert _used(o)[0] == "frozen"
        for n in (1, 3, 16):  # batch sizes other than the probe's
            assert torch.allclose(o.logits(x[:n]), clf(x[:n]), atol=1e-4)


def test_no_traced_copy_when_the_tracer_warns():
    clf, x, _ = _user_model(_Branchy)
    fastpath._CACHE.clear()
    with clf.inference():
        o = Oracle(clf)
        for _ in range(fastpath.COMPILE_AFTER + 1):
            o.logits(x)
    assert _used(o)[0] != "frozen"


class _Liar(nn.Module):
    """A deliberately wrong copy: swaps the two largest logits whenever they are within 3 of each other,
    so it calls near-boundary points adversarial that the module classifies correctly (and vice versa)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, v):
        z = self.inner(v)
        top = z.topk(2, 1)
        close = (top.values[:, 0] - top.values[:, 1]) < 3.0
        rows = close.nonzero().flatten()
        out = z.clone()
        out[rows, top.indices[rows, 0]] = top.values[rows, 1]
        out[rows, top.indices[rows, 1]] = top.values[rows, 0]
        return out


@pytest.mark.parametrize("attack", [FGSM("linf:0.1"), PGD("linf:0.1", steps=10), APGD("linf:0.1", steps=20),
                                    FAB("linf:0.1", steps=10), Square("linf:0.1", n_queries=100)])
def test_a_copy_never_decides_a_success_alone(model, attack, monkeypatch):
    """Issue 23.7: every success a copy reports is confirmed on the module before the sample stops, and the
    reported decisions are the module's, even with a copy that flips decisions (past its first check)."""
    clf, x, y = model
    liar = (_Liar(copy.deepcopy(clf.net)), torch.contiguous_format)
    monkeypatch.setattr(fastpath.FastPaths, "_pick_forward", lambda self, probe: liar)
    monkeypatch.setattr(fastpath.FastPaths, "_pick_grad", lambda self, probe: liar)
    confirmed = []
    real_confirm = Oracle.confirm

    def counting(self, z, success, decide):
        out = real_confirm(self, z, success, decide)
        confirmed.append(int((success & ~out).sum()))   # successes of the copy the module rejected
        return out
    monkeypatch.setattr(Oracle, "confirm", counting)
    r = attack(clf, x, y, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        exact = clf.net(r.x_adv).argmax(1)
    assert r.success.tolist() == (exact != y).tolist()          # the module's decisions, both ways
    assert r.predictions.tolist() == exact.tolist()
    assert sum(confirmed) > 0                                   # the liar's successes were caught in the loop
