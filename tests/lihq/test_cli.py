"""The `lihq` CLI: help, one-line errors (no tracebacks), serve-config validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lihq.errors import InvalidInput
from lihq_cli.main import DEFAULT_SERVE_CONFIG, cli
from lihq_cli.serving import load_serve_config


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_help_lists_commands():
    r = run("--help")
    assert r.exit_code == 0
    for cmd in ("render", "serve", "weights"):
        assert cmd in r.output


def test_serve_missing_config_is_one_line_error(tmp_path):
    r = run("serve", "--config", str(tmp_path / "nope.yaml"))
    assert r.exit_code == 2
    assert "does not exist" in r.output and "Traceback" not in r.output


def test_render_missing_face_is_one_line_error(tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"")
    r = run(
        "render",
        "--face",
        str(tmp_path / "none.png"),
        "--audio",
        str(audio),
        "-o",
        str(tmp_path / "o.mp4"),
        env={"LIHQ_HOME": str(tmp_path / "home")},
    )
    assert r.exit_code == 2 and "error:" in r.output and "Traceback" not in r.output


def test_render_needs_exactly_one_of_audio_or_text(tmp_path):
    r = run("render", "--face", "f.png", "-o", "o.mp4", env={"LIHQ_HOME": str(tmp_path)})
    assert r.exit_code == 2 and "exactly one of --audio or --text" in r.output


def test_render_with_missing_real_weights_says_what_to_fetch(tmp_path):
    from PIL import Image
    from skimage.data import astronaut

    Image.fromarray(astronaut()).save(tmp_path / "f.png")
    env = {"LIHQ_HOME": str(tmp_path / "home"), "LIHQ_WEIGHTS_DIR": str(tmp_path / "empty")}
    r = run(
        "render", "--face", str(tmp_path / "f.png"), "--text", "Hi.", "-o", str(tmp_path / "o.mp4"), env=env
    )
    assert (
        r.exit_code == 1
        and "lihq weights fetch fomm wav2lip_gan" in r.output
        and "--weights synthetic" in r.output
    )


def test_local_serve_config_is_valid_and_has_media_app():
    cfg = load_serve_config(DEFAULT_SERVE_CONFIG, grpc_port=9123)
    assert cfg.grpc_options.port == 9123
    apps = {a.name: a for a in cfg.applications}
    assert apps["media"].import_path == "services.media.deployment:build_app"
    assert (
        "lihq.v1.media_pb2_grpc.add_MediaServiceServicer_to_server"
        in cfg.grpc_options.grpc_servicer_functions
    )


def test_serve_config_rejects_duplicate_route_prefixes(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "applications:\n"
        "  - {name: a, route_prefix: /x, import_path: services.media.deployment:build_app}\n"
        "  - {name: b, route_prefix: /x, import_path: services.media.deployment:build_app}\n"
    )
    with pytest.raises(InvalidInput, match="unique"):
        load_serve_config(bad)


def test_media_app_rejects_unknown_args():
    from services.media.deployment import MediaAppArgs

    with pytest.raises(ValueError, match="unknown args"):
        MediaAppArgs.parse({"bucket": "x", "colour": "red"})


def _set(value, default):
    """Serve's schema marks unset fields with a DEFAULT sentinel."""
    return default if value is None or "DEFAULT" in repr(value) else value


def test_local_serve_config_fits_a_two_cpu_machine():
    """Every app's minimum replicas must fit 2 CPUs and 1 logical GPU, or `lihq serve` never gets RUNNING.

    Resources come from the config's ray_actor_options, else from app args (qvi takes them there)."""
    cfg = load_serve_config(DEFAULT_SERVE_CONFIG)
    cpus = gpus = 0.0
    for app in cfg.applications:
        for d in app.deployments:
            opts = _set(d.ray_actor_options, None)
            cpu = _set(getattr(opts, "num_cpus", None), None) if opts else None
            gpu = _set(getattr(opts, "num_gpus", None), None) if opts else None
            cpu = float(cpu if cpu is not None else app.args.get("num_cpus", 1))
            gpu = float(gpu if gpu is not None else app.args.get("num_gpus", 0))
            auto = _set(d.autoscaling_config, None)
            n = auto["min_replicas"] if isinstance(auto, dict) else _set(d.num_replicas, 1)
            cpus, gpus = cpus + n * cpu, gpus + n * gpu
    assert cpus <= 2.0 and gpus <= 1.0, (cpus, gpus)


def _inputs(tmp_path):
    face, audio = tmp_path / "face.png", tmp_path / "a.wav"
    face.write_bytes(b"\x89PNG not really")
    audio.write_bytes(b"RIFF not really")
    return face, audio


@pytest.mark.parametrize("which", ["face", "audio"])
def test_render_refuses_an_output_that_is_an_input(tmp_path, which):
    face, audio = _inputs(tmp_path)
    target = face if which == "face" else audio
    before = target.read_bytes()
    r = run(
        "render",
        "--face",
        str(face),
        "--audio",
        str(audio),
        "-o",
        str(target),
        env={"LIHQ_HOME": str(tmp_path)},
    )
    assert r.exit_code == 2
    assert r.output.startswith("error: ") and "is the input" in r.output and "Traceback" not in r.output
    assert target.read_bytes() == before
    assert not (tmp_path / "weights-synthetic").exists()  # refused before any work


def test_render_refuses_a_hard_link_of_an_input(tmp_path):
    face, audio = _inputs(tmp_path)
    link = tmp_path / "out.mp4"
    link.hardlink_to(face)
    r = run("render", "--face", str(face), "--audio", str(audio), "-o", str(link))
    assert r.exit_code == 2 and "is the input" in r.output
    assert face.read_bytes() == b"\x89PNG not really"


def test_render_refuses_an_output_through_another_path_to_the_input(tmp_path):
    face, audio = _inputs(tmp_path)
    (tmp_path / "sub").mkdir()
    sneaky = tmp_path / "sub" / ".." / "face.png"
    r = run("render", "--face", str(face), "--audio", str(audio), "-o", str(sneaky))
    assert r.exit_code == 2 and "is the input" in r.output


def test_click_usage_errors_are_one_error_line():
    for args, needle in (
        (["render"], "Missing option '--face'"),
        (["render", "--face", "x.png", "--audio", "a.wav", "-o", "o.mp4", "--passes", "3"], "--passes"),
        (["no-such-command"], "No such command"),
    ):
        r = run(*args)
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 2, (args, r.output)
        assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.output
