"""FOMM (first-order-model, vox-256) networks: pure torch modules, attribute names = official keys.

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91 (MIT).
"""

from services.fomm.nets.config import (
    VOX_256,
    DenseMotionConfig,
    FommConfig,
    GeneratorConfig,
    KPDetectorConfig,
    tiny,
)
from services.fomm.nets.dense_motion import DenseMotion, DenseMotionNetwork
from services.fomm.nets.generator import GeneratorOutput, OcclusionAwareGenerator, SourceEncoding
from services.fomm.nets.keypoint_detector import Keypoints, KPDetector

__all__ = [
    "VOX_256",
    "DenseMotion",
    "DenseMotionConfig",
    "DenseMotionNetwork",
    "FommConfig",
    "GeneratorConfig",
    "GeneratorOutput",
    "KPDetector",
    "KPDetectorConfig",
    "Keypoints",
    "OcclusionAwareGenerator",
    "SourceEncoding",
    "tiny",
]
