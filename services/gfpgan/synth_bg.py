"""Synthetic RealESRGAN x2plus weights (no manifest for it exists in shared/reference yet).

The key/shape table is taken from the module itself (`basicsr.archs.rrdbnet_arch.RRDBNet` with the
x2plus arguments; the official `params_ema` dict has exactly the module's state-dict keys), and each
tensor is filled with `shared/reference/fill_weights.py`'s rules (`fill_tensor(key, shape, seed)`),
as for every other synthetic checkpoint. The file goes to the registry's destination in the
official layout `{'params_ema': state_dict}`, with the usual `.synthetic.json` sidecar (so
`weights_id` reports `synthetic:<seed>` and loaders say loudly that the weights are synthetic).
When a manifest lands in shared/reference, `lihq weights synthesize realesrgan-x2plus` replaces this.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from lihq.config import shared_reference_dir
from lihq.weights.registry import get_entry, local_path
from lihq.weights.synth import file_sha256, load_fill_weights, sidecar_path
from services.gfpgan.upsampler import ENTRY, RRDB_X2PLUS, build_rrdbnet


def rrdbnet_manifest() -> dict[str, list[int]]:
    """{key: shape} of the x2plus RRDBNet state dict (what the official params_ema holds)."""
    return {k: list(v.shape) for k, v in build_rrdbnet().state_dict().items()}


def synthesize_realesrgan(seed: int, weights_dir: Path | str, ref_dir: Path | None = None) -> Path:
    """Write synthetic `realesrgan/RealESRGAN_x2plus.pth` (+ sidecar) under `weights_dir`; return it."""
    ref = ref_dir if ref_dir is not None else shared_reference_dir()
    fill = load_fill_weights(ref)
    sd = {k: fill.fill_tensor(k, shape, int(seed)) for k, shape in rrdbnet_manifest().items()}
    entry = get_entry(ENTRY)
    wfile = entry.files[0]
    dest = local_path(wfile, Path(weights_dir))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save({"params_ema": sd}, tmp)
    os.replace(tmp, dest)
    info = {
        "synthetic": True,
        "entry": entry.name,
        "file": wfile.filename,
        "layout": wfile.layout,
        "seed": int(seed),
        "manifests": [],
        "derived_from": f"basicsr.archs.rrdbnet_arch.RRDBNet({RRDB_X2PLUS}).state_dict() shapes",
        "fill_weights_md5": hashlib.md5((ref / "fill_weights.py").read_bytes()).hexdigest(),
        "size": dest.stat().st_size,
        "sha256": file_sha256(dest),
        "written_by": "services.gfpgan.synth_bg",
    }
    sidecar_path(dest).write_text(json.dumps(info, indent=1) + "\n")
    return dest
