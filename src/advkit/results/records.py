"""Per-sample records: the source of truth of an evaluation (DESIGN principle 6).

Records are a flat ``dict[str, np.ndarray]``; every array has one entry per evaluated sample, in
dataset order.  Keys:

* ``index``, ``label``, ``clean_pred``, ``clean_conf``, ``clean_correct``, ``top5_correct``
* ``{threat}/{attack}/success`` (bool: misclassified after that attack, clean mistakes included),
  ``{threat}/{attack}/pred``; attacks are ``fgsm``, ``pgd``, ``autoattack``, ``square`` …
* ``{threat}/robust`` (bool, worst case over every attack run), ``{threat}/broken_by`` (str: ``clean``,
  an attack name, or empty when robust), ``{threat}/adv_pred``, ``{threat}/adv_conf``
* ``{threat}/curve/{i}/success`` for the i-th ε of that threat's curve
* in ``samples.npz`` also ``{threat}/x_adv`` (float32, the input's shape: the adversarial example of each
  broken sample, from the attack named in ``broken_by``; the clean input otherwise) and
  ``{threat}/x_adv_found`` (bool), plus the report gallery's ``gallery_*`` arrays

Aggregates, curves, gates and reports are derived from these arrays.  Batches of records travel to
the history database (for resume) as compressed ``.npz`` bytes via :func:`pack` / :func:`unpack`.
"""
from __future__ import annotations

import io

import numpy as np

Records = dict


def key(threat, *parts: str) -> str:
    """``key("linf:0.3", "pgd", "success")`` → ``"linf:0.3/pgd/success"``."""
    return "/".join([str(threat), *parts])


def pack(records: dict) -> bytes:
    """Serialise a dict of arrays (numbers, bools or strings) as compressed npz bytes."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: _plain_array(v) for k, v in records.items()})
    return buf.getvalue()


def unpack(blob: bytes) -> dict:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _plain_array(v) -> np.ndarray:
    a = np.asarray(v.detach().cpu() if hasattr(v, "detach") else v)
    if a.dtype == object:
        a = a.astype(str)
    return a


def concat(batches: list[dict]) -> dict:
    """Concatenate per-batch record dicts along the sample axis (keys must agree)."""
    if not batches:
        return {}
    keys = batches[0].keys()
    return {k: np.concatenate([np.atleast_1d(b[k]) for b in batches]) for k in keys}


def worst_case(records: dict, threat, attacks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(robust, broken_by) over ``attacks`` in run order: a sample is robust only if it is
    classified correctly and no attack succeeded; ``broken_by`` names the first that did."""
    correct = np.asarray(records["clean_correct"], dtype=bool)
    broken_by = np.where(correct, "", "clean").astype("<U32")
    robust = correct.copy()
    for name in attacks:
        k = key(threat, name, "success")
        if k not in records:
            continue
        hit = robust & np.asarray(records[k], dtype=bool)
        broken_by[hit] = name
        robust &= ~hit
    return robust, broken_by


def attribution(broken_by: np.ndarray) -> dict[str, int]:
    """How many samples each attack broke first (``clean`` = misclassified without attack)."""
    names, counts = np.unique(np.asarray(broken_by)[np.asarray(broken_by) != ""], return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts)}
