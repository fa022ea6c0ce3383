"""Reading checkpoints in their official layouts: the loading code the model services use.

Contracts
---------
- Every load is `torch.load(..., map_location="cpu", weights_only=True)`: no arbitrary code runs. The
  only extra globals allowed are `ALLOWED_GLOBALS` (QVI's training script stores a
  `datetime.datetime` timestamp next to the weights). FOMM's official `.pth.tar` files are LEGACY
  (pre-1.6, non-zip) pickles; torch's weights-only unpickler reads them without extra globals.
- TorchScript archives (a zip with `constants.pkl` and `code/`) are read with `torch.jit.load` and
  reduced to their `state_dict()` (TorchScript is not Python pickle; it cannot run Python code).
- Returned state dicts map str -> Tensor, keys stripped of nn.DataParallel's `module.` prefix
  unless a caller asks otherwise. Tensors are on CPU, dtype as stored.
- Errors: an absent file -> WeightsMissing; an unreadable one (truncated, corrupt, HTML saved as
  .pth) -> CorruptCheckpoint; a readable file of the wrong model or shape -> WrongCheckpoint. Each
  message names the file and the `lihq weights verify/fetch NAME` command that fixes it.
"""

from __future__ import annotations

import datetime
import importlib
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lihq.errors import FailedPrecondition, WeightsMissing
from lihq.weights.registry import entry_for_filename

StateDict = dict[str, torch.Tensor]

ALLOWED_GLOBALS: list[Any] = [datetime.datetime]
_UNSUPPORTED_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_MAX_LISTED = 8


class CorruptCheckpoint(FailedPrecondition):
    """The file exists but cannot be read as a checkpoint (truncated download, wrong file type)."""


class WrongCheckpoint(FailedPrecondition):
    """The file is a readable checkpoint, but not of the expected model / layout / shapes."""


@dataclass(frozen=True)
class _Scripted:
    """A TorchScript archive, reduced to its parameters and buffers."""

    state_dict: StateDict


def _hint(path: Path) -> str:
    entry = entry_for_filename(path.name)
    if entry is None:
        return "check the file, or run `lihq weights verify`"
    return f"run `lihq weights verify {entry.name}`, then `lihq weights fetch {entry.name} --force`"


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _importable(dotted: str) -> bool:
    module, _, attr = dotted.rpartition(".")
    try:
        return bool(module) and hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


def _unpickling_error(path: Path, exc: pickle.UnpicklingError) -> FailedPrecondition:
    match = _UNSUPPORTED_GLOBAL.search(str(exc))
    if match and _importable(match.group(1)):
        return WrongCheckpoint(
            f"{path}: holds the Python object {match.group(1)}, outside the weights-only allow-list; "
            f"refusing to unpickle it (not an official checkpoint layout?); {_hint(path)}"
        )
    return CorruptCheckpoint(f"{path}: not a readable checkpoint (truncated or corrupt); {_hint(path)}")


def read_checkpoint(path: str | Path) -> Any:
    """The unpickled object of a checkpoint file (weights-only), or a `_Scripted` for TorchScript.

    Raises WeightsMissing / CorruptCheckpoint as described in the module docstring.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsMissing(f"checkpoint missing: {path}; {_hint(path)}")
    if path.stat().st_size == 0:
        raise CorruptCheckpoint(f"{path}: empty file; {_hint(path)}")
    if _is_torchscript(path):
        return _read_torchscript(path)
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise _unpickling_error(path, exc) from exc
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError, KeyError, TypeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CorruptCheckpoint(
            f"{path}: not a readable checkpoint (truncated or corrupt: {reason}); {_hint(path)}"
        ) from exc


def _read_torchscript(path: Path) -> _Scripted:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript input is supported on purpose
            module = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        raise CorruptCheckpoint(f"{path}: unreadable TorchScript archive ({exc}); {_hint(path)}") from exc
    return _Scripted({k: v.detach() for k, v in module.state_dict().items()})


def describe(obj: Any) -> str:
    """A short guess of what a loaded checkpoint object is, for error messages."""
    if isinstance(obj, _Scripted):
        return "a TorchScript archive"
    if not isinstance(obj, Mapping):
        return f"a {type(obj).__name__}"
    keys = set(obj)
    guesses = (
        ({"generator", "kp_detector"}, "a FOMM checkpoint"),
        ({"state_dict", "global_step"}, "a Wav2Lip training checkpoint"),
        ({"params_ema"}, "a BasicSR checkpoint (GFPGAN / Real-ESRGAN)"),
        ({"model_state_dict"}, "a QVI checkpoint"),
        ({"model_g"}, "a TorToiSe/UnivNet vocoder checkpoint"),
        ({"model", "model_args"}, "a Bark checkpoint"),
    )
    for needed, label in guesses:
        if needed <= keys:
            return label
    listed = ", ".join(sorted(map(str, keys))[:_MAX_LISTED])
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return f"a plain state dict ({len(obj)} tensors, e.g. {listed})"
    return f"a dict with keys [{listed}{', …' if len(keys) > _MAX_LISTED else ''}]"


def remove_prefix(sd: Mapping[str, torch.Tensor], prefix: str | None = "module.") -> StateDict:
    """`sd` with `prefix` removed from every key that starts with it (None: unchanged copy)."""
    if not prefix:
        return dict(sd)
    return {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in sd.items()}


def _as_state_dict(obj: Any, path: Path, expected: str) -> StateDict:
    if isinstance(obj, _Scripted):
        return dict(obj.state_dict)
    if isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if all(isinstance(k, str) for k in obj):
            return dict(obj)
    raise WrongCheckpoint(f"{path}: expected {expected}, found {describe(obj)}; {_hint(path)}")


def load_state_dict(
    path: str | Path, key: str | None = None, strip_prefix: str | None = "module."
) -> StateDict:
    """A state dict from `path`: the whole file (key None) or the sub-dict stored under `key`.

    `strip_prefix` is removed from keys that carry it (default nn.DataParallel's `module.`; None keeps
    keys exactly as stored, e.g. to fingerprint an official-layout dict). TorchScript archives are
    accepted (their state_dict; `key` is ignored).
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if key is not None and not isinstance(obj, _Scripted):
        if not isinstance(obj, Mapping) or key not in obj:
            raise WrongCheckpoint(
                f"{path}: expected a checkpoint with {key!r}, found {describe(obj)}; {_hint(path)}"
            )
        obj = obj[key]
    what = f"a state dict under {key!r}" if key else "a state dict"
    return remove_prefix(_as_state_dict(obj, path, what), strip_prefix)


def load_fomm_checkpoint(path: str | Path) -> dict[str, StateDict]:
    """{'generator': sd, 'kp_detector': sd} from a FOMM `*-cpk.pth.tar` (legacy pickle or zip).

    The discriminator and optimizer states in the file are dropped. Keys keep their official names.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    expected = "a FOMM checkpoint (dict with 'generator' and 'kp_detector')"
    if not isinstance(obj, Mapping) or not {"generator", "kp_detector"} <= set(obj):
        raise WrongCheckpoint(f"{path}: expected {expected}, found {describe(obj)}; {_hint(path)}")
    return {
        part: remove_prefix(_as_state_dict(obj[part], path, f"{part} state dict"))
        for part in ("generator", "kp_detector")
    }


def load_wav2lip_checkpoint(path: str | Path) -> StateDict:
    """The Wav2Lip generator state dict, `module.` stripped.

    Accepts the official training checkpoint ({'state_dict': ..., 'optimizer', 'global_step',
    'global_epoch'}), a bare state dict, or a TorchScript export of the generator.
    """
    path = Path(path)
    obj = read_checkpoint(path)
    if isinstance(obj, Mapping) and "state_dict" in obj:
        obj = obj["state_dict"]
    expected = "a Wav2Lip checkpoint ({'state_dict': ...}, a state dict, or TorchScript)"
    return remove_prefix(_as_state_dict(obj, path, expected))


def _listing(label: str, items: Sequence[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{len(items)} {label}: {shown}{more}"


def check_against_manifest(
    sd: Mapping[str, torch.Tensor],
    manifest: Mapping[str, Sequence[int]] | Mapping[str, Any],
    *,
    what: str = "checkpoint",
    strip: str | None = "module.",
) -> None:
    """Strict check: the keys of `sd` equal the expected table's and every shape matches.

    `manifest` is {key: shape}, usually the state dict shapes of the module being loaded (or a
    `{"shapes": {...}}` table). `strip` is removed from the keys of both sides first (loaders strip
    `module.`). Raises WrongCheckpoint listing missing / unexpected keys and shape mismatches (first
    few of each, with counts).
    """
    if isinstance(manifest.get("shapes"), Mapping):
        manifest = manifest["shapes"]
    want = {k: tuple(int(s) for s in v) for k, v in remove_prefix(manifest, strip).items()}
    have = {k: tuple(v.shape) for k, v in remove_prefix(sd, strip).items()}
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = sorted(
        f"{k} {list(have[k])} != {list(want[k])}" for k in set(want) & set(have) if have[k] != want[k]
    )
    problems = [
        _listing(label, items)
        for label, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", shapes),
        )
        if items
    ]
    if problems:
        raise WrongCheckpoint(f"{what} does not match the network's keys and shapes: " + "; ".join(problems))


def load_by_layout(layout: str, path: str | Path) -> dict[str, StateDict]:
    """The state dict(s) of a file in a registry layout, keyed by part, `module.` stripped.

    FOMM -> {'generator', 'kp_detector'}; every other layout -> {'model': sd}.
    """
    path = Path(path)
    if layout == "fomm_cpk_legacy_pickle":
        return load_fomm_checkpoint(path)
    if layout == "wav2lip_state_dict_module":
        return {"model": load_wav2lip_checkpoint(path)}
    keys = {
        "gfpgan_params_ema": "params_ema",
        "realesrgan_params_ema": "params_ema",
        "qvi_module": "model_state_dict",
        "tortoise_vocoder_model_g": "model_g",
        "bark_model_args": "model",
    }
    return {"model": load_state_dict(path, key=keys.get(layout))}
