"""Swapping a model: one stage's entry changes, and another implementation of its proto serves it.

- `lihq.stages.StageEndpoints` (env and YAML forms) resolves each stage to an address + application;
- the k8s example (k8s/examples/swap-media) differs from overlays/dev only in the media stage's entries;
- a MediaService on a plain grpc.aio server on another port replaces the media stage for a caller
  configured from the rendered ConfigMap plus that one entry.
"""

from __future__ import annotations

import pytest
import yaml

from lihq.errors import InvalidInput, Unavailable
from lihq.stages import STAGES, StageCaller, StageEndpoints, servicer_function
from lihq.storage import FileStore
from lihq_cli.k8s.validate import load_documents, load_settings
from tests.integration.conftest import free_port
from tests.k8s.plainmedia import plain_media_server
from tests.mediafiles import lavfi_video

SETTINGS = load_settings()


def docs(name: str) -> dict[str, dict]:
    return {
        f"{d['kind']}/{d['metadata']['name']}": d
        for d in load_documents(SETTINGS.get(name).rendered.read_text())
    }


# -- the config format ----------------------------------------------------------------------------
def test_env_overrides_one_stage_and_defaults_the_rest():
    e = StageEndpoints.from_env(
        {
            "LIHQ_STAGES_ADDRESS": "lihq-serve:9000",
            "LIHQ_STAGE_WAV2LIP_APPLICATION": "wav2lip-gan",
            "LIHQ_STAGE_MEDIA_ADDRESS": "media-alt:50051",
            "UNRELATED": "x",
        }
    )
    assert (e.get("media").address, e.get("media").application) == ("media-alt:50051", "media")
    assert (e.get("wav2lip").address, e.get("wav2lip").application) == ("lihq-serve:9000", "wav2lip-gan")
    assert all(e.get(s).address == "lihq-serve:9000" for s in STAGES if s not in ("media",))
    assert StageEndpoints.from_env({}).get("fomm").address == "127.0.0.1:9000"


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"LIHQ_STAGE_WAVLIP_ADDRESS": "a:1"}, "LIHQ_STAGE_WAVLIP_ADDRESS"),
        ({"LIHQ_STAGE_MEDIA_PORT": "1"}, "_ADDRESS or _APPLICATION"),
        ({"LIHQ_STAGE_MEDIA_ADDRESS": "http://a:1"}, "expected host:port"),
        ({"LIHQ_STAGES_ADDRESS": "noport"}, "LIHQ_STAGES_ADDRESS"),
    ],
)
def test_env_typos_are_refused(env, needle):
    with pytest.raises(InvalidInput, match="") as ei:
        StageEndpoints.from_env(env)
    assert needle in ei.value.message


def test_yaml_form_matches_env_form_and_refuses_unknown_keys():
    text = "default_address: lihq-serve:9000\nstages:\n  media: {address: 'media-alt:50051'}\n"
    assert StageEndpoints.from_yaml(text) == StageEndpoints.from_env(
        {"LIHQ_STAGES_ADDRESS": "lihq-serve:9000", "LIHQ_STAGE_MEDIA_ADDRESS": "media-alt:50051"}
    )
    for bad, needle in (
        ("stages: {media: {adress: 'a:1'}}", "unknown keys ['adress']"),
        ("stages: {mediaa: {address: 'a:1'}}", "unknown stage 'mediaa'"),
        ("default: 'a:1'", "unknown keys ['default']"),
    ):
        with pytest.raises(InvalidInput) as ei:
            StageEndpoints.from_yaml(bad)
        assert needle in ei.value.message


def test_every_stage_has_a_servicer_function_that_imports():
    import importlib

    for stage in STAGES:
        mod, _, fn = servicer_function(stage).rpartition(".")
        assert callable(getattr(importlib.import_module(mod), fn))


# -- the k8s example: only the media stage's entries change -------------------------------------------
def test_swap_example_changes_only_the_media_entries():
    dev, swap = docs("dev"), docs("swap-media")
    assert set(dev) == set(swap)
    changed = sorted(k for k in dev if dev[k] != swap[k])
    assert changed == ["ConfigMap/lihq-serve-config", "ConfigMap/lihq-stages", "RayService/lihq"]
    added = set(swap["ConfigMap/lihq-stages"]["data"].items()) - set(
        dev["ConfigMap/lihq-stages"]["data"].items()
    )
    assert added == {("LIHQ_STAGE_MEDIA_ADDRESS", "media-alt.lihq.svc:50051")}
    a = yaml.safe_load(dev["RayService/lihq"]["spec"].pop("serveConfigV2"))
    b = yaml.safe_load(swap["RayService/lihq"]["spec"].pop("serveConfigV2"))
    assert dev["RayService/lihq"] == swap["RayService/lihq"]  # nothing else in the RayService changed
    apps_a, apps_b = ({x["name"]: x for x in c.pop("applications")} for c in (a, b))
    assert a == b and set(apps_a) - set(apps_b) == {"media"}
    assert apps_b["orchestrator"]["args"].pop("stages") == {"media": {"address": "media-alt.lihq.svc:50051"}}
    apps_a.pop("media")
    assert apps_a == apps_b


def test_the_orchestrator_and_the_batch_job_resolve_the_same_media_address():
    from orchestrator.deployment import OrchestratorArgs

    swap = docs("swap-media")
    cfg = yaml.safe_load(swap["RayService/lihq"]["spec"]["serveConfigV2"])
    args = next(a["args"] for a in cfg["applications"] if a["name"] == "orchestrator")
    from_args = OrchestratorArgs.parse(args).endpoints()["media"]
    from_env = StageEndpoints.from_env(swap["ConfigMap/lihq-stages"]["data"]).get("media")
    assert from_args.address == from_env.address == "media-alt.lihq.svc:50051"


# -- a plain gRPC MediaService on another port replaces the media stage -----------------------------
@pytest.fixture(scope="module")
def alt_media(tmp_path_factory):
    store = FileStore(tmp_path_factory.mktemp("swap") / "store", "lihq")
    video = lavfi_video(tmp_path_factory.mktemp("swapmedia") / "ref.mp4", seconds=1.0, size="64x48", rate=25)
    store.put_file("uploads/ref.mp4", video)
    with plain_media_server(store) as address:
        yield address, store


def test_a_plain_grpc_media_server_replaces_the_media_stage(alt_media):
    address, store = alt_media
    env = dict(docs("dev")["ConfigMap/lihq-stages"]["data"])
    env["LIHQ_STAGES_ADDRESS"] = f"127.0.0.1:{free_port()}"  # the Serve proxy: nothing listens there
    request = {"video": {"key": "uploads/ref.mp4"}, "durationS": 0.4, "width": 32, "height": 32}
    op = "lihq.v1.MediaService/CutVideo"

    caller = StageCaller(StageEndpoints.from_env(env), timeout_s=5)
    try:
        with pytest.raises(Unavailable):
            caller.call(op, request)
    finally:
        caller.close()

    env["LIHQ_STAGE_MEDIA_ADDRESS"] = address  # the one-line swap
    caller = StageCaller(StageEndpoints.from_env(env), timeout_s=30)
    try:
        response = caller.call(op, request)
    finally:
        caller.close()
    assert response.total_frames == 10 and all(store.exists(s.pack.key) for s in response.segments)
