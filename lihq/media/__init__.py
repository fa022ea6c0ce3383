"""Media IO on ffmpeg (ffmpeg-python), OpenCV and Pillow: probe, decode audio/video/images, encode.

Arrays are numpy: video frames (N, H, W, 3) uint8 **RGB**; images (H, W, 3) RGB or (H, W, 4) RGBA;
audio float32 mono in [-1, 1]. Bad input raises `lihq.errors.InvalidInput` with a message a user
can act on.
"""

from lihq.media.audio import decode_audio, write_wav
from lihq.media.encode import encode_video, mux_audio
from lihq.media.image import composite, load_image, load_image_rgba
from lihq.media.probe import MediaInfo, probe
from lihq.media.video import decode_video, frame_count, iter_video

__all__ = [
    "MediaInfo",
    "composite",
    "decode_audio",
    "decode_video",
    "encode_video",
    "frame_count",
    "iter_video",
    "load_image",
    "load_image_rgba",
    "mux_audio",
    "probe",
    "write_wav",
]
