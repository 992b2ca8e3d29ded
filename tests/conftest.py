import os

os.environ.setdefault("ADVKIT_STRICT", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)  # the suite runs as 2 xdist workers on 2 cores


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)


def _train_digits_model(seed: int = 0):
    """A small CNN trained on scikit-learn's 8×8 digits in a few seconds (shared by tests)."""
    import numpy as np
    from sklearn.datasets import load_digits
    from torch import nn

    from advkit.model import Classifier

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target, dtype=torch.long)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    xtr, ytr, xte, yte = x[:1400], y[:1400], x[1400:], y[1400:]
    torch.manual_seed(seed)  # test fixture only: the library never seeds globally
    net = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for epoch in range(15):
        order = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(net(xtr[idx]), ytr[idx]).backward()
            opt.step()
    net.eval()
    clf = Classifier(net, num_classes=10, input_shape=(1, 8, 8), name="digits-cnn")
    return clf, xte, yte


@pytest.fixture(scope="session")
def digits_model():
    """(Classifier, x_test, y_test): a standard CNN on sklearn digits, ~97% test accuracy."""
    return _train_digits_model()


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server of this test session (skips when none can be started here)."""
    from support import pgserver

    try:
        server = pgserver.start()
    except pgserver.Unavailable as e:
        pytest.skip(f"no PostgreSQL server: {e}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def history_db(request, tmp_path):
    """A fresh, empty history database target of each back end: a SQLite path and a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db")
    return request.getfixturevalue("pg_server").new_database()
