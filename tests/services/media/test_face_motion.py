"""Face prep, procedural motion and paste-back: pure functions and the MediaService RPCs."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from lihq.errors import InvalidInput
from lihq.framepack import unpack_frames
from lihq.storage import FileStore
from lihq.v1 import common_pb2, media_pb2, media_pb2_grpc
from services.media import face
from services.media import procedural_motion as motion
from services.media.servicer import MediaServicer
from tests.plaingrpc import plain_server


def test_haar_finds_the_astronaut_and_crops_square():
    photo = astronaut()
    tf = face.crop_transform(photo)
    x, y, w, h = tf.face
    assert 150 < x < 210 and 40 < y < 100 and w > 60  # the face, not the suit or the flag
    crop = face.cut_crop(photo, tf, 256)
    assert crop.shape == (256, 256, 3) and crop.dtype == np.uint8
    # the detected face sits in the middle of the crop
    cx = (x + w / 2 - tf.x0) / tf.size
    assert 0.4 < cx < 0.6


def test_no_face_is_a_clear_error():
    with pytest.raises(InvalidInput, match="no face found"):
        face.crop_transform(np.full((200, 300, 3), 128, np.uint8))


def test_crop_past_the_edge_replicates_instead_of_failing():
    photo = astronaut()
    tf = face.CropTransform(-50, -60, 300, 512, 512, (0, 0, 10, 10))
    crop = face.cut_crop(photo, tf, 128)
    assert crop.shape == (128, 128, 3)
    assert np.array_equal(crop[0, 0], photo[0, 0])  # replicated corner


def test_paste_back_round_trip_keeps_the_photo_outside_the_crop():
    photo = astronaut()
    tf = face.crop_transform(photo)
    crop = face.cut_crop(photo, tf, 256)
    red = np.zeros((2, 256, 256, 3), np.uint8)
    red[..., 0] = 255
    out = face.paste_back(red, photo, tf)
    assert out.shape == (2, 512, 512, 3)
    cy, cx = tf.y0 + tf.size // 2, tf.x0 + tf.size // 2
    assert out[0, cy, cx, 0] == 255 and out[0, cy, cx, 1] == 0  # the pasted frame inside
    assert np.array_equal(out[0, 500, 10], photo[500, 10])  # the photo untouched outside
    same = face.paste_back(crop[None], photo, tf)[0]
    inner = (slice(tf.y0 + 40, tf.y0 + tf.size - 40), slice(tf.x0 + 40, tf.x0 + tf.size - 40))
    assert np.abs(same[inner].astype(int) - photo[inner].astype(int)).mean() < 6  # crop+paste ≈ identity


def test_procedural_motion_is_smooth_seeded_and_segment_independent():
    crop = face.cut_crop(astronaut(), face.crop_transform(astronaut()), 64)
    p = motion.MotionParams(seed=3)
    whole = motion.drive(crop, 0, 60, p)
    parts = np.concatenate([motion.drive(crop, 0, 25, p), motion.drive(crop, 25, 60, p)])
    assert np.array_equal(whole, parts)  # any segment alone equals the same frames of the whole
    poses = motion.poses(0, 250, p)
    assert np.abs(poses[:, 0]).max() <= 3.0 and np.abs(np.diff(poses[:, 0])).max() < 0.2  # small and smooth
    assert not np.array_equal(motion.poses(0, 50, motion.MotionParams(seed=4)), poses[:50])
    assert not np.array_equal(whole[0], whole[30])  # it moves


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("fm") / "store", "lihq")
    with plain_server(MediaServicer(store), [media_pb2.DESCRIPTOR.services_by_name["MediaService"]]) as ch:
        yield media_pb2_grpc.MediaServiceStub(ch), store


def test_prepare_face_motion_and_paste_over_grpc(media, tmp_path):
    stub, store = media
    from PIL import Image

    Image.fromarray(astronaut()).save(tmp_path / "a.png")
    img = store.put_file("inputs/a.png", tmp_path / "a.png")
    r = stub.PrepareFace(media_pb2.PrepareFaceRequest(image=common_pb2.ObjectRef(key=img.key)))
    assert r.face_width > 60 and unpack_frames(store.get_bytes(r.crop.key)).frames.shape == (1, 256, 256, 3)
    seg = common_pb2.Segment(start=50, end=60)
    m = stub.ProceduralMotion(media_pb2.ProceduralMotionRequest(face=r.crop, segment=seg, seed=1))
    pack = unpack_frames(store.get_bytes(m.pack.key))
    assert (pack.start, pack.count) == (50, 10)
    again = stub.ProceduralMotion(media_pb2.ProceduralMotionRequest(face=r.crop, segment=seg, seed=1))
    assert again.pack.key == m.pack.key and again.metrics.cache_hit
    p = stub.PasteBack(media_pb2.PasteBackRequest(frames=m.pack, image=img_ref(img), transform=r.transform))
    assert unpack_frames(store.get_bytes(p.pack.key)).frames.shape == (10, 512, 512, 3)


def img_ref(info):
    return common_pb2.ObjectRef(key=info.key)


def test_prepare_face_without_a_face_is_invalid_argument(media, tmp_path):
    import grpc
    from PIL import Image

    stub, store = media
    Image.fromarray(np.full((120, 160, 3), 90, np.uint8)).save(tmp_path / "wall.png")
    info = store.put_file("inputs/wall.png", tmp_path / "wall.png")
    with pytest.raises(grpc.RpcError) as ei:
        stub.PrepareFace(media_pb2.PrepareFaceRequest(image=common_pb2.ObjectRef(key=info.key)))
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "no face" in ei.value.details()
