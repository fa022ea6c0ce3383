"""CPU seconds per output frame of the face-video (dubbing) path at 1080p, per stage (issue #15).

Runs each stage's real servicer code in this process on a file store (no Ray, no gRPC): FaceVideoFrames
(ffmpeg decode of the segment's source range, ping-pong), TrackFaces (S3FD as with real weights; the
Haar detector of synthetic-weight renders shown beside it), PrepareAudio (mel at the video's rate),
LipSync (Wav2Lip on the full 1080p frames), FaceVideoCrop (512² crops), Restore (GFPGAN v1.3 on the
crops, upscale 1), FaceVideoPaste (feathered paste into the original frames) and Encode (H.264 + AAC).
Weights are synthetic (seed 1): the networks cost the same as with the real ones. CPU seconds = this
process's CPU time (all threads) + its finished children's (ffmpeg), per output frame; one run.

    python bench/video_bench.py [--frames 8] [--width 1920 --height 1080 --fps 30] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cpu_s() -> float:
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=8, help="frames of the source clip (the speech is longer)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from lihq import media
    from lihq.framepack import unpack_frames
    from lihq.storage.fs import FileStore
    from lihq.v1 import common_pb2, lipsync_pb2, media_pb2, restoration_pb2
    from lihq.weights import synthesize
    from orchestrator.plan import video_segment_frames
    from services.gfpgan.runner import GfpganConfig, GfpganRunner
    from services.gfpgan.servicer import FaceRestorationServicer
    from services.media.servicer import MediaServicer
    from services.wav2lip.runner import Wav2LipRunner, Wav2LipRunnerConfig
    from services.wav2lip.servicer import LipSyncServicer
    from tests.mediafiles import espeak_wav
    from tests.videofaces import astronaut_frames, encode

    tmp = Path(tempfile.mkdtemp(prefix="lihq-video-bench-"))
    wdir = tmp / "weights"
    for name in ("wav2lip_gan", "s3fd", "gfpgan-1.3", "facexlib"):
        synthesize(name, 1, wdir)
    store = FileStore(tmp / "store", "lihq")
    clip = encode(
        astronaut_frames(args.width, args.height, args.frames, cover=True), tmp / "face.mp4", fps=args.fps
    )
    speech = espeak_wav(tmp / "speech.wav", "Hi there.", wpm=260)
    n_out = media.frame_count(media.probe(speech).duration, args.fps)
    ref = lambda key: common_pb2.ObjectRef(key=key)  # noqa: E731
    video, wav = store.put_file("inputs/face.mp4", clip).key, store.put_file("inputs/speech.wav", speech).key

    med = MediaServicer(store, workdir=tmp)
    lips = LipSyncServicer(store, Wav2LipRunner(Wav2LipRunnerConfig(device="cpu", weights_dir=wdir)))
    gfp = FaceRestorationServicer(store, GfpganRunner(GfpganConfig(weights_dir=wdir, device="cpu")))
    seg = video_segment_frames(args.width, args.height, 50)
    rows: dict[str, list[float]] = {}

    def timed(name: str, fn):
        c, w = cpu_s(), time.perf_counter()
        out = fn()
        rows.setdefault(name, [0.0, 0.0])
        rows[name][0] += cpu_s() - c
        rows[name][1] += time.perf_counter() - w
        return out

    a16 = timed(
        "audio 16k",
        lambda: med._extract_audio(media_pb2.ExtractAudioRequest(source=ref(wav), sample_rates=[16000])),
    )
    mel = timed(
        "mel",
        lambda: lips._prepare_audio(lipsync_pb2.PrepareAudioRequest(wav_16k=a16.tracks[0].wav, fps=args.fps)),
    )
    bounds = [(s, min(n_out, s + seg)) for s in range(0, n_out, seg)]
    packs = []
    for k, (s, e) in enumerate(bounds):
        r = timed(
            "frames (decode)",
            lambda s=s, e=e, k=k: med._face_video_frames(
                media_pb2.FaceVideoFramesRequest(
                    video=ref(video), segment=common_pb2.Segment(index=k, start=s, end=e)
                )
            ),
        )
        packs.append(r.pack)
    tr = timed(
        "track (Haar, synthetic mode)",
        lambda: lips._track_faces(
            lipsync_pb2.TrackFacesRequest(packs=packs, carry_last_box=True, detector="haar")
        ),
    )
    for pack in packs:  # S3FD as with real weights (random weights find nothing: its cost is the figure)
        frames = unpack_frames(store.get_bytes(pack.key)).frames
        timed("track (S3FD detection)", lambda frames=frames: lips.runner.detect(frames))
    out_packs = []
    for k, ((s, e), pack) in enumerate(zip(bounds, packs, strict=True)):
        sg = common_pb2.Segment(index=k, start=s, end=e)
        lp = timed(
            "wav2lip",
            lambda pack=pack, sg=sg: lips._lip_sync(
                lipsync_pb2.LipSyncRequest(frames=pack, segment=sg, mel=mel.mel, track=tr.track)
            ),
        )
        crop = timed(
            "crop",
            lambda lp=lp: med._face_video_crop(
                media_pb2.FaceVideoCropRequest(frames=lp.pack, track=tr.track), False
            ),
        )
        rest = timed(
            "gfpgan (512² crops)",
            lambda crop=crop, sg=sg: gfp._restore(
                restoration_pb2.RestoreRequest(
                    frames=crop.pack, segment=sg, version="1.3", upscale=1, only_center_face=True
                )
            ),
        )
        pasted = timed(
            "paste (feathered)",
            lambda pack=pack, rest=rest: med._face_video_crop(
                media_pb2.FaceVideoCropRequest(frames=pack, track=tr.track, restored=rest.pack), True
            ),
        )
        out_packs.append(pasted.pack)
    enc = timed(
        "encode (x264 medium)",
        lambda: med._encode(media_pb2.EncodeRequest(packs=out_packs, audio=ref(wav))),
    )
    assert (
        enc.info.width == args.width + args.width % 2
        and unpack_frames(store.get_bytes(out_packs[0].key)).count
    )
    total_cpu = sum(c for name, (c, _) in rows.items() if "Haar" not in name)  # real weights: S3FD
    load = os.getloadavg()
    result = {
        "machine": f"{os.cpu_count()} CPUs, torch CPU threads {__import__('torch').get_num_threads()}",
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "size": f"{args.width}x{args.height}@{args.fps:g}",
        "output_frames": n_out,
        "segment_frames": seg,
        "per_frame_cpu_s": {k: round(c / n_out, 3) for k, (c, _) in rows.items()},
        "per_frame_wall_s": {k: round(w / n_out, 3) for k, (_, w) in rows.items()},
        "total_cpu_s_per_frame": round(total_cpu / n_out, 2),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"face-video path, {result['size']}, {n_out} output frames ({args.frames}-frame source, ping-pong), "
        f"segments of {seg}; {result['machine']}; load {result['loadavg_1_5_15']}"
    )
    print(f"{'stage':32s} {'CPU s/frame':>12s} {'wall s/frame':>13s}")
    for k in rows:
        print(f"{k:32s} {result['per_frame_cpu_s'][k]:12.3f} {result['per_frame_wall_s'][k]:13.3f}")
    print(f"{'total (S3FD track)':32s} {result['total_cpu_s_per_frame']:12.2f}")


if __name__ == "__main__":
    main()
