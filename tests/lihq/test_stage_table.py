"""One stage table (lihq/stages.py REGISTRY) that the plan, the executor, the deployment, the plain host
and the Serve config all read; one set of client channel options."""

from __future__ import annotations

import importlib

import yaml

from lihq import plainhost, stages
from lihq.grpc.client import CHANNEL_OPTIONS, StageClient, StageEndpoint
from orchestrator import deployment, plan
from orchestrator.spec import Background, RenderSpec, check, with_defaults

EVERYTHING = RenderSpec(
    face_key="f", text="hello", reference_video_key="r", interpolate=2, background=Background(color="#00ff00")
)
PASTE = RenderSpec(face_key="f", audio_key="a", paste_back=True)


def test_every_task_of_a_full_plan_runs_on_an_app_of_the_table():
    tasks = [
        t for s in (EVERYTHING, PASTE) for t in plan.build_plan(check(with_defaults(s)), 12.0).tasks.values()
    ]
    assert {t.stage for t in tasks} == set(stages.TASK_APPS)  # every kind of task, and no unused entry
    assert {t.app for t in tasks} == set(stages.PIPELINE_APPS)
    assert plan.STAGE_APPS is stages.TASK_APPS or dict(plan.STAGE_APPS) == dict(stages.TASK_APPS)
    assert tuple(deployment.STAGE_APPS) == stages.PIPELINE_APPS


def test_each_stage_has_its_stub_servicer_function_and_plain_host_module():
    for name, st in stages.REGISTRY.items():
        assert st.stub().__name__ == f"{st.service_name}Stub"
        module, _, fn = stages.servicer_function(name).rpartition(".")
        assert callable(getattr(importlib.import_module(module), fn))
    names = {s.full_name for s in plainhost.all_services()}
    assert set(stages.CAPABILITIES.values()) <= names


def test_the_serve_config_registers_every_stage_service():
    cfg = yaml.safe_load(open("serve_configs/local.yaml").read())
    funcs = set(cfg["grpc_options"]["grpc_servicer_functions"])
    assert {stages.servicer_function(n) for n in stages.REGISTRY} <= funcs
    assert {a["name"] for a in cfg["applications"]} == set(stages.REGISTRY)


def test_one_set_of_channel_options():
    client = StageClient(StageEndpoint("127.0.0.1:1", "media"), stages.REGISTRY["media"].stub())
    try:
        assert dict(CHANNEL_OPTIONS)["grpc.lb_policy_name"] == "round_robin"
    finally:
        client.close()
