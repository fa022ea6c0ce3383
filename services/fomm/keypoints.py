"""FOMM inference semantics around the nets (upstream `demo.py` / `animate.normalize_kp`).

Upstream: AliaksandrSiarohin/first-order-model@c0274845cb2dd8f0f2fe6da580d97b60fef90c91 (MIT).

- Per-render globals (`MotionGlobals`): the keypoints of the source and of the *initial* driving
  frame (upstream's `kp_driving_initial`: frame 0, or the best-aligned frame), and the convex-hull
  areas giving the adapt-movement scale. Computed once per render (`FommRunner.prepare`) and stored
  as a small .npz, so any segment can be animated alone with the same result as inside the clip.
- `normalize`: relative mode moves the source keypoints by the driving keypoints' displacement
  from the initial frame (times the scale) and composes the Jacobians, J_d · J_d0⁻¹ · J_s;
  absolute mode uses the driving keypoints as detected.
- Preprocessing: `skimage.transform.resize` to the net's size, as demo.py; a frame that already has
  that size is exactly u8 / 255 in float32 (checked against skimage in the tests).
- `find_best_frame`: upstream's landmark-based choice of the initial frame, with the landmark
  detector pluggable (upstream uses `face_alignment`, which needs weights we do not ship).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
from scipy.spatial import ConvexHull, QhullError
from skimage.transform import resize

from lihq.errors import InvalidInput
from services.fomm.nets.keypoint_detector import Keypoints

GLOBALS_SCHEMA = 1
# (H, W, 3) uint8 RGB -> (L, 2) landmarks in pixels, or None when no face is found.
LandmarkFn = Callable[[np.ndarray], "np.ndarray | None"]


class Mode(str, Enum):
    RELATIVE = "relative"  # pass 1: relative keypoints + Jacobians
    ABSOLUTE = "absolute"  # pass 2


def frame_digest(frame: np.ndarray) -> str:
    """sha256 of a uint8 frame's shape and pixels: ties globals to the source they were made from."""
    h = hashlib.sha256(repr(tuple(frame.shape)).encode())
    h.update(np.ascontiguousarray(frame, dtype=np.uint8).tobytes())
    return h.hexdigest()


def hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (K, 2) points (scipy's `volume` in 2-D); NaN when degenerate."""
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):
        return float("nan")


@dataclass(frozen=True)
class MotionGlobals:
    """Per-render FOMM globals. Arrays are float32 with batch 1: values (1, K, 2) (x, y) in [-1, 1],
    Jacobians (1, K, 2, 2) or None; hull areas and the scale are float64 (NaN: degenerate hull)."""

    source_value: np.ndarray
    source_jacobian: np.ndarray | None
    initial_value: np.ndarray
    initial_jacobian: np.ndarray | None
    source_hull_area: float
    initial_hull_area: float
    initial_frame: int  # timeline index of the initial driving frame
    model_id: str
    source_digest: str

    @property
    def adapt_movement_scale(self) -> float:
        """sqrt(area(source hull)) / sqrt(area(initial hull)), upstream's definition."""
        return float(np.sqrt(self.source_hull_area) / np.sqrt(self.initial_hull_area))

    def keypoints(self, device: torch.device) -> tuple[Keypoints, Keypoints]:
        """(source, initial) keypoints as float32 tensors on `device`."""

        def kp(value: np.ndarray, jac: np.ndarray | None) -> Keypoints:
            j = None if jac is None else torch.from_numpy(jac).to(device)
            return Keypoints(torch.from_numpy(value).to(device), j)

        return kp(self.source_value, self.source_jacobian), kp(self.initial_value, self.initial_jacobian)

    def to_bytes(self) -> bytes:
        """A deterministic .npz (fixed zip timestamps): same globals -> same bytes."""
        arrays = {
            "schema": np.int64(GLOBALS_SCHEMA),
            "source_value": self.source_value,
            "initial_value": self.initial_value,
            "source_hull_area": np.float64(self.source_hull_area),
            "initial_hull_area": np.float64(self.initial_hull_area),
            "adapt_movement_scale": np.float64(self.adapt_movement_scale),
            "initial_frame": np.int64(self.initial_frame),
            "model_id": np.str_(self.model_id),
            "source_digest": np.str_(self.source_digest),
        }
        if self.source_jacobian is not None and self.initial_jacobian is not None:
            arrays["source_jacobian"] = self.source_jacobian
            arrays["initial_jacobian"] = self.initial_jacobian
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
            for name, arr in arrays.items():
                with zf.open(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), "w") as fh:
                    np.lib.format.write_array(fh, np.asanyarray(arr), allow_pickle=False)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> MotionGlobals:
        """Parse `to_bytes` output; InvalidInput for anything else."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                d = {k: z[k] for k in z.files}
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise InvalidInput(f"globals: not a FOMM globals .npz ({exc})") from exc
        if int(d.get("schema", -1)) != GLOBALS_SCHEMA:
            raise InvalidInput(
                f"globals: schema {d.get('schema')} is not {GLOBALS_SCHEMA}; run PrepareMotion again"
            )
        try:
            return cls(
                source_value=d["source_value"].astype(np.float32),
                source_jacobian=d["source_jacobian"].astype(np.float32) if "source_jacobian" in d else None,
                initial_value=d["initial_value"].astype(np.float32),
                initial_jacobian=d["initial_jacobian"].astype(np.float32)
                if "initial_jacobian" in d
                else None,
                source_hull_area=float(d["source_hull_area"]),
                initial_hull_area=float(d["initial_hull_area"]),
                initial_frame=int(d["initial_frame"]),
                model_id=str(d["model_id"]),
                source_digest=str(d["source_digest"]),
            )
        except KeyError as exc:
            raise InvalidInput(f"globals: missing array {exc}; run PrepareMotion again") from exc


def make_globals(
    kp_source: Keypoints, kp_initial: Keypoints, initial_frame: int, model_id: str, source_digest: str
) -> MotionGlobals:
    """Globals from the detector's outputs for the source and the initial driving frame (batch 1)."""

    def arr(t: torch.Tensor | None) -> np.ndarray | None:
        return None if t is None else t.detach().float().cpu().numpy()

    sv, iv = arr(kp_source.value), arr(kp_initial.value)
    assert sv is not None and iv is not None
    return MotionGlobals(
        source_value=sv,
        source_jacobian=arr(kp_source.jacobian),
        initial_value=iv,
        initial_jacobian=arr(kp_initial.jacobian),
        source_hull_area=hull_area(sv[0]),
        initial_hull_area=hull_area(iv[0]),
        initial_frame=int(initial_frame),
        model_id=model_id,
        source_digest=source_digest,
    )


def movement_scale(g: MotionGlobals, adapt: bool) -> float:
    if not adapt:
        return 1.0
    scale = g.adapt_movement_scale
    if not np.isfinite(scale) or scale <= 0:
        raise InvalidInput(
            "adapt_movement_scale: the keypoints of the source or of the initial driving frame are "
            "degenerate (collinear), so the convex-hull scale is undefined; disable adapt_movement_scale"
        )
    return scale


def normalize(
    kp_driving: Keypoints, kp_source: Keypoints, kp_initial: Keypoints, mode: Mode, scale: float
) -> Keypoints:
    """The keypoints that drive the generator (float32, batch of kp_driving; no autocast inside).

    relative: value = (kd - kd0) * scale + ks; jacobian = (J_d · J_d0⁻¹) · J_s.
    absolute: kp_driving unchanged.
    """
    if mode is Mode.ABSOLUTE:
        return kp_driving
    with torch.autocast(device_type=kp_driving.value.device.type, enabled=False):
        diff = kp_driving.value.float() - kp_initial.value.float()
        value = diff * scale + kp_source.value.float()
        jac = kp_driving.jacobian
        if jac is not None and kp_initial.jacobian is not None and kp_source.jacobian is not None:
            rel = torch.matmul(jac.float(), torch.inverse(kp_initial.jacobian.float()))
            jac = torch.matmul(rel, kp_source.jacobian.float())
    return Keypoints(value, jac)


def resize_like_demo(image: np.ndarray, size: int) -> np.ndarray:
    """demo.py's preprocessing: `skimage.transform.resize(image, (size, size))[..., :3]`.

    (H, W, C) uint8 -> (size, size, 3) float64 in [0, 1].
    """
    return resize(image, (size, size))[..., :3]


def to_model_input(frames: np.ndarray, size: int) -> torch.Tensor:
    """(N, H, W, 3) uint8 RGB -> (N, 3, size, size) float32 in [0, 1] (CPU tensor).

    Frames already at size x size are divided by 255 in float32 (bit-identical to demo.py's resize
    then float32 cast); others go through `resize_like_demo`.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InvalidInput(f"frames must be (N, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    if frames.shape[1:3] == (size, size):
        x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 255
    else:
        x = torch.from_numpy(np.stack([resize_like_demo(f, size) for f in frames]).astype(np.float32))
    return x.permute(0, 3, 1, 2).contiguous()


def to_uint8(prediction: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float in [0, 1] -> (N, H, W, 3) uint8, rounding as skimage's img_as_ubyte
    (demo.py's output): rint(x * 255) in float32, clipped."""
    x = torch.round(prediction.float() * 255).clamp_(0, 255)
    return x.to(torch.uint8).permute(0, 2, 3, 1)


def _normalized_landmarks(points: np.ndarray) -> np.ndarray:
    """Centre the landmarks and divide by sqrt of their hull area (upstream's find_best_frame)."""
    p = np.asarray(points, dtype=np.float64)[:, :2]
    p = p - p.mean(axis=0, keepdims=True)
    return p / np.sqrt(ConvexHull(p).volume)


def find_best_frame(source: np.ndarray, frames: Sequence[np.ndarray], landmarks: LandmarkFn) -> int:
    """Index of the driving frame whose normalised face landmarks are closest to the source's.

    `landmarks` maps an (H, W, 3) uint8 RGB image to (L, 2) pixel landmarks or None (no face); frames
    without a face are skipped. InvalidInput when the source or every frame has no face.
    """
    src = landmarks(source)
    if src is None:
        raise InvalidInput("find_best_frame: no face landmarks found in the source image")
    ref = _normalized_landmarks(src)
    best, best_norm = -1, float("inf")
    for i, frame in enumerate(frames):
        pts = landmarks(frame)
        if pts is None:
            continue
        norm = float((np.abs(ref - _normalized_landmarks(pts)) ** 2).sum())
        if norm < best_norm:
            best, best_norm = i, norm
    if best < 0:
        raise InvalidInput("find_best_frame: no face landmarks found in any driving frame")
    return best
