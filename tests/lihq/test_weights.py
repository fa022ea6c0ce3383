"""Tests for the weights registry, synthetic checkpoints, loaders, downloads and the CLI.

No network: downloads go to an http.server on 127.0.0.1 started here (with Range support).
Synthetic files are written once per module. Nothing here needs the shared conformance set except
the checks that our networks' keys equal its manifests (skipped, with the reason, without it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import re
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

import pytest
import torch
from click.testing import CliRunner

from lihq.config import WeightsConfig
from lihq.errors import FailedPrecondition, InvalidInput, Unavailable, WeightsMissing
from lihq.weights import fetch as wfetch
from lihq.weights import fill, loaders, registry, synth
from tests.reference import load_manifest, ref_path, require

SYNTH_NAMES = (
    "wav2lip",
    "s3fd",
    "gfpgan-1.3",
    "gfpgan-1.4",
    "facexlib",
    "realesrgan-x2plus",
    "modnet",
    "qvi",
)
REQUIRED_NAMES = {
    "fomm",
    "fomm-adv",
    "wav2lip",
    "wav2lip_gan",
    "s3fd",
    "gfpgan-1.3",
    "gfpgan-1.4",
    "facexlib",
    "realesrgan-x2plus",
    "modnet",
    "qvi",
    "tortoise",
}


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """Synthetic weights for seed 1: FOMM through the CLI, the others through the API."""
    root = tmp_path_factory.mktemp("weights")
    from lihq_cli.weights import weights as cli

    result = CliRunner().invoke(cli, ["synthesize", "fomm", "--seed", "1", "--dir", str(root)])
    for name in SYNTH_NAMES:
        synth.synthesize(name, 1, root)
    return {"root": root, "cli_fomm": result}


def _path(root: Path, name: str, index: int = 0) -> Path:
    return registry.local_path(registry.get_entry(name).files[index], root)


# ----------------------------------------------------------------------------- registry


def test_registry_integrity() -> None:
    names = registry.entry_names()
    assert len(names) == len(set(names))
    assert REQUIRED_NAMES <= set(names)
    dests = [f.dest for e in registry.ENTRIES for f in e.files]
    assert len(dests) == len(set(dests))
    for entry in registry.ENTRIES:
        assert entry.license and entry.license_url.startswith("https://") and entry.provenance
        assert entry.files
        for f in entry.files:
            assert f.urls or f.manual_urls, f.filename
            assert all(u.startswith("https://") for u in f.urls + f.manual_urls)
            dest = PurePosixPath(f.dest)
            assert not dest.is_absolute() and ".." not in dest.parts and "\\" not in f.dest
            assert dest.parts[0] and dest.name
            assert f.layout in registry.LAYOUTS
            if f.sha256 is not None:
                assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)
            if f.hash_prefix is not None:
                assert f.sha256 is None or f.sha256.startswith(f.hash_prefix)
                assert f.hash_prefix in f.filename
            assert f.nets or entry.name in ("tortoise", "bark"), f.filename
            for ref in f.nets:
                assert re.fullmatch(r"[\w.]+:\w+", ref), ref


def test_s3fd_hash_prefix_recorded() -> None:
    s3fd = registry.get_entry("s3fd").files[0]
    assert s3fd.hash_prefix == "619a316812" and s3fd.url.endswith("s3fd-619a316812.pth")


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(InvalidInput) as err:
        registry.get_entry("nope")
    assert "fomm" in str(err.value) and "wav2lip_gan" in str(err.value)


def test_local_path_and_require(tmp_path: Path) -> None:
    cfg = WeightsConfig(dir=tmp_path)
    assert registry.local_path(registry.get_entry("fomm"), cfg) == tmp_path / "fomm" / "vox-cpk.pth.tar"
    with pytest.raises(InvalidInput):
        registry.local_path(registry.get_entry("qvi"), cfg)  # two files
    with pytest.raises(WeightsMissing) as err:
        registry.require("fomm", cfg)
    msg = str(err.value)
    assert str(tmp_path / "fomm" / "vox-cpk.pth.tar") in msg and "`lihq weights fetch fomm`" in msg
    assert err.value.code == "FAILED_PRECONDITION"
    for p in registry.local_paths(registry.get_entry("qvi"), cfg):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    assert registry.require("qvi", cfg) == registry.local_paths(registry.get_entry("qvi"), cfg)


def test_require_manual_only_mentions_drive(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissing) as err:
        registry.require("modnet", tmp_path)
    assert "drive.google.com" in str(err.value)


# ----------------------------------------------------------------------------- synthesize + loaders


def test_cli_synthesize_fomm_output(synth_dir: dict[str, object]) -> None:
    result = synth_dir["cli_fomm"]
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output and "vox-cpk.pth.tar" in result.output


def test_fomm_legacy_pickle_roundtrip(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "fomm")
    assert path.is_file() and not zipfile.is_zipfile(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)  # the official file loads weights-only too
    assert {"generator", "kp_detector", "discriminator", "epoch"} <= set(raw)
    assert {"optimizer_generator", "optimizer_discriminator", "optimizer_kp_detector"} <= set(raw)
    cpk = loaders.load_fomm_checkpoint(path)
    assert set(cpk) == {"generator", "kp_detector"}
    from services.fomm.checkpoint import load_nets

    kp, gen = load_nets(path)  # the real loader, strict
    assert torch.equal(kp.down.weight, fill.gaussian_kernel(3, 13))  # AntiAliasInterpolation2d(0.25)
    info = synth.is_synthetic(path)
    assert info is not None and info["seed"] == 1 and info["rule"] == fill.RULE
    assert info["sha256"] == synth.file_sha256(path) and info["size"] == path.stat().st_size
    assert synth.weights_id(path) == "synthetic:1"


def test_wav2lip_module_prefix_stripped(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "wav2lip")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert {"state_dict", "optimizer", "global_step", "global_epoch"} <= set(raw)
    assert all(k.startswith("module.") for k in raw["state_dict"])
    sd = loaders.load_wav2lip_checkpoint(path)
    assert not any(k.startswith("module.") for k in sd)
    from services.wav2lip.checkpoint import load_wav2lip

    load_wav2lip(path)


def test_deterministic_per_seed_and_key(tmp_path: Path) -> None:
    (a,) = synth.synthesize("s3fd", 5, tmp_path / "a")
    (b,) = synth.synthesize("s3fd", 5, tmp_path / "b")
    (c,) = synth.synthesize("s3fd", 6, tmp_path / "c")
    sa, sb, sc = (loaders.load_state_dict(p) for p in (a, b, c))
    assert synth.state_dict_fingerprint(sa) == synth.state_dict_fingerprint(sb)
    assert synth.state_dict_fingerprint(sa) != synth.state_dict_fingerprint(sc)
    key = "conv1_1.weight"
    assert torch.equal(sa[key], fill.fill_tensor(key, list(sa[key].shape), 5))  # one key refills alone
    assert not torch.equal(sa["conv1_2.weight"][:4, :3], sa["conv1_1.weight"][:4, :3])


def test_fill_rule_scales() -> None:
    w = fill.fill_tensor("conv.weight", [256, 128, 3, 3], 1)
    assert w.dtype == torch.float32 and abs(float(w.std()) * (128 * 9) ** 0.5 - fill.GAIN) < 0.1
    assert float(w.abs().max()) <= 2.5 * fill.GAIN / (128 * 9) ** 0.5 + 1e-6
    var = fill.fill_tensor("bn.running_var", [512], 1)
    assert float(var.min()) > 0 and 0.8 < float(var.mean()) < 1.2
    jac = fill.fill_tensor("jacobian.bias", [40], 1).view(10, 2, 2)
    assert float(torch.linalg.det(jac).min()) > 0.8
    k = fill.gaussian_kernel(3, 13)
    assert abs(float(k[0].sum()) - 1) < 1e-6 and torch.equal(k[0], k[2]) and k[0, 0, 6, 6] == k[0].max()
    like = torch.zeros((), dtype=torch.int64)
    assert fill.fill_like("bn.num_batches_tracked", like, 1).dtype == torch.int64


def test_s3fd_plain_state_dict(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "s3fd")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in raw.values()) and len(raw) == 65
    from services.wav2lip.checkpoint import load_s3fd

    load_s3fd(path)


def test_gfpgan_params_ema(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "gfpgan-1.4")
    sd = loaders.load_state_dict(path, key="params_ema", strip_prefix=None)
    assert loaders.load_by_layout("gfpgan_params_ema", path)["model"].keys() == sd.keys()
    v13 = loaders.load_state_dict(_path(synth_dir["root"], "gfpgan-1.3"), key="params_ema")
    assert synth.state_dict_fingerprint(v13) == synth.state_dict_fingerprint(sd)  # same architecture
    noise = sd["stylegan_decoder.noises.noise0"]
    assert 0.5 < float(noise.std()) < 2 or noise.numel() < 32  # noise buffers hold unit noise
    from services.gfpgan.checkpoint import load_restorer

    load_restorer(path, torch.device("cpu"))


def test_realesrgan_params_ema(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "realesrgan-x2plus")
    from services.gfpgan.upsampler import build_rrdbnet

    sd = loaders.load_state_dict(path, key="params_ema")
    build_rrdbnet().load_state_dict(sd, strict=True)
    assert synth.is_synthetic(path)["entry"] == "realesrgan-x2plus"


def test_modnet_dataparallel_with_tied_backbone(synth_dir: dict[str, object]) -> None:
    path = _path(synth_dir["root"], "modnet")
    sd = loaders.load_state_dict(path, strip_prefix=None)
    assert all(k.startswith("module.") for k in sd)
    alias = "module.lr_branch.backbone.model.features.0.0.weight"
    assert torch.equal(sd[alias], sd["module.backbone.model.features.0.0.weight"])
    from services.modnet.checkpoint import load_modnet

    load_modnet(path)  # strict, checks the aliases agree


def test_qvi_model_and_pwc(synth_dir: dict[str, object]) -> None:
    root = synth_dir["root"]
    model_pt, pwc = _path(root, "qvi", 0), _path(root, "qvi", 1)
    raw = loaders.read_checkpoint(model_pt)  # holds a datetime, allow-listed
    assert isinstance(raw["timestamp"], datetime.datetime)
    sd = loaders.load_state_dict(model_pt, key="model_state_dict", strip_prefix=None)
    assert all(k.startswith("module.") for k in sd)
    assert not any(k.startswith("module.") for k in loaders.load_state_dict(pwc, strip_prefix=None))
    from services.qvi.checkpoint import load_pwcnet, load_qvi

    load_qvi(model_pt)
    load_pwcnet(pwc)


def test_facexlib_layouts(synth_dir: dict[str, object]) -> None:
    root = synth_dir["root"]
    det = loaders.load_state_dict(_path(root, "facexlib", 0), strip_prefix=None)
    assert all(k.startswith("module.") for k in det)
    from services.gfpgan.checkpoint import load_face_helper

    helper = load_face_helper(root, torch.device("cpu"))  # facexlib's own loaders, strict
    assert type(helper.face_det).__name__ == "RetinaFace" and type(helper.face_parse).__name__ == "ParseNet"


@pytest.mark.parametrize("name", ["fomm", *SYNTH_NAMES])
def test_keys_and_shapes_equal_the_reference_manifests(name: str) -> None:
    """Our networks, in the official layout, hold exactly the keys and shapes the reference lists."""
    for wfile in registry.get_entry(name).files:
        if not wfile.manifests:
            continue
        for shapes, rel in zip(synth.net_shapes(wfile), wfile.manifests, strict=True):
            want = load_manifest(rel)  # skips, naming the file, without the shared set
            want = {k.removeprefix("module."): v for k, v in want.items()}
            assert shapes == want, f"{name} {rel}"


def test_vector_fill_reproduces_the_reference_fingerprints(tmp_path: Path) -> None:
    """`lihq verify`'s path: the set's own fill rule through our layouts gives its fingerprints."""
    require("fill_weights.py", "fill_weights_fingerprints.json", "s3fd/vectors")
    from lihq.verify import synthesize_for

    (path,) = synthesize_for("s3fd", 1, tmp_path, ref_path("s3fd", "vectors"))
    table = json.loads(ref_path("fill_weights_fingerprints.json").read_text())["fingerprints"]
    sd = loaders.load_state_dict(path)
    assert synth.state_dict_fingerprint(sd) == table["s3fd/manifests/s3fd.json@seed1"]["sha256"]
    info = synth.is_synthetic(path)
    assert info["rule"].startswith("vectors:") and synth.weights_id(path) == f"synthetic:1@{info['rule']}"


def test_synthesize_unbuilt_network_is_invalid(tmp_path: Path) -> None:
    for name in ("tortoise", "bark"):
        with pytest.raises(InvalidInput, match="does not build its network"):
            synth.synthesize(name, 1, tmp_path)


def test_sidecar_ignored_when_file_replaced(tmp_path: Path) -> None:
    (path,) = synth.synthesize("s3fd", 7, tmp_path)
    assert synth.is_synthetic(path)["seed"] == 7
    path.write_bytes(b"replaced")
    assert synth.is_synthetic(path) is None
    assert synth.weights_id(path) == "sha256:" + hashlib.sha256(b"replaced").hexdigest()


class _TinyWav2LipHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.output_block = torch.nn.Conv2d(2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_block(x)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_wav2lip(tmp_path: Path) -> None:
    path = tmp_path / "wav2lip_gan.pt"
    torch.jit.script(_TinyWav2LipHead()).save(str(path))
    sd = loaders.load_wav2lip_checkpoint(path)
    assert set(sd) == {"output_block.weight", "output_block.bias"}
    assert sd["output_block.weight"].shape == (3, 2, 1, 1)


def test_truncated_files_are_corrupt(synth_dir: dict[str, object], tmp_path: Path) -> None:
    for name, loader in (
        ("wav2lip", loaders.load_wav2lip_checkpoint),
        ("fomm", loaders.load_fomm_checkpoint),
    ):
        src = _path(synth_dir["root"], name)
        cut = tmp_path / src.name
        with src.open("rb") as fh:
            cut.write_bytes(fh.read(4096))
        with pytest.raises(loaders.CorruptCheckpoint) as err:
            loader(cut)
        assert str(cut) in str(err.value) and f"lihq weights verify {name}" in str(err.value)
    html = tmp_path / "s3fd.pth"
    html.write_bytes(b"<!DOCTYPE html><html>sign in</html>")
    with pytest.raises(loaders.CorruptCheckpoint):
        loaders.load_state_dict(html)
    empty = tmp_path / "empty.pth"
    empty.touch()
    with pytest.raises(loaders.CorruptCheckpoint, match="empty"):
        loaders.load_state_dict(empty)
    with pytest.raises(WeightsMissing):
        loaders.load_state_dict(tmp_path / "absent.pth")


def test_wrong_model_file(synth_dir: dict[str, object]) -> None:
    gfpgan = _path(synth_dir["root"], "gfpgan-1.4")
    with pytest.raises(loaders.WrongCheckpoint) as err:
        loaders.load_fomm_checkpoint(gfpgan)
    assert "FOMM" in str(err.value) and "GFPGAN" in str(err.value)
    with pytest.raises(loaders.WrongCheckpoint, match="Wav2Lip"):
        loaders.load_wav2lip_checkpoint(_path(synth_dir["root"], "qvi"))
    from services.wav2lip.checkpoint import load_s3fd

    with pytest.raises(loaders.WrongCheckpoint, match="missing keys.*unexpected keys"):
        load_s3fd(_path(synth_dir["root"], "qvi", 1))


def test_shape_mismatch_listed() -> None:
    sd = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(4)}
    with pytest.raises(loaders.WrongCheckpoint) as err:
        loaders.check_against_manifest(sd, {"a.weight": [2, 3], "b.bias": [5]})
    assert "b.bias [4] != [5]" in str(err.value)
    loaders.check_against_manifest(sd, {"shapes": {"a.weight": [2, 3], "b.bias": [4]}})


def test_foreign_pickle_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save({"model_state_dict": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1.0)}, path)
    with pytest.raises(loaders.WrongCheckpoint, match="argparse.Namespace"):
        loaders.read_checkpoint(path)


# ----------------------------------------------------------------------------- downloads


class _Server:
    """A local HTTP server: path -> (bytes, content type); honours Range; records requests."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.ranges: list[str | None] = []
        files, ranges = self.files, self.ranges

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                ranges.append(self.headers.get("Range"))
                if self.path not in files:
                    self.send_error(404)
                    return
                body, ctype = files[self.path]
                start, status = 0, 200
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start, status = int(match.group(1)), 206
                    if start >= len(body):
                        self.send_error(416)
                        return
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body) - start))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def _entry(
    urls: tuple[str, ...], sha256: str | None = PAYLOAD_SHA, size: int | None = len(PAYLOAD)
) -> registry.WeightsEntry:
    wfile = registry.WeightFile(
        filename="blob.pth",
        dest="test/blob.pth",
        layout="torch_state_dict",
        urls=urls,
        size=size,
        sha256=sha256,
    )
    return registry.WeightsEntry(
        name="blob",
        model="test",
        service="test",
        description="test blob",
        license="MIT",
        license_url="https://example.invalid/",
        files=(wfile,),
        provenance="test",
    )


def test_fetch_full_download_and_verify(server: _Server, tmp_path: Path) -> None:
    server.files["/blob.pth"] = (PAYLOAD, "application/octet-stream")
    entry = _entry((f"{server.url}/blob.pth",))
    (res,) = wfetch.fetch(entry, tmp_path, progress=False)
    assert res.action == "downloaded" and res.path.read_bytes() == PAYLOAD
    assert not res.path.with_name("blob.pth.part").exists()
    (again,) = wfetch.fetch(entry, tmp_path, progress=False)
    assert again.action == "present" and len(server.ranges) == 1
    (row,) = [wfetch.verify_file(entry, entry.files[0], res.path)]
    assert row.status == "ok" and row.hash_check == "sha256 ok"


def test_fetch_resumes_partial(server: _Server, tmp_path: Path) -> None:
    server.files["/blob.pth"] = (PAYLOAD, "application/octet-stream")
    entry = _entry((f"{server.url}/blob.pth",))
    dest = tmp_path / "test" / "blob.pth"
    dest.parent.mkdir(parents=True)
    dest.with_name("blob.pth.part").write_bytes(PAYLOAD[:300_000])
    (res,) = wfetch.fetch(entry, tmp_path, progress=False)
    assert server.ranges == ["bytes=300000-"]
    assert res.path.read_bytes() == PAYLOAD


def test_fetch_restarts_a_bad_partial(server: _Server, tmp_path: Path) -> None:
    server.files["/blob.pth"] = (PAYLOAD, "application/octet-stream")
    entry = _entry((f"{server.url}/blob.pth",))
    dest = tmp_path / "test" / "blob.pth"
    dest.parent.mkdir(parents=True)
    dest.with_name("blob.pth.part").write_bytes(b"garbage" * 1000)
    (res,) = wfetch.fetch(entry, tmp_path, progress=False)
    assert server.ranges == ["bytes=7000-", None] and res.path.read_bytes() == PAYLOAD


def test_fetch_sha_mismatch_rejected(server: _Server, tmp_path: Path) -> None:
    server.files["/blob.pth"] = (PAYLOAD, "application/octet-stream")
    entry = _entry((f"{server.url}/blob.pth",), sha256="0" * 64)
    with pytest.raises(wfetch.ChecksumMismatch, match="sha256"):
        wfetch.fetch(entry, tmp_path, progress=False)
    assert not (tmp_path / "test" / "blob.pth").exists()
    assert not (tmp_path / "test" / "blob.pth.part").exists()


def test_fetch_falls_back_to_mirror(server: _Server, tmp_path: Path) -> None:
    server.files["/login"] = (b"<html>sign in</html>", "text/html; charset=utf-8")
    server.files["/mirror/blob.pth"] = (PAYLOAD, "application/octet-stream")
    entry = _entry((f"{server.url}/gone", f"{server.url}/login", f"{server.url}/mirror/blob.pth"))
    (res,) = wfetch.fetch(entry, tmp_path, progress=False)
    assert res.url.endswith("/mirror/blob.pth") and res.path.read_bytes() == PAYLOAD


def test_fetch_connection_refused_is_unavailable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    entry = _entry((f"http://127.0.0.1:{port}/blob.pth",))
    t0 = time.monotonic()
    with pytest.raises(Unavailable) as err:
        wfetch.fetch(entry, tmp_path, progress=False, timeout=5)
    assert time.monotonic() - t0 < 5
    msg = str(err.value)
    assert "cannot reach 127.0.0.1" in msg and "by hand" in msg and str(tmp_path / "test" / "blob.pth") in msg
    assert "`lihq weights verify blob`" in msg and "\n" not in msg


def test_fetch_google_drive_only(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition) as err:
        wfetch.fetch("modnet", tmp_path, progress=False)
    msg = str(err.value)
    assert "Google Drive" in msg and "by hand" in msg and "modnet_photographic_portrait_matting.ckpt" in msg


def test_verify_rows(tmp_path: Path) -> None:
    (s3fd_path,) = synth.synthesize("s3fd", 1, tmp_path)
    gan = registry.local_path(registry.get_entry("wav2lip_gan"), tmp_path)
    gan.parent.mkdir(parents=True)
    gan.write_bytes(b"not the checkpoint")
    rows = {r.entry: r for r in wfetch.verify(["s3fd", "wav2lip_gan", "fomm"], WeightsConfig(dir=tmp_path))}
    assert rows["s3fd"].status == "synthetic" and not rows["s3fd"].failed
    assert rows["wav2lip_gan"].status == "bad" and rows["wav2lip_gan"].failed
    assert rows["fomm"].status == "missing"
    listing = {r.name: r for r in wfetch.list_entries(tmp_path)}
    assert listing["s3fd"].present == 1 and listing["s3fd"].synthetic == 1 and listing["fomm"].present == 0


# ----------------------------------------------------------------------------- CLI


def test_cli_list(tmp_path: Path) -> None:
    from lihq_cli.weights import weights as cli

    result = CliRunner().invoke(cli, ["--weights-dir", str(tmp_path), "list"], terminal_width=200)
    assert result.exit_code == 0, result.output
    for name in ("fomm", "wav2lip_gan", "gfpgan-1.4", "tortoise"):
        assert name in result.output


def test_cli_unknown_name_one_line_error(tmp_path: Path) -> None:
    from lihq_cli.weights import weights as cli

    for args in (
        ["fetch", "nope"],
        ["synthesize", "nope", "--seed", "1", "--dir", str(tmp_path)],
        ["verify", "nope"],
    ):
        result = CliRunner().invoke(cli, ["--weights-dir", str(tmp_path), *args])
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: unknown weights 'nope'"), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_verify_exit_code(tmp_path: Path) -> None:
    from lihq_cli.weights import weights as cli

    runner = CliRunner()
    assert (
        runner.invoke(cli, ["--weights-dir", str(tmp_path), "verify", "s3fd"]).exit_code == 0
    )  # missing is fine
    bad = registry.local_path(registry.get_entry("s3fd"), tmp_path)
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"truncated")
    result = runner.invoke(cli, ["--weights-dir", str(tmp_path), "verify", "s3fd"])
    assert result.exit_code == 1 and "failed verification" in result.output
