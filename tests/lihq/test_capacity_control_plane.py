"""The control-plane stage of the capacity model: the orchestrator as one more stage that can be the
bottleneck (its figures come from bench/control_plane_bench.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from lihq.errors import InvalidInput
from lihq_cli.capacity import (
    Workload,
    control_plane_per_hour,
    load_costs,
    orchestrator_tasks_per_video,
)
from lihq_cli.capacity.command import DEFAULT_COSTS, capacity


def test_tasks_per_video_match_the_orchestrators_plan():
    costs = load_costs(DEFAULT_COSTS)
    from orchestrator.plan import build_plan
    from orchestrator.spec import RenderSpec, check, with_defaults

    for length in (10, 600):
        plan = build_plan(check(with_defaults(RenderSpec(face_key="f", audio_key="a"))), float(length))
        assert orchestrator_tasks_per_video(Workload(mean_length_s=length, batch=1), costs) == len(plan.tasks)


def test_control_plane_capacity_scales_with_replicas_and_is_unbounded_when_unmeasured():
    raw = {"profiles": {}, "control_plane": {"tasks_per_s_per_replica": 1000, "per_render_ms": 0}}
    costs = load_costs(raw)
    w = Workload(mean_length_s=10, batch=1)  # 43 tasks: 1000 / 43 videos/s per replica
    assert control_plane_per_hour(w, costs, 1) == pytest.approx(3600 * 1000 / 43)
    assert control_plane_per_hour(w, costs, 20) == pytest.approx(20 * 3600 * 1000 / 43)
    assert control_plane_per_hour(w, load_costs({"profiles": {}})) == math.inf
    with pytest.raises(InvalidInput, match="unknown keys"):
        load_costs({"profiles": {}, "control_plane": {"tasks_per_second": 1}})


def test_a_slow_orchestrator_is_named_the_bottleneck(tmp_path: Path):
    raw = yaml.safe_load(DEFAULT_COSTS.read_text())
    raw["control_plane"] = {"tasks_per_s_per_replica": 5, "replicas": 1, "source": "test"}
    path = tmp_path / "costs.yaml"
    path.write_text(yaml.safe_dump(raw))
    args = ["--costs", str(path), "--gpus", "1000", "--length", "10", "--renders", "60"]
    res = CliRunner().invoke(capacity, args)
    assert res.exit_code == 0, res.output
    [row] = [line.split() for line in res.output.splitlines() if line.strip()[:1].isdigit()]
    assert row[6] == "orchestrator" and float(row[1]) == pytest.approx(3600 * 5 / 43, rel=1e-3)
    assert "control plane: 43 orchestrator tasks per video" in res.output
    more = CliRunner().invoke(capacity, [*args, "--orchestrators", "100000"])
    [row] = [line.split() for line in more.output.splitlines() if line.strip()[:1].isdigit()]
    assert row[6] != "orchestrator"
