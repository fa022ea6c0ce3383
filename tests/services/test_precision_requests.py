"""Every stage reads a request's precision through lihq.precision.from_proto: an unknown enum value is
INVALID_ARGUMENT naming `precision` (FOMM used to fall back to its default silently), and
PRECISION_UNSPECIFIED means the deployment's default."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from lihq import precision as precisions
from lihq.errors import InvalidInput
from lihq.storage import FileStore
from lihq.v1 import common_pb2, interpolation_pb2, lipsync_pb2, matting_pb2, motion_pb2, restoration_pb2

BOGUS = 7  # not a lihq.v1.Precision value
RUNNER = SimpleNamespace(
    cfg=SimpleNamespace(precision="bf16", align_corners=False, ref_size=512), precision="bf16"
)


def _fomm(store, value):
    from services.fomm.servicer import MotionServicer

    s = MotionServicer(store, RUNNER)
    return s._params(motion_pb2.AnimateRequest(precision=value), "vox")["precision"]


def _wav2lip(store, value):
    from services.wav2lip.servicer import LipSyncServicer

    s = LipSyncServicer(store, RUNNER)
    req = lipsync_pb2.LipSyncRequest(precision=value, frames=common_pb2.ObjectRef(key="inputs/none.lfp"))
    asyncio.run(s.LipSync(req))  # in-process call: the typed error is raised


def _qvi(store, value):
    from services.qvi.servicer import InterpolationServicer

    s = InterpolationServicer(store, loader=lambda: RUNNER)
    seg = common_pb2.Segment(start=0, end=2)
    req = interpolation_pb2.InterpolateRequest(
        precision=value, k=1, segment=seg, frames=[common_pb2.ObjectRef()]
    )
    return s._plan(req)[1]


def _gfpgan(store, value):
    from services.gfpgan.servicer import params_from_request

    return params_from_request(restoration_pb2.RestoreRequest(precision=value)).precision


def _modnet(store, value):
    from services.modnet.servicer import MattingServicer

    s = MattingServicer(store, lambda: RUNNER)
    req = matting_pb2.MatteRequest(precision=value, frames=common_pb2.ObjectRef(key="inputs/none.lfp"))
    asyncio.run(s.Matte(req))


STAGES = {"fomm": _fomm, "wav2lip": _wav2lip, "qvi": _qvi, "gfpgan": _gfpgan, "modnet": _modnet}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_unknown_precision_is_invalid_argument_naming_the_field(stage, tmp_path):
    store = FileStore(tmp_path, "lihq-test")
    with pytest.raises(InvalidInput) as ei:
        STAGES[stage](store, BOGUS)
    assert ei.value.code == "INVALID_ARGUMENT"
    assert (
        ei.value.message.startswith(f"precision {BOGUS}: unknown value")
        and "PRECISION_BF16" in ei.value.message
    )


@pytest.mark.parametrize("stage", ["fomm", "qvi", "gfpgan"])
def test_known_precisions_pass_through(stage, tmp_path):
    got = STAGES[stage](FileStore(tmp_path, "lihq-test"), common_pb2.PRECISION_FP16)
    assert got == "fp16"


def test_from_proto_maps_every_enum_value():
    names = {v: precisions.from_proto(v, "fp32") for v in common_pb2.Precision.values()}
    assert names == {0: "fp32", 1: "fp32", 2: "fp16", 3: "bf16"}
    assert precisions.from_proto(common_pb2.PRECISION_UNSPECIFIED, None) is None
    with pytest.raises(InvalidInput, match="precision 'int8'"):
        precisions.from_proto(common_pb2.PRECISION_UNSPECIFIED, "int8")  # a bad default is caught too
