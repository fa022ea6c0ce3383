"""`lihq verify wav2lip --vectors DIR --seed N`: our Wav2Lip path against upstream's vectors.

Synthesizes `wav2lip.pth` in the official layout from the seed, loads it through the real loader
(`Wav2LipRunner` -> `load_wav2lip`), and compares every output the vectors README lists, driven by
the set's own files (any counts of frames, chunks, cases):

audio.wav -> wav_f32 (exact) -> mel_f64 (atol 1e-6, our float64 pipeline) -> chunk_starts (exact);
frames + boxes -> faces96 (exact) -> face_windows (exact); mel_f64 -> mel_chunks (exact);
net(mel_chunks, face_windows) -> output (atol 3e-5); output -> pred_bgr_u8 and the whole
`Wav2LipRunner.lip_sync` path -> pasted_frames_bgr_u8 (|diff| <= 1 on <= 0.1% of pixels);
preprocess_cases.json mel_index_cases and smoothing_cases (exact).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lihq.verify import VerifyRow, synthesize_for
from services.wav2lip import audio
from services.wav2lip.faces import crop_faces, face_windows, prediction_u8, smooth_boxes
from services.wav2lip.objects import FaceTrack, MelObject
from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig

TOL = {"mel_f64": 1e-6, "output": 3e-5, "u8_diff": 1.0, "u8_fraction": 1e-3}


def _max_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _exact(case: str, output: str, ours: np.ndarray, ref: np.ndarray) -> VerifyRow:
    return VerifyRow(case, output, _max_err(ours, ref), 0.0)


def _u8_rows(case: str, output: str, ours: np.ndarray, ref: np.ndarray) -> list[VerifyRow]:
    """uint8 images: max |diff| <= 1 and the share of differing values <= 0.1%."""
    if ours.shape != ref.shape:
        return [VerifyRow(case, output, float("inf"), TOL["u8_diff"])]
    off = np.abs(ours.astype(np.int16) - ref.astype(np.int16))
    return [
        VerifyRow(case, f"{output} max |diff|", float(off.max(initial=0)), TOL["u8_diff"]),
        VerifyRow(case, f"{output} share off", float(np.mean(off > 0)), TOL["u8_fraction"], "frac"),
    ]


def _audio_rows(vectors: Path) -> tuple[list[VerifyRow], np.ndarray]:
    ref = np.load(vectors / "audio.npz")
    wav = audio.read_wav(vectors / "audio.wav")
    mel = audio.melspectrogram(wav)
    starts = audio.mel_chunk_starts(mel.shape[1], float(ref["fps"]))
    rows = [
        _exact("audio", "wav_f32", wav, ref["wav_f32"]),
        VerifyRow("audio", "mel_f64", _max_err(mel, ref["mel_f64"]), TOL["mel_f64"]),
        _exact("audio", f"chunk_starts @ {float(ref['fps']):g} fps", starts, ref["chunk_starts"]),
    ]
    return rows, mel


def _runner(path: Path) -> Wav2LipRunner:
    cfg = Wav2LipRunnerConfig(device="auto", wav2lip_path=str(path), batch_size=16)
    return Wav2LipRunner(cfg)


def _net_rows(vectors: Path, runner: Wav2LipRunner, mel: np.ndarray) -> tuple[list[VerifyRow], np.ndarray]:
    faces_ref, net_ref = np.load(vectors / "faces.npz"), np.load(vectors / "net.npz")
    au = np.load(vectors / "audio.npz")
    frames_rgb = faces_ref["frames_bgr_u8"][..., ::-1].copy()
    faces = crop_faces(frames_rgb, faces_ref["boxes_y1y2x1x2"])
    windows = face_windows(faces).numpy()
    chunk_starts = au["chunk_starts"][net_ref["chunk_ids"]]
    chunks_ref_mel = audio.mel_chunks(au["mel_f64"], chunk_starts)
    chunks_our_mel = audio.mel_chunks(
        mel, audio.mel_chunk_starts(mel.shape[1], float(au["fps"]))[net_ref["chunk_ids"]]
    )
    net = runner._net("wav2lip")  # noqa: SLF001 - the runner's own loaded net, as production uses it
    with torch.inference_mode():
        out = net(
            torch.from_numpy(net_ref["mel_chunks"]).to(runner.device),
            torch.from_numpy(net_ref["face_windows"]).to(runner.device),
        )
    rows = [
        _exact("faces", "faces96_bgr_u8", faces[..., ::-1], faces_ref["faces96_bgr_u8"]),
        _exact("net", "face_windows", windows, net_ref["face_windows"]),
        _exact("net", "mel_chunks", chunks_ref_mel, net_ref["mel_chunks"]),
        VerifyRow(
            "net",
            "mel_chunks (from our mel)",
            _max_err(chunks_our_mel, net_ref["mel_chunks"]),
            TOL["mel_f64"],
        ),
        VerifyRow("net", "output", _max_err(out.float().cpu().numpy(), net_ref["output"]), TOL["output"]),
    ]
    return rows, out


def _paste_rows(vectors: Path, runner: Wav2LipRunner, out: torch.Tensor) -> list[VerifyRow]:
    faces_ref, net_ref, paste_ref = (np.load(vectors / f) for f in ("faces.npz", "net.npz", "paste.npz"))
    au = np.load(vectors / "audio.npz")
    frames_rgb = faces_ref["frames_bgr_u8"][..., ::-1].copy()
    n, h, w = frames_rgb.shape[:3]
    pred = prediction_u8(out)[..., ::-1]
    # The production path: frame k of this "clip" uses mel chunk chunk_ids[k] and box k.
    mel = MelObject(
        mel=au["mel_f64"].astype(np.float32),
        starts=au["chunk_starts"][net_ref["chunk_ids"]],
        fps=float(au["fps"]),
    )
    boxes = faces_ref["boxes_y1y2x1x2"].astype(np.int64)
    track = FaceTrack(
        boxes=boxes, detected=np.ones(n, bool), height=h, width=w, smoothed=False, source="given"
    )
    pasted = runner.lip_sync(frames_rgb, 0, mel.fps, mel, track, "wav2lip")[..., ::-1]
    return [
        *_u8_rows("paste", "pred_bgr_u8", pred, paste_ref["pred_bgr_u8"]),
        *_u8_rows("paste", "pasted_frames_bgr_u8 (runner)", pasted, paste_ref["pasted_frames_bgr_u8"]),
    ]


def _case_rows(vectors: Path) -> list[VerifyRow]:
    cases = json.loads((vectors / "preprocess_cases.json").read_text())
    rows = []
    for c in cases["mel_index_cases"]:
        ours = audio.mel_chunk_starts(int(c["mel_frames"]), float(c["fps"]))
        rows.append(_exact("mel_index", f"fps {c['fps']} mel {c['mel_frames']}", ours, np.array(c["starts"])))
    for i, c in enumerate(cases["smoothing_cases"]):
        ours = smooth_boxes(np.array(c["raw_x1y1x2y2"], dtype=np.int64), int(c["T"]))
        rows.append(
            _exact("smoothing", f"case {i} ({len(ours)} boxes, T={c['T']})", ours, np.array(c["smoothed"]))
        )
    return rows


def run(vectors: Path, seed: int, workdir: Path) -> list[VerifyRow]:
    """Every README output of the set in `vectors`, for synthetic weights of `seed`."""
    path = synthesize_for("wav2lip", seed, workdir, vectors)[0]
    runner = _runner(path)
    rows, mel = _audio_rows(vectors)
    net_rows, out = _net_rows(vectors, runner, mel)
    return [*rows, *net_rows, *_paste_rows(vectors, runner, out), *_case_rows(vectors)]
