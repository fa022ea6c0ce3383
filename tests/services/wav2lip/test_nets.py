"""Wav2Lip and S3FD nets: golden state-dict keys, strict loaders for every official layout, errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lihq.errors import WeightsMissing
from lihq.weights.loaders import CorruptCheckpoint, WrongCheckpoint, load_state_dict
from services.wav2lip.checkpoint import load_s3fd, load_wav2lip
from services.wav2lip.nets.s3fd import S3FD
from services.wav2lip.nets.wav2lip import Wav2Lip
from tests.reference import load_manifest, needs


def _shapes(module: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in module.state_dict().items()}


@needs("wav2lip/manifests/wav2lip.json")
def test_wav2lip_keys_and_shapes_equal_the_manifest() -> None:
    assert _shapes(Wav2Lip()) == load_manifest("wav2lip/manifests/wav2lip.json")


@needs("s3fd/manifests/s3fd.json")
def test_s3fd_keys_and_shapes_equal_the_manifest() -> None:
    assert _shapes(S3FD()) == load_manifest("s3fd/manifests/s3fd.json")


def test_wav2lip_forward_shape_and_range() -> None:
    torch.manual_seed(0)
    net = Wav2Lip().eval()
    with torch.inference_mode():
        out = net(torch.rand(2, 1, 80, 16) * 8 - 4, torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96) and out.dtype == torch.float32
    assert float(out.min()) > 0 and float(out.max()) < 1


def test_s3fd_head_shapes_at_odd_size() -> None:
    with torch.inference_mode():
        outs = S3FD().eval()(torch.zeros(1, 3, 72, 88))
    sizes = [tuple(t.shape[1:]) for t in outs]
    # strides 4..128; fc6's padding 3 makes the stride-32 map 4 larger than H/32 x W/32
    assert sizes[0::2] == [(2, 18, 22), (2, 9, 11), (2, 4, 5), (2, 6, 6), (2, 3, 3), (2, 2, 2)]
    assert all(s[0] == 4 for s in sizes[1::2])


def test_official_wav2lip_layout_loads_with_module_prefix(wav2lip_file: Path) -> None:
    raw = torch.load(wav2lip_file, map_location="cpu", weights_only=True)
    assert set(raw) >= {"state_dict", "optimizer", "global_step"}
    assert all(k.startswith("module.") for k in raw["state_dict"])
    net = load_wav2lip(wav2lip_file)
    assert not net.training
    key = "face_encoder_blocks.0.0.conv_block.0.weight"
    assert torch.equal(net.state_dict()[key], raw["state_dict"]["module." + key])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_torchscript_wav2lip_loads_the_same_weights(wav2lip_file: Path, tmp_path: Path) -> None:
    net = load_wav2lip(wav2lip_file)
    scripted = torch.jit.script(net)
    path = tmp_path / "wav2lip_gan_scripted.pt"
    scripted.save(str(path))
    again = load_wav2lip(path)
    for k, v in net.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_s3fd_plain_state_dict_loads(s3fd_file: Path) -> None:
    net = load_s3fd(s3fd_file)
    raw = load_state_dict(s3fd_file, strip_prefix=None)
    assert torch.equal(net.conv3_3_norm.weight, raw["conv3_3_norm.weight"])


def test_s3fd_file_given_as_wav2lip_lists_missing_keys(s3fd_file: Path) -> None:
    with pytest.raises(WrongCheckpoint, match="missing keys") as ei:
        load_wav2lip(s3fd_file)
    assert "unexpected keys" in str(ei.value) and "Wav2Lip" in str(ei.value)


def test_wav2lip_file_given_as_s3fd_is_wrong(wav2lip_file: Path) -> None:
    with pytest.raises(WrongCheckpoint):
        load_s3fd(wav2lip_file)


def test_fomm_like_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "vox-cpk.pth.tar"
    torch.save({"generator": {"a": torch.zeros(1)}, "kp_detector": {"b": torch.zeros(1)}}, path)
    with pytest.raises(WrongCheckpoint, match="FOMM"):
        load_wav2lip(path)


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    sd = Wav2Lip().state_dict()
    sd["output_block.1.weight"] = torch.zeros(3, 32, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in sd.items()}}, path)
    with pytest.raises(WrongCheckpoint, match=r"output_block\.1\.weight \[3, 32, 3, 3\] != \[3, 32, 1, 1\]"):
        load_wav2lip(path)


def test_truncated_and_missing_files(wav2lip_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "wav2lip_gan.pth"
    cut.write_bytes(wav2lip_file.read_bytes()[:100_000])
    with pytest.raises(CorruptCheckpoint, match="wav2lip_gan"):
        load_wav2lip(cut)
    with pytest.raises(WeightsMissing):
        load_wav2lip(tmp_path / "absent.pth")
