"""Compositing on frames the tests make: colour / image / video backgrounds, placement, errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lihq.errors import InvalidInput
from lihq.media import encode_video
from services.modnet.background import Background, BackgroundSpec
from services.modnet.compose import Placement, composite, fit_image, parse_color, place_speaker

RED, GREEN, BLUE = (220, 20, 20), (0, 255, 0), (0, 0, 255)


def speaker(n=2, h=6, w=8, color=RED, matte=255):
    frames = np.empty((n, h, w, 3), np.uint8)
    frames[:] = color
    return frames, np.full((n, h, w), matte, np.uint8)


def solid(h, w, color, n=1):
    bg = np.empty((n, h, w, 3), np.uint8)
    bg[:] = color
    return bg


def mask_of(img, color):
    return np.all(img == np.array(color, np.uint8), axis=-1)


def test_colour_background_follows_the_matte():
    frames, mattes = speaker(h=4, w=6)
    mattes[:, :, 3:] = 0  # left half speaker, right half background
    mattes[:, :, 2] = 128  # a half-transparent column
    out, alpha = composite(frames, mattes, solid(4, 6, GREEN))
    assert mask_of(out[:, :, :2], RED).all() and mask_of(out[:, :, 3:], GREEN).all()
    mix = np.rint(np.array(RED) * 128 / 255 + np.array(GREEN) * 127 / 255)
    assert np.abs(out[:, :, 2].astype(int) - mix).max() <= 1  # rounding of the blend
    np.testing.assert_array_equal(alpha, mattes)


def test_offset_places_and_clips():
    frames, mattes = speaker(h=6, w=8)
    out, alpha = composite(frames, mattes, solid(24, 32, BLUE), Placement(offset_x=5, offset_y=7))
    want = np.zeros((24, 32), bool)
    want[7:13, 5:13] = True
    assert (mask_of(out[0], RED) == want).all() and (mask_of(out[0], BLUE) == ~want).all()
    assert ((alpha[0] == 255) == want).all()
    out, _ = composite(frames, mattes, solid(24, 32, BLUE), Placement(offset_x=-3, offset_y=20))
    want = np.zeros((24, 32), bool)
    want[20:24, 0:5] = True  # 4 rows, 5 columns survive the clipping
    assert (mask_of(out[1], RED) == want).all()


def test_scale_resizes_the_speaker():
    frames, mattes = speaker(h=6, w=8)
    frames[:, :3] = BLUE  # top half blue: check the content scales, not only the box
    out, _ = composite(frames, mattes, solid(30, 30, GREEN), Placement(scale=2.0, offset_x=4, offset_y=2))
    box = np.zeros((30, 30), bool)
    box[2:14, 4:20] = True
    assert (~mask_of(out[0], GREEN) == box).all()
    assert mask_of(out[0, 2:7, 4:20], BLUE).all() and mask_of(out[0, 9:14, 4:20], RED).all()
    small, _ = composite(frames, mattes, solid(30, 30, GREEN), Placement(scale=0.5))
    assert (~mask_of(small[0], GREEN)).sum() == 3 * 4


def test_rotation_turns_counter_clockwise_about_the_centre():
    frames, mattes = speaker(n=1, h=9, w=9)
    frames[0, :3, :3] = BLUE  # marker in the top-left corner
    out, alpha = composite(
        frames, mattes, solid(20, 20, GREEN), Placement(offset_x=5, offset_y=4, rotation_deg=90)
    )
    assert (alpha[0, 4:13, 5:14] == 255).all() and alpha.sum() == 81 * 255  # a square stays in its box
    assert mask_of(out[0, 10:13, 5:8], BLUE).all()  # top-left -> bottom-left
    assert not mask_of(out[0, 4:7, 5:8], BLUE).any()
    _, tilted = place_speaker(frames, mattes, Placement(rotation_deg=45), (9, 9))
    assert tilted[0, 0, 0] < 64 and tilted[0, 4, 4] == 255  # corners leave the box, centre stays


def test_speaker_outside_the_canvas_is_an_error():
    frames, mattes = speaker()
    with pytest.raises(InvalidInput, match="entirely outside"):
        composite(frames, mattes, solid(10, 10, GREEN), Placement(offset_x=40))
    with pytest.raises(InvalidInput, match="entirely outside"):
        composite(frames, mattes, solid(10, 10, GREEN), Placement(offset_x=60, rotation_deg=30))


@pytest.mark.parametrize(
    "mattes, bg, needle",
    [
        (np.zeros((2, 6, 9), np.uint8), solid(8, 8, GREEN), "does not match"),
        (np.zeros((3, 6, 8), np.uint8), solid(8, 8, GREEN), "does not match"),
        (np.zeros((2, 6, 8), np.uint8), solid(8, 8, GREEN, n=3), "background frames"),
        (np.zeros((2, 6, 8), np.float32), solid(8, 8, GREEN), "uint8"),
    ],
)
def test_wrong_sizes_are_invalid(mattes, bg, needle):
    frames, _ = speaker()
    with pytest.raises(InvalidInput, match=needle):
        composite(frames, mattes, bg)


@pytest.mark.parametrize("kw", [{"scale": 0}, {"scale": float("nan")}, {"rotation_deg": float("inf")}])
def test_bad_placement(kw):
    with pytest.raises(InvalidInput):
        Placement(**kw)


def test_parse_color():
    assert parse_color("#0f0") == GREEN and parse_color("green") == (0, 128, 0)
    assert parse_color("rgb(1,2,3)") == (1, 2, 3)
    with pytest.raises(InvalidInput, match="CSS colour"):
        parse_color("greenish")


def test_image_background_stretch_and_cover(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :10] = BLUE  # left quarter blue
    img[:, 10:] = GREEN
    path = tmp_path / "bg.png"
    Image.fromarray(img).save(path)
    bg = Background(BackgroundSpec(kind="image", path=path))
    assert bg.native_size == (40, 20) and bg.canvas_size((8, 6)) == (40, 20)
    stretched = bg.frames(0, 3, 25.0, (20, 20))
    assert stretched.shape == (1, 20, 20, 3)
    assert mask_of(stretched[0, :, :4], BLUE).all() and mask_of(stretched[0, :, 6:], GREEN).all()
    cover = fit_image(img, (20, 20), "cover")  # keeps aspect: the centre 20x20 of the 40x20 image
    assert mask_of(cover, GREEN).all()
    frames, mattes = speaker(h=6, w=8)
    out, _ = composite(frames, mattes, stretched, Placement(offset_x=10, offset_y=10))
    assert mask_of(out[0, 10:16, 10:18], RED).all() and mask_of(out[0, :10, :4], BLUE).all()


def _level_video(path, levels, fps):
    frames = np.stack([np.full((16, 16, 3), v, np.uint8) for v in levels])
    return encode_video(frames, fps, path, crf=0, preset="ultrafast")


@pytest.fixture(scope="module")
def level_video(tmp_path_factory):
    """10 frames at 10 fps, frame k a flat grey of level 20*k."""
    return _level_video(tmp_path_factory.mktemp("bg") / "levels.mp4", [20 * k for k in range(10)], 10)


def _levels(frames):
    return np.rint(frames[:, 4, 4, 1] / 20).astype(int).tolist()


@pytest.mark.parametrize(
    "end, start, count, want",
    [
        ("loop", 8, 5, [8, 9, 0, 1, 2]),
        ("hold", 8, 5, [8, 9, 9, 9, 9]),
        ("loop", 0, 25, [k % 10 for k in range(25)]),
        ("error", 2, 3, [2, 3, 4]),
    ],
)
def test_video_background_is_looped_held_or_cut(level_video, end, start, count, want):
    bg = Background(BackgroundSpec(kind="video", path=level_video, video_end=end))
    frames = bg.frames(start, count, 10.0, (12, 8))
    assert frames.shape == (count, 8, 12, 3)
    assert _levels(frames) == want


def test_video_background_too_short_is_an_error(level_video):
    bg = Background(BackgroundSpec(kind="video", path=level_video, video_end="error"))
    with pytest.raises(InvalidInput, match="lasts 1.000 s from its offset, the speaker needs 1.200 s"):
        bg.frames(8, 4, 10.0, (12, 8))


def test_video_background_matches_the_speaker_fps_and_offset(level_video):
    slow = Background(BackgroundSpec(kind="video", path=level_video))
    assert _levels(slow.frames(0, 4, 5.0, (16, 16))) == [0, 2, 4, 6]  # 5 fps speaker: every 2nd frame
    late = Background(BackgroundSpec(kind="video", path=level_video, video_offset_s=0.5))
    assert _levels(late.frames(0, 7, 10.0, (16, 16))) == [5, 6, 7, 8, 9, 5, 6]  # loops from the offset
    with pytest.raises(InvalidInput, match="past its end"):
        Background(BackgroundSpec(kind="video", path=level_video, video_offset_s=3)).frames(
            0, 1, 10.0, (16, 16)
        )


@pytest.mark.parametrize("kind", ["image", "video"])
def test_unreadable_background_files(tmp_path, kind):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"this is not media" * 50)
    with pytest.raises(InvalidInput, match=f"background {kind} unreadable"):
        Background(BackgroundSpec(kind=kind, path=bad))


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"kind": "image"}, "needs a file"),
        ({"kind": "plaid"}, "kind"),
        ({"fit": "zoom"}, "fit"),
        ({"video_end": "bounce"}, "video_end"),
        ({"video_offset_s": 2.0}, "only applies to a video"),
    ],
)
def test_bad_background_specs(kw, needle):
    with pytest.raises(InvalidInput, match=needle):
        BackgroundSpec(**kw)


def test_canvas_size_rules():
    bg = Background(BackgroundSpec(color=GREEN))
    assert bg.canvas_size((8, 6)) == (8, 6) and bg.canvas_size((8, 6), 30, 20) == (30, 20)
    with pytest.raises(InvalidInput, match="both width and height"):
        bg.canvas_size((8, 6), 30, 0)
    with pytest.raises(InvalidInput, match="must be in"):
        bg.canvas_size((8, 6), 10_000, 20)
