"""Synthetic checkpoints in the official file layouts, for tests and smoke renders (docs/architecture.md).

Built from the project's own code only: each registry file names the network(s) it holds
(`WeightFile.nets`); we build them, take their state dicts (keys, shapes, dtypes), fill every tensor
deterministically from the seed (`lihq.weights.fill`, rule `fill.RULE`; `lihq verify` passes a vector
set's own fill instead), and store them under the official keys (nn.DataParallel's `module.` where
the official file has it, MODNet's aliased backbone, FOMM's / Wav2Lip's / QVI's / BasicSR's wrapper
dicts). The file is written in the official container layout (FOMM: a legacy non-zip pickle), so it
travels through the real loaders. Beside it goes `<file>.synthetic.json` (seed, fill rule, file size
and sha256): anything that loads a weights file calls `is_synthetic(path)` and says loudly when the
weights are synthetic.

Placeholders (documented, not official values): FOMM's `discriminator` is an empty dict and its
optimizer states are empty Adam states; Wav2Lip's `optimizer` is an empty Adam state; QVI's metadata
(`Detail`, `epoch`, `timestamp`, losses) are fixed small values.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from lihq.config import WeightsConfig
from lihq.errors import FailedPrecondition, InvalidInput
from lihq.weights import fill as fillrule
from lihq.weights.registry import ENTRIES, WeightFile, WeightsEntry, get_entry, local_path

StateDict = dict[str, torch.Tensor]
SIDECAR_SUFFIX = ".synthetic.json"
_MODULE = "module."
_MODNET_ALIAS = ("lr_branch.backbone.", "backbone.")


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_fingerprint(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over sorted keys: utf-8 key bytes then the tensor's C-order bytes."""
    h = hashlib.sha256()
    for key in sorted(sd):
        h.update(key.encode("utf-8"))
        h.update(sd[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def build_net(ref: str, device: str = "cpu") -> torch.nn.Module:
    """The network a registry `nets` reference (`package.module:callable`) builds, untrained.

    device "meta" builds it without memory or init cost (only keys, shapes and dtypes are real).
    """
    module_name, _, attr = ref.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise FailedPrecondition(f"cannot build network {ref}: {exc}") from exc
    with torch.device(device):
        return factory()


def _layout_of(ref: str) -> StateDict:
    """The state dict of a network (meta tensors where the network can be built on `meta`)."""
    try:
        return build_net(ref, "meta").state_dict()
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # an __init__ that computes on data
        return build_net(ref).state_dict()


def net_shapes(wfile: WeightFile) -> list[dict[str, list[int]]]:
    """{key: shape} of each part's network (module keys, before the official layout's prefixes)."""
    return [{k: list(v.shape) for k, v in _layout_of(ref).items()} for ref in wfile.nets]


def fill_parts(wfile: WeightFile, seed: int, fill: fillrule.FillFn = fillrule.fill_tensor) -> list[StateDict]:
    """One filled state dict per part, under the networks' own keys."""
    return [fillrule.fill_state_dict(_layout_of(ref), seed, fill) for ref in wfile.nets]


def _empty_adam(lr: float, betas: tuple[float, float], n_params: int) -> dict[str, Any]:
    group = {"lr": lr, "betas": betas, "eps": 1e-8, "weight_decay": 0, "amsgrad": False}
    return {"state": {}, "param_groups": [{**group, "params": list(range(n_params))}]}


def _fomm(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    generator, kp_detector = parts
    cpk = {
        "generator": generator,
        "kp_detector": kp_detector,
        "discriminator": {},  # placeholder: the official file stores the MultiScaleDiscriminator here
        "optimizer_generator": _empty_adam(2e-4, (0.5, 0.999), 0),
        "optimizer_discriminator": _empty_adam(2e-4, (0.5, 0.999), 0),
        "optimizer_kp_detector": _empty_adam(2e-4, (0.5, 0.999), 0),
        "epoch": 99,
    }
    return cpk, True  # legacy (non-zip) pickle, as the 2019 release


def _wav2lip(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    sd = _prefixed(parts[0])
    obj = {
        "state_dict": sd,
        "optimizer": _empty_adam(1e-4, (0.9, 0.999), len(sd)),
        "global_step": 0,
        "global_epoch": 0,
    }
    return obj, False


def _plain(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return parts[0], False


def _prefixed(sd: StateDict) -> StateDict:
    return {_MODULE + k: v for k, v in sd.items()}


def _plain_module(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return _prefixed(parts[0]), False


def _params_ema(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return {"params_ema": parts[0]}, False


def _modnet(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    sd = dict(parts[0])
    alias, source = _MODNET_ALIAS
    for key in sd:
        if key.startswith(alias):
            sd[key] = sd[source + key[len(alias) :]]  # one tensor under two names, as in the official file
    return _prefixed(sd), False


def _qvi(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    meta = {
        "Detail": "Quadratic video interpolation.",
        "epoch": 0,
        "timestamp": datetime.datetime(2019, 10, 1),
        "trainBatchSz": 1,
        "validationBatchSz": 1,
        "learningRate": 1e-4,
        "loss": 0.0,
        "valLoss": 0.0,
        "valPSNR": 0.0,
    }
    return {**meta, "model_state_dict": _prefixed(parts[0])}, False


_BUILDERS: dict[str, Callable[[list[StateDict], int], tuple[Any, bool]]] = {
    "fomm_cpk_legacy_pickle": _fomm,
    "wav2lip_state_dict_module": _wav2lip,
    "torch_state_dict": _plain,
    "torch_state_dict_module": _plain_module,
    "gfpgan_params_ema": _params_ema,
    "realesrgan_params_ema": _params_ema,
    "modnet_dataparallel": _modnet,
    "qvi_module": _qvi,
}


def _weights_dir(cfg_or_dir: WeightsConfig | Path | str) -> Path:
    return cfg_or_dir.dir if isinstance(cfg_or_dir, WeightsConfig) else Path(cfg_or_dir)


def synthesizable(entry: WeightsEntry) -> bool:
    return all(f.nets and f.layout in _BUILDERS for f in entry.files)


def _check_synthesizable(entry: WeightsEntry) -> None:
    if not synthesizable(entry):
        names = ", ".join(e.name for e in ENTRIES if synthesizable(e))
        raise InvalidInput(
            f"synthetic weights for {entry.name!r} are not available: LIHQ does not build its network "
            f"(synthesizable: {names})"
        )


def _save(obj: Any, path: Path, legacy: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if legacy:
        torch.save(obj, tmp, _use_new_zipfile_serialization=False)
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _write_sidecar(path: Path, entry: WeightsEntry, wfile: WeightFile, seed: int, rule: str) -> None:
    info = {
        "synthetic": True,
        "entry": entry.name,
        "file": wfile.filename,
        "layout": wfile.layout,
        "seed": seed,
        "rule": rule,
        "nets": list(wfile.nets),
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "written_by": "lihq weights synthesize",
    }
    sidecar = sidecar_path(path)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, sidecar)


def synthesize_file(
    entry: WeightsEntry,
    wfile: WeightFile,
    seed: int,
    dest: Path,
    fill: fillrule.FillFn = fillrule.fill_tensor,
    rule: str = fillrule.RULE,
) -> Path:
    """Write one synthetic file at `dest` (+ its sidecar); returns `dest`."""
    parts = fill_parts(wfile, seed, fill)
    obj, legacy = _BUILDERS[wfile.layout](parts, seed)
    try:
        _save(obj, dest, legacy)
        _write_sidecar(dest, entry, wfile, seed, rule)
    except OSError as exc:
        raise FailedPrecondition(f"cannot write synthetic weights to {dest}: {exc}") from exc
    return dest


def synthesize(
    name: str,
    seed: int,
    cfg_or_dir: WeightsConfig | Path | str,
    *,
    fill: fillrule.FillFn | None = None,
    rule: str | None = None,
) -> list[Path]:
    """Write every file of entry `name`, filled from `seed`, at its registry dest under the dir.

    `fill` replaces LIHQ's rule (lihq verify passes the vector set's own; `rule` then names it in the
    sidecar and the weights id). Returns the written paths. InvalidInput for an unknown name or an
    entry whose network LIHQ does not build.
    """
    entry = get_entry(name)
    _check_synthesizable(entry)
    root = _weights_dir(cfg_or_dir)
    use_fill = fill if fill is not None else fillrule.fill_tensor
    use_rule = rule if rule is not None else (fillrule.RULE if fill is None else "custom")
    return [
        synthesize_file(entry, f, int(seed), local_path(f, root), use_fill, use_rule) for f in entry.files
    ]


def is_synthetic(path: str | Path) -> dict[str, Any] | None:
    """The sidecar record when `path` is a synthetic file written by `synthesize`, else None.

    A sidecar whose recorded size differs from the file's is stale (the file was replaced) and is
    ignored.
    """
    path = Path(path)
    sidecar = sidecar_path(path)
    if not sidecar.is_file() or not path.is_file():
        return None
    try:
        info = json.loads(sidecar.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(info, dict) or info.get("size") != path.stat().st_size:
        return None
    return info


def weights_id(path: str | Path) -> str:
    """The model id used in content-addressed keys.

    `synthetic:<seed>` for LIHQ's fill rule, `synthetic:<seed>@<rule>` for another fill (a vector
    set's), `sha256:<hex>` of the file otherwise.
    """
    info = is_synthetic(path)
    if info is not None:
        rule = info.get("rule", "fill_weights")  # sidecars before rule ids: the shared reference fill
        return f"synthetic:{info['seed']}" if rule == fillrule.RULE else f"synthetic:{info['seed']}@{rule}"
    return f"sha256:{file_sha256(Path(path))}"
