"""Synthetic checkpoints in the official file layouts, for tests and smoke renders (ARCHITECTURE §6).

Values come from `shared/reference/fill_weights.py` (imported from `shared_reference_dir()`), filled
over each manifest key WITHOUT a leading `module.`, then stored under the official key (with
`module.` where the official file has it), as the reference fingerprints define. The file is written
in the official container layout, so it travels through the real loaders. Beside it goes
`<file>.synthetic.json` (seed, manifests, fill_weights md5, file size and sha256): anything that loads
a weights file calls `is_synthetic(path)` and says loudly when the weights are synthetic.

Placeholders (documented, not official values): FOMM's `discriminator` is an empty dict and its
optimizer states are empty Adam states; Wav2Lip's `optimizer` is an empty Adam state; QVI's metadata
(`Detail`, `epoch`, `timestamp`, losses) are fixed small values.
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.util
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from lihq.config import WeightsConfig, shared_reference_dir
from lihq.errors import FailedPrecondition, InvalidInput
from lihq.weights.loaders import load_manifest
from lihq.weights.registry import WeightFile, WeightsEntry, get_entry, local_path

StateDict = dict[str, torch.Tensor]
SIDECAR_SUFFIX = ".synthetic.json"
_MODULE = "module."
_MODNET_ALIAS = ("module.lr_branch.backbone.", "module.backbone.")


def load_fill_weights(ref_dir: Path | None = None) -> ModuleType:
    """Import `fill_weights.py` from the shared reference dir (FailedPrecondition if absent)."""
    base = ref_dir if ref_dir is not None else shared_reference_dir()
    path = base / "fill_weights.py"
    if not path.is_file():
        raise FailedPrecondition(
            f"cannot synthesize weights: {path} not found (the shared reference dir is missing; set LIHQ_REFERENCE_DIR)"
        )
    spec = importlib.util.spec_from_file_location("lihq_fill_weights", path)
    if spec is None or spec.loader is None:
        raise FailedPrecondition(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def state_dict_fingerprint(sd: Mapping[str, torch.Tensor]) -> str:
    """sha256 over sorted keys: utf-8 key bytes then the tensor's C-order bytes (reference definition)."""
    h = hashlib.sha256()
    for key in sorted(sd):
        h.update(key.encode("utf-8"))
        h.update(sd[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def fill_official(manifest: Mapping[str, Any], seed: int, fill: ModuleType) -> StateDict:
    """Filled tensors under the manifest's keys; each value is filled over the key sans `module.`."""
    out: StateDict = {}
    for key, shape in manifest.items():
        bare = key[len(_MODULE) :] if key.startswith(_MODULE) else key
        out[key] = fill.fill_tensor(bare, shape, seed)
    return out


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
    sd = {_MODULE + k: v for k, v in parts[0].items()}
    obj = {
        "state_dict": sd,
        "optimizer": _empty_adam(1e-4, (0.9, 0.999), len(sd)),
        "global_step": 0,
        "global_epoch": 0,
    }
    return obj, False


def _plain(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return parts[0], False


def _plain_module(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return {_MODULE + k: v for k, v in parts[0].items()}, False


def _params_ema(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    return {"params_ema": parts[0]}, False


def _modnet(parts: list[StateDict], seed: int) -> tuple[Any, bool]:
    sd = dict(parts[0])
    alias, source = _MODNET_ALIAS
    for key in sd:
        if key.startswith(alias):
            sd[key] = sd[source + key[len(alias) :]]  # one tensor under two names, as in the official file
    return sd, False


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
    return {**meta, "model_state_dict": parts[0]}, False


_BUILDERS: dict[str, Callable[[list[StateDict], int], tuple[Any, bool]]] = {
    "fomm_cpk_legacy_pickle": _fomm,
    "wav2lip_state_dict_module": _wav2lip,
    "torch_state_dict": _plain,
    "torch_state_dict_module": _plain_module,
    "gfpgan_params_ema": _params_ema,
    "modnet_dataparallel": _modnet,
    "qvi_module": _qvi,
}


def _weights_dir(cfg_or_dir: WeightsConfig | Path | str) -> Path:
    return cfg_or_dir.dir if isinstance(cfg_or_dir, WeightsConfig) else Path(cfg_or_dir)


def _check_synthesizable(entry: WeightsEntry) -> None:
    for f in entry.files:
        if f.manifests is None or f.layout not in _BUILDERS:
            raise InvalidInput(
                f"synthetic weights for {entry.name!r} are not available yet: {f.filename} has no manifest in "
                "shared/reference; synthesis for that model comes with its service issue"
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


def _write_sidecar(path: Path, entry: WeightsEntry, wfile: WeightFile, seed: int, ref_dir: Path) -> None:
    info = {
        "synthetic": True,
        "entry": entry.name,
        "file": wfile.filename,
        "layout": wfile.layout,
        "seed": seed,
        "manifests": list(wfile.manifests or ()),
        "fill_weights_md5": _md5(ref_dir / "fill_weights.py"),
        "size": path.stat().st_size,
        "sha256": file_sha256(path),
        "written_by": "lihq weights synthesize",
    }
    sidecar = sidecar_path(path)
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, sidecar)


def synthesize_file(entry: WeightsEntry, wfile: WeightFile, seed: int, dest: Path, ref_dir: Path) -> Path:
    """Write one synthetic file at `dest` (+ its sidecar); returns `dest`."""
    fill = load_fill_weights(ref_dir)
    parts = [fill_official(load_manifest(m, ref_dir), seed, fill) for m in wfile.manifests or ()]
    obj, legacy = _BUILDERS[wfile.layout](parts, seed)
    try:
        _save(obj, dest, legacy)
        _write_sidecar(dest, entry, wfile, seed, ref_dir)
    except OSError as exc:
        raise FailedPrecondition(f"cannot write synthetic weights to {dest}: {exc}") from exc
    return dest


def synthesize(
    name: str, seed: int, cfg_or_dir: WeightsConfig | Path | str, *, ref_dir: Path | None = None
) -> list[Path]:
    """Write every file of entry `name`, filled from `seed`, at its registry dest under the dir.

    Returns the written paths. InvalidInput for an unknown name or an entry without manifests;
    FailedPrecondition when the shared reference dir is missing.
    """
    entry = get_entry(name)
    _check_synthesizable(entry)
    ref = ref_dir if ref_dir is not None else shared_reference_dir()
    root = _weights_dir(cfg_or_dir)
    return [synthesize_file(entry, f, int(seed), local_path(f, root), ref) for f in entry.files]


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
    """The model id used in content-addressed keys: `synthetic:<seed>` or `sha256:<hex>` of the file."""
    info = is_synthetic(path)
    if info is not None:
        return f"synthetic:{info['seed']}"
    return f"sha256:{file_sha256(Path(path))}"
