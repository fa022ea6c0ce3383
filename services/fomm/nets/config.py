"""Architecture settings of the FOMM networks (values of upstream's `config/vox-256.yaml`).

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91 (MIT),
paper: Siarohin et al., "First Order Motion Model for Image Animation", NeurIPS 2019.

These are architecture facts, fixed by the official checkpoints; runtime settings (device, batch
size, precision) live in `services.fomm.runner.FommRunnerConfig`. `tiny()` configs keep the same
structure with few channels so the nets can be tested on CPU in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class KPDetectorConfig:
    """`model_params.kp_detector_params` + `common_params` of vox-256."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    temperature: float = 0.1
    scale_factor: float = 0.25
    estimate_jacobian: bool = True
    single_jacobian_map: bool = False
    pad: int = 0  # padding of the 7x7 keypoint / jacobian heads (vox-256: none, 64² -> 58² heatmaps)


@dataclass(frozen=True)
class DenseMotionConfig:
    """`generator_params.dense_motion_params` of vox-256 (+ num_kp / channels from common_params)."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01
    estimate_occlusion_map: bool = True


@dataclass(frozen=True)
class GeneratorConfig:
    """`model_params.generator_params` of vox-256."""

    num_kp: int = 10
    num_channels: int = 3
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    num_bottleneck_blocks: int = 6
    estimate_occlusion_map: bool = True
    estimate_jacobian: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)


@dataclass(frozen=True)
class FommConfig:
    """Both networks of one checkpoint plus the frame size they were trained at."""

    kp_detector: KPDetectorConfig = field(default_factory=KPDetectorConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    frame_size: int = 256


VOX_256 = FommConfig()


def tiny(num_kp: int = 4) -> FommConfig:
    """A structurally identical, very small config for unit tests (not loadable from a checkpoint)."""
    dm = DenseMotionConfig(num_kp=num_kp, block_expansion=8, max_features=32, num_blocks=3)
    return FommConfig(
        kp_detector=KPDetectorConfig(num_kp=num_kp, block_expansion=8, max_features=32, num_blocks=3),
        generator=GeneratorConfig(num_kp=num_kp, block_expansion=8, max_features=32, dense_motion=dm),
        frame_size=64,
    )
