"""Training defaults that learn on every built-in architecture and data set, short runs and long.

The class defaults of :class:`~advkit.training.config.TrainConfig` are one recipe for every
architecture: Adam (Kingma & Ba 2015) at lr 1e-3 without weight decay, batches of 64, a cosine decay
(Loshchilov & Hutter 2017) and no step decay, so that no milestone can cut the rate before the model has
left its initial plateau (the old defaults — SGD at 0.05 with ×0.1 cuts at 50% and 75% of the run —
left a 3-epoch small CNN at 10%).  The measurements that chose them are in ``docs/training.md``.

:func:`task_defaults` adds what depends on the task:

- **the data set's ε** (:data:`DATA_EPS`): the budget its adversarial training usually uses (MNIST
  0.3 — Madry et al. 2018; Fashion-MNIST 0.1 — Croce et al. 2019; CIFAR-10 8/255; sklearn's 8×8 digits
  0.125 = 2/16, two of its 17 grey levels, chosen by measurement: the largest ε at which 3-epoch
  adversarial training still reaches 90% clean accuracy, docs/training.md);
- **small data sets** (:data:`DATA_FIELDS`): digits trains on all its train images, in batches of 4
  at twice the rate, with its mean/std as input normalisation;
- **input padding** for the small CNN on inputs under 20 pixels (8×8 digits): ``padding=1``;
- **ε warm-up** for the adversarial methods: ε ramps linearly from 0 over the first 30% of the run
  (at most 5 epochs; Gowal et al. 2018 "On the effectiveness of interval bound propagation", and the
  zoo recipes), which lets PGD-AT at ε = 0.3 leave chance level within the first epoch;
- **learning-rate warm-up** over the first 10% of the run (at most 1 epoch).

The training attack takes 3 PGD steps of 2.5·ε/3 (instead of 10 or 40): Wong, Rice & Kolter (2020),
"Fast is better than free", show that even a single random-start FGSM step trains MNIST and CIFAR-10
models as robust as multi-step PGD-AT when the step size is controlled; a few steps keep that margin
while avoiding FGSM's catastrophic overfitting (Andriushchenko & Flammarion 2020).

:func:`fit_warmup` shortens an ε warm-up that is not shorter than the run (to half the run) and says so.
"""
from __future__ import annotations

import math

#: ε of each data set's adversarial training (keys: the data REF's kind, before any ``:``).
DATA_EPS = {
    "mnist5k": 0.3, "digits": 0.125, "fashion-mnist": 0.1,
    "torchvision:MNIST": 0.3, "torchvision:FashionMNIST": 0.1, "torchvision:CIFAR10": 8 / 255,
}
#: per data set: fields that differ from the class defaults, and a factor on the optimizer's default rate.
#: sklearn's digits (1,437 training images; its fixed test split is the last 360 rows, i.e. other writers):
#: every training image is used (no validation split: held-out train images are the same writers and
#: said nothing about the test writers), batches of 4 at twice the rate (a 3-epoch run takes ~1,080
#: optimisation steps) and input normalisation by the train split's mean/std, built into the model.
#: Measured on 3-epoch runs, seeds 0-2 (docs/training.md): the old batches of 8 with 200 held out and no
#: normalisation ended at 85.8-91.1% test accuracy; these at 92.2-96.1%.
DATA_FIELDS = {"digits": {"val_size": 0, "batch_size": 4, "mean": (0.305,), "std": (0.376,)}}
DATA_LR_SCALE = {"digits": 2.0}
ADVERSARIAL = ("pgd-at", "trades", "fast-at", "mart")
#: learning rate and weight decay of each optimizer (SGD: the zoo's standard-training recipes, momentum 0.9)
OPTIMIZER_DEFAULTS = {"adam": {"lr": 1e-3, "weight_decay": 0.0}, "sgd": {"lr": 0.05, "weight_decay": 5e-4}}
#: ε warm-up: this fraction of the run, at most ``EPS_WARMUP_MAX`` epochs.
EPS_WARMUP_FRACTION, EPS_WARMUP_MAX = 0.3, 5.0
#: learning-rate warm-up: this fraction of the run, at most ``LR_WARMUP_MAX`` epochs.
LR_WARMUP_FRACTION, LR_WARMUP_MAX = 0.1, 1.0
#: small-CNN inputs under this many pixels need padding=1 (two valid 3×3 convolutions + pool, twice).
SMALLCNN_MIN_UNPADDED = 20


def _data_key(data) -> str:
    if not isinstance(data, str):
        return ""
    kind, _, rest = data.partition(":")
    if kind == "torchvision":
        return f"torchvision:{rest.partition(':')[0]}"
    return kind


def _input_size(data) -> int | None:
    """Image side of the built-in data sets (None when unknown without loading the data)."""
    key = _data_key(data)
    if key == "digits":
        return 8
    if key in ("mnist5k", "fashion-mnist", "torchvision:MNIST", "torchvision:FashionMNIST"):
        return 28
    if key == "torchvision:CIFAR10":
        return 32
    return None


def task_defaults(arch, data, method, epochs, optimizer="adam") -> dict:
    """Defaults that depend on the task (see the module docstring) and on the optimizer's rate."""
    out: dict = dict(OPTIMIZER_DEFAULTS.get(optimizer, {}))
    key = _data_key(data)
    if key in DATA_EPS:
        out["eps"] = DATA_EPS[key]
    out.update(DATA_FIELDS.get(key, {}))
    if "lr" in out and key in DATA_LR_SCALE:
        out["lr"] *= DATA_LR_SCALE[key]
    size = _input_size(data)
    if arch == "smallcnn" and size is not None and size < SMALLCNN_MIN_UNPADDED:
        out["arch_kwargs"] = {"padding": 1}
    if isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1:
        out["lr_warmup_epochs"] = round(min(LR_WARMUP_MAX, LR_WARMUP_FRACTION * epochs), 3)
        if method in ADVERSARIAL:
            out["warmup_epochs"] = round(min(EPS_WARMUP_MAX, EPS_WARMUP_FRACTION * epochs), 3)
    return out


def fit_warmup(config):
    """``(config, note)``: an ε warm-up not shorter than the run shortened to half the run.

    A ramp of W ≥ E epochs in an E-epoch run never reaches the ε the model is labelled with (a 1-epoch
    run with a 5-epoch ramp trains at ε/5); ``note`` (None when nothing changed) says what was done.
    """
    if not config.is_adversarial or config.warmup_epochs < config.epochs:
        return config, None
    short = config.epochs / 2
    note = (f"the ε warm-up ({config.warmup_epochs:g} epochs) is not shorter than the run ({config.epochs} "
            f"epoch{'s' if config.epochs != 1 else ''}), so the model would never train at ε={config.eps:g}; "
            f"shortened it to {short:g} epochs (pass --warmup-epochs below --epochs to choose)")
    return config.replace(warmup_epochs=short), note


def default_lr(optimizer: str) -> float | None:
    return OPTIMIZER_DEFAULTS.get(optimizer, {}).get("lr")


def lr_is_far_from_default(lr: float, optimizer: str) -> str | None:
    """"small"/"large" when ``lr`` is ≥ 30× away from the optimizer's default rate, else None."""
    default = default_lr(optimizer)
    if not default or not lr > 0 or not math.isfinite(lr):
        return None
    ratio = lr / default
    return "small" if ratio <= 1 / 30 else "large" if ratio >= 30 else None
