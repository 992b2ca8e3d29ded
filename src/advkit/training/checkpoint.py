"""Training checkpoints: written after every epoch, read back only after every field is checked.

A checkpoint (``checkpoint_dir/checkpoint.pt``, tmp + rename) holds the model, optimizer and scheduler
states, the epoch counter, the history, the best weights so far, the recipe and the run's identity
(:mod:`advkit.identity`: the training data's content hash, the initial weights' hash, the architecture
and the code version).  Resuming refuses, with one line naming the field, a checkpoint of another
recipe or identity, and a file whose fields do not fit the run (a crafted or foreign file): nothing of
it is loaded into the run and the checkpoint folder is left as it was.
"""
from __future__ import annotations

import logging
import math
import pickle
import warnings
from numbers import Real
from pathlib import Path

import torch

from .. import distributed
from ..atomic import atomic_path
from ..errors import ConfigError
from ..identity import identity_mismatch
from .config import TrainConfig

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
FORMAT = 1
RESUME_MODES = (False, True, "or-start")


def prepare(run, path: Path, config: TrainConfig, resume, identity: dict | None) -> None:
    """Load ``path`` into ``run`` when resuming; refuse a checkpoint that a fresh run would overwrite
    and a ``--resume`` with nothing to resume (unless ``resume == "or-start"``)."""
    if resume not in RESUME_MODES:
        raise ConfigError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
    if path.exists() and not resume:
        raise ConfigError(f"a checkpoint already exists at {path}; pass resume=True (--resume) to continue it "
                          "or choose another checkpoint directory")
    if path.exists():
        load(run, path, config, identity)
    elif resume is True:
        raise ConfigError(f"--resume: expected a checkpoint at {path}, got none; pass --resume-or-start to start "
                          "a new run there when none exists, or check --checkpoint-dir")
    elif resume:
        log.info("no checkpoint at %s: starting from scratch", path)
    if distributed.is_main():
        path.parent.mkdir(parents=True, exist_ok=True)


def save(run, path: Path, config: TrainConfig, identity: dict | None) -> None:
    if distributed.is_main():
        state = {"format": FORMAT, "epoch": run.epoch, "config": config.to_dict(), "history": run.history,
                 "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "scheduler": run.scheduler.state_dict(), "best": run.best, "identity": identity or {}}
        with atomic_path(path) as tmp:  # a kill leaves the previous checkpoint intact
            torch.save(state, tmp)
    distributed.barrier()


def load(run, path: Path, config: TrainConfig, identity: dict | None) -> None:
    """Check every field of the checkpoint at ``path`` against ``run`` first, then load it."""
    state = _read(path, run.model.device)
    saved = state["config"]
    diff = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v)
    if diff:
        raise ConfigError(f"cannot resume {path}: the recipe differs in {diff} "
                          f"(checkpoint: {[saved.get(k) for k in diff]}, now: {[getattr(config, k) for k in diff]})")
    if identity:
        recorded = state.get("identity")
        changed = identity_mismatch(recorded if isinstance(recorded, dict) else {}, identity)
        if changed:
            raise ConfigError(f"cannot resume {path}: {changed}; continuing would mix two trainings: "
                              "use another --checkpoint-dir")
    epoch, history, best = _check_fields(state, path, run, config)
    _load_states(run, state, path)
    run.epoch, run.history, run.best = epoch, history, best
    log.info("resumed %s at epoch %d", path, run.epoch)


def _read(path: Path, device) -> dict:
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing; the error says it
            warnings.simplefilter("ignore", UserWarning)
            state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError:
        raise ConfigError(f"cannot resume from {path}: loading it would run arbitrary code, so it was refused "
                          "(nothing in it was executed); it is not a checkpoint written by advkit train") from None
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError, EOFError, ... for a damaged file
        raise ConfigError(f"cannot read checkpoint {path}: it is truncated or corrupt "
                          f"({type(e).__name__}: {_one_line(e)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("config"), dict):
        raise ConfigError(f"cannot resume from {path}: expected an advkit train checkpoint (a dict with format "
                          f"{FORMAT}), got {type(state).__name__}")
    if state.get("format") != FORMAT:
        raise ConfigError(f"checkpoint {path} has format {state.get('format')!r}, expected {FORMAT}")
    return state


def _check_fields(state: dict, path: Path, run, config: TrainConfig) -> tuple[int, list, dict]:
    """(epoch, history, best) of ``state`` when each has the type and range this run needs."""
    epoch = state.get("epoch")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch <= config.epochs:
        raise _bad(path, "epoch", f"an integer in [0, {config.epochs}]", _describe(epoch))
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch or not all(isinstance(r, dict) for r in history):
        raise _bad(path, "history", f"a list of {epoch} epoch records (dicts)", _describe(history))
    shapes = {k: tuple(v.shape) for k, v in run.model.state_dict().items()}
    _check_weights(state.get("model"), shapes, path, "model")
    best = state.get("best")
    if not isinstance(best, dict) or set(best) != {"epoch", "score", "model", "metrics"}:
        raise _bad(path, "best", "a dict with epoch, score, model and metrics", _describe(best))
    b_epoch, score = best["epoch"], best["score"]
    if isinstance(b_epoch, bool) or not isinstance(b_epoch, int) or not -1 <= b_epoch <= epoch:
        raise _bad(path, "best.epoch", f"an integer in [-1, {epoch}]", _describe(b_epoch))
    if isinstance(score, bool) or not isinstance(score, Real) or math.isnan(score):
        raise _bad(path, "best.score", "a number", _describe(score))
    if not isinstance(best["metrics"], dict):
        raise _bad(path, "best.metrics", "a dict", _describe(best["metrics"]))
    if best["model"] is not None:
        _check_weights(best["model"], shapes, path, "best.model")
    return epoch, list(history), dict(best)


def _check_weights(sd, shapes: dict, path: Path, field: str) -> None:
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise _bad(path, field, "a state dict of tensors", _describe(sd))
    if set(sd) != set(shapes):
        raise _bad(path, field, f"the {len(shapes)} tensors of this architecture",
                   f"other names ({sorted(set(sd) ^ set(shapes))[:3]} differ)")
    wrong = [k for k, v in sd.items() if tuple(v.shape) != shapes[k]]
    if wrong:
        raise _bad(path, field, f"{wrong[0]} of shape {list(shapes[wrong[0]])}", list(sd[wrong[0]].shape))


def _like(saved, fresh, where: str) -> str | None:
    """The first place (``where.key[i]``) where ``saved`` has another structure than ``fresh``: other keys,
    lengths or kinds of value (numbers, text, None); tensors are left to :func:`_load_states`."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            return where
        return next((w for k in fresh if (w := _like(saved[k], fresh[k], f"{where}.{k}"))), None)
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return where
        return next((w for i, (a, b) in enumerate(zip(saved, fresh)) if (w := _like(a, b, f"{where}[{i}]"))), None)
    if isinstance(fresh, torch.Tensor):
        return None
    kind = lambda v: "bool" if isinstance(v, bool) else "number" if isinstance(v, Real) else type(v).__name__  # noqa: E731
    return None if kind(saved) == kind(fresh) or fresh is None and saved is None else where


def _load_states(run, state: dict, path: Path) -> None:
    """Load the model, optimizer and scheduler states (a failure ends the run: it is never trained on)."""
    optimizer = state.get("optimizer")
    groups = optimizer.get("param_groups") if isinstance(optimizer, dict) else optimizer
    # torch loads hyper-parameters and scheduler fields as they are: "abc" would fail only in a later step
    where = (_like(groups, run.optimizer.state_dict()["param_groups"], "optimizer.param_groups")
             or _like(state.get("scheduler"), run.scheduler.state_dict(), "scheduler"))
    if where:
        raise _bad(path, where, "like the state of this recipe", "another structure or kind of value")
    for field, target in (("model", run.model), ("optimizer", run.optimizer), ("scheduler", run.scheduler)):
        try:
            target.load_state_dict(state.get(field))
        except Exception as e:  # noqa: BLE001 - torch raises KeyError, ValueError, TypeError, ... for a bad state
            raise _bad(path, field, f"the {field} state of this recipe", f"one that does not load "
                       f"({type(e).__name__}: {_one_line(e)})") from None
    params = {p for g in run.optimizer.param_groups for p in g["params"]}
    for p, st in run.optimizer.state.items():
        for k, v in st.items():
            if p in params and isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != p.shape:
                raise _bad(path, f"optimizer.{k}", f"shape {list(p.shape)}", list(v.shape))
            if not isinstance(v, (torch.Tensor, Real, type(None))):
                raise _bad(path, f"optimizer.{k}", "a tensor or number", _describe(v))


def _bad(path: Path, field: str, expected: str, got) -> ConfigError:
    return ConfigError(f"cannot resume {path}: expected {field} to be {expected}, got {got}; "
                       "it is not a checkpoint this run wrote (use another --checkpoint-dir)")


def _describe(value) -> str:
    if isinstance(value, (list, tuple, dict)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, (str, Real)):
        return repr(value if not isinstance(value, str) else value[:40])
    return type(value).__name__


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:160]
