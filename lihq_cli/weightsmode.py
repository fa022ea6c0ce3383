"""Real or synthetic weights for the stage replicas, shared by `lihq render` and `lihq serve`.

`--weights real` (default): the files must be in LIHQ_WEIGHTS_DIR; a missing one is one clear line
naming the `lihq weights fetch` to run. `--weights synthetic`: deterministic seed-1 checkpoints in the
official layouts are made once under `$LIHQ_HOME/weights-synthetic/seed1` (by the project's own code,
`lihq.weights.synth`), LIHQ_WEIGHTS_DIR points there, and LIHQ_SYNTHETIC_WEIGHTS=1 tells the
orchestrator (which the replicas inherit the environment from, on a local Ray) to run in synthetic
mode: Wav2Lip is given the known face box of the aligned crop, because synthetic S3FD weights find no
face. Every render made that way says SYNTHETIC WEIGHTS.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console

from lihq.config import SYNTHETIC_WEIGHTS_ENV as SYNTHETIC_ENV
from lihq.config import WeightsConfig, lihq_home
from lihq.errors import WeightsMissing

# everything `lihq serve` may be asked to render (every knob of RenderSpec)
SERVE_RECIPE = (
    "fomm",
    "wav2lip",
    "wav2lip_gan",
    "s3fd",
    "gfpgan-1.3",
    "gfpgan-1.4",
    "facexlib",
    "realesrgan-x2plus",
    "qvi",
    "modnet",
)


def needed_weights(spec) -> list[str]:
    """The registry entries one render needs (by its knobs)."""
    lips = [] if getattr(spec, "keep_lips", False) else [spec.wav2lip_checkpoint, "s3fd"]
    motion = [] if getattr(spec, "face_video", False) else ["fomm"]  # a face video moves by itself
    names = [*motion, *lips, f"gfpgan-{spec.gfpgan_version}", "facexlib"]
    if spec.interpolate:
        names.append("qvi")
    if spec.background.kind != "none":
        names.append("modnet")
    if spec.background_upsampler:
        names.append("realesrgan-x2plus")
    return names


def prepare_weights(names: Iterable[str], mode: str, console: Console) -> Path:
    """Make the weights of `names` available and point this process's environment at them.

    Returns the weights directory. Sets LIHQ_WEIGHTS_DIR (and LIHQ_SYNTHETIC_WEIGHTS in synthetic mode)
    in os.environ, so replicas started afterwards by a local Ray inherit both.
    """
    from lihq.weights import registry
    from lihq.weights.fill import RULE
    from lihq.weights.synth import is_synthetic, synthesize

    def stale(p: Path) -> bool:  # absent, replaced, or made by an older fill rule
        info = is_synthetic(p)
        return info is None or info.get("rule") != RULE

    names = list(dict.fromkeys(names))
    if mode == "synthetic":
        wdir = lihq_home() / "weights-synthetic" / "seed1"
        for name in names:
            missing = [p for p in registry.local_paths(registry.get_entry(name), wdir) if stale(p)]
            if missing:
                console.print(f"synthesizing {name} weights (seed 1) …")
                synthesize(name, 1, wdir)
        os.environ["LIHQ_WEIGHTS_DIR"] = str(wdir)
        os.environ[SYNTHETIC_ENV] = "1"
        return wdir
    cfg = WeightsConfig.from_env()
    missing = [
        n for n in names if any(not p.exists() for p in registry.local_paths(registry.get_entry(n), cfg))
    ]
    if missing:
        raise WeightsMissing(
            f"missing weights: {', '.join(missing)} in {cfg.dir}; run `lihq weights fetch {' '.join(missing)}` "
            "or render a smoke test with --weights synthetic"
        )
    os.environ["LIHQ_WEIGHTS_DIR"] = str(cfg.dir)
    os.environ.pop(SYNTHETIC_ENV, None)
    return cfg.dir
