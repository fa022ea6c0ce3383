"""The capacity model on cases small enough to compute by hand, plus the `lihq capacity` table."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from lihq.errors import InvalidInput
from lihq_cli.capacity import (
    Allocation,
    Workload,
    capacity_per_hour,
    critical_path_s,
    load_costs,
    recommend,
    segments_for,
    simulate,
    work_per_video,
)
from lihq_cli.capacity.command import DEFAULT_COSTS, capacity


def costs_of(gpu_ops: dict, media_ops: dict | None = None, rpg: dict | None = None):
    stages: dict = {}
    for op, cost in gpu_ops.items():
        stage = op.split(".")[0]
        stages.setdefault(stage, {"ops": {}, "replicas_per_gpu": (rpg or {}).get(stage, 1)})["ops"][op] = cost
    costs = load_costs(
        {"profiles": {"g": {"stages": stages}, "c": {"stages": {"media": {"ops": media_ops or {}}}}}}
    )
    return costs, costs.profile("g"), costs.profile("c")


ONE_EACH = Allocation({"fomm": 1, "wav2lip": 1, "gfpgan": 1}, 1)


def test_one_segment_alone_takes_the_sum_of_its_chain():
    # prepare 1 (media) -> fomm 2 -> wav2lip 3 -> gfpgan 4 -> encode 5 (media): 15 s
    costs, g, c = costs_of(
        {
            "fomm.animate": {"per_segment_s": 2},
            "wav2lip.sync": {"per_segment_s": 3},
            "gfpgan.final": {"per_segment_s": 4},
        },
        {"media.prepare": {"per_render_s": 1}, "media.encode": {"per_render_s": 5}},
    )
    w = Workload(mean_length_s=2.0, batch=1, passes=1)
    assert segments_for(2.0, costs) == 1 and segments_for(2.04, costs) == 2
    r = simulate(w, costs, g, c, ONE_EACH)
    assert r.makespan_s == pytest.approx(15.0) and r.latency_mean_s == pytest.approx(15.0)
    assert critical_path_s(w, costs, g, c, ONE_EACH) == pytest.approx(15.0)


def test_segments_pipeline_through_the_slowest_stage():
    # 3 segments, fomm 1 s, wav2lip 2 s, gfpgan 1 s, one replica each:
    # fomm ends 1,2,3; wav2lip runs 1-3, 3-5, 5-7; gfpgan 3-4, 5-6, 7-8 -> 8 s; wav2lip busy 6 of 8
    costs, g, c = costs_of(
        {
            "fomm.animate": {"per_segment_s": 1},
            "wav2lip.sync": {"per_segment_s": 2},
            "gfpgan.final": {"per_segment_s": 1},
        }
    )
    r = simulate(Workload(mean_length_s=6.0, batch=1, passes=1), costs, g, c, ONE_EACH)
    assert r.makespan_s == pytest.approx(8.0)
    assert r.utilisation["wav2lip"] == pytest.approx(6 / 8) and r.utilisation["fomm"] == pytest.approx(3 / 8)
    assert r.bottleneck == "wav2lip" and r.throughput_per_h == pytest.approx(3600 / 8)


def test_two_passes_run_fomm_and_gfpgan_twice_per_segment():
    costs, g, c = costs_of(
        {
            "fomm.animate": {"per_segment_s": 1},
            "wav2lip.sync": {"per_segment_s": 1},
            "gfpgan.restore": {"per_segment_s": 2},
            "gfpgan.final": {"per_segment_s": 3},
        }  # fmt: skip
    )
    # one segment: fomm 1 + wav2lip 1 + gfpgan.restore 2 + fomm 1 + gfpgan.final 3 = 8
    r = simulate(Workload(mean_length_s=2.0, batch=1, passes=2), costs, g, c, ONE_EACH)
    assert r.makespan_s == pytest.approx(8.0)
    work = work_per_video(Workload(mean_length_s=4.0, batch=1, passes=2), g, c, costs)
    assert (work["fomm"], work["wav2lip"], work["gfpgan"]) == (4.0, 2.0, 10.0)


def test_interpolation_and_background_scale_with_k():
    costs, g, c = costs_of(
        {
            "fomm.animate": {"per_segment_s": 1},
            "qvi.interpolate": {"per_segment_s": 2},
            "modnet.matte": {"per_segment_s": 0.5},
        },  # fmt: skip
        {"media.encode": {"per_render_s": 1, "per_segment_s": 0.25}},
    )
    w = Workload(mean_length_s=4.0, batch=1, passes=1, interpolate=3, background=True)
    work = work_per_video(w, g, c, costs)  # 2 segments, k = 3: qvi x3, modnet x4 frames, encode x4
    assert work["qvi"] == 2 * 2 * 3 and work["modnet"] == 2 * 0.5 * 4 and work["media"] == 1 + 2 * 4 * 0.25
    assert work["tts"] == 0 and work_per_video(Workload(batch=1, text=True), g, c, costs)["tts"] == 0


def test_a_closed_batch_queues_oldest_first():
    # two renders at t=0 on one fomm replica, 1 s each: done at 1 and 2 -> mean latency 1.5
    costs, g, c = costs_of({"fomm.animate": {"per_segment_s": 1}})
    r = simulate(Workload(mean_length_s=2.0, batch=2, passes=1), costs, g, c, Allocation({"fomm": 1}, 1))
    assert r.latency_mean_s == pytest.approx(1.5) and r.makespan_s == pytest.approx(2.0)
    assert r.throughput_per_h == pytest.approx(3600.0)
    two = simulate(Workload(mean_length_s=2.0, batch=4, passes=1), costs, g, c, Allocation({"fomm": 2}, 1))
    assert two.makespan_s == pytest.approx(2.0)
    capped = simulate(
        Workload(mean_length_s=2.0, batch=4, concurrency=1, passes=1), costs, g, c, Allocation({"fomm": 2}, 1)
    )
    assert capped.makespan_s == pytest.approx(4.0)  # one render in flight at a time


def test_poisson_arrivals_match_the_md1_queue():
    # M/D/1: service 1 s, lambda 0.5/s -> mean wait rho / (2 mu (1 - rho)) = 0.5 s, latency 1.5 s
    costs, g, c = costs_of({"fomm.animate": {"per_segment_s": 1}})
    w = Workload(mean_length_s=2.0, videos_per_hour=1800, passes=1, renders=20000, max_renders=20000)
    r = simulate(w, costs, g, c, Allocation({"fomm": 1}, 1))
    assert r.latency_mean_s == pytest.approx(1.5, rel=0.06)
    assert r.throughput_per_h == pytest.approx(1800, rel=0.05) and r.utilisation["fomm"] == pytest.approx(
        0.5, rel=0.05
    )


def test_capacity_and_the_recommended_split():
    costs, g, c = costs_of(
        {
            "fomm.animate": {"per_segment_s": 3},
            "wav2lip.sync": {"per_segment_s": 1},
            "gfpgan.final": {"per_segment_s": 2},
        },
        {"media.encode": {"per_render_s": 10}},
    )
    w = Workload(mean_length_s=2.0, batch=1, passes=1)
    work = work_per_video(w, g, c, costs)
    alloc = recommend(6, work, g)  # bottleneck-first whole replicas: 3 / 1 / 2
    assert dict(alloc.gpus) == {"tts": 0, "fomm": 3, "wav2lip": 1, "gfpgan": 2, "qvi": 0, "modnet": 0}
    per_stage = capacity_per_hour(alloc, work, g)
    assert per_stage["fomm"] == per_stage["wav2lip"] == per_stage["gfpgan"] == 3600.0
    assert alloc.media_replicas == math.ceil(1.0 * 10 / 0.8)  # 1 video/s x 10 s at 80 %
    few = recommend(2, work, g)  # fewer GPUs than stages: shares in proportion to 3 : 1 : 2
    assert [round(few.gpus[s], 6) for s in ("fomm", "wav2lip", "gfpgan")] == [
        1.0,
        round(1 / 3, 6),
        round(2 / 3, 6),
    ]


def test_replicas_per_gpu_sets_the_allocation_unit():
    costs, g, c = costs_of(
        {"fomm.animate": {"per_segment_s": 1}, "wav2lip.sync": {"per_segment_s": 1}}, rpg={"wav2lip": 4}
    )
    work = work_per_video(Workload(mean_length_s=2.0, batch=1, passes=1), g, c, costs)
    alloc = recommend(2, work, g)  # fomm 1 GPU/replica, wav2lip 0.25 GPU/replica
    assert alloc.gpus["fomm"] == 1 and alloc.gpus["wav2lip"] == 0.25
    assert capacity_per_hour(alloc, work, g)["wav2lip"] == 3600.0


def test_bad_costs_and_workloads_are_refused():
    with pytest.raises(InvalidInput, match="unknown op"):
        load_costs({"profiles": {"p": {"stages": {"fomm": {"ops": {"gfpgan.final": {}}}}}}})
    with pytest.raises(InvalidInput, match="exactly one"):
        Workload(mean_length_s=2.0)
    costs, g, c = costs_of({"fomm.animate": {"per_segment_s": 1}})
    with pytest.raises(InvalidInput, match="no replicas"):
        simulate(Workload(batch=1, passes=1), costs, g, c, Allocation({"fomm": 0}, 1))


def test_capacity_command_prints_a_row_per_gpu_count():
    args = ["--gpus", "1,4,1000", "--length", "10", "--renders", "60", "--orchestrators", "100"]
    res = CliRunner().invoke(capacity, args)  # 100 orchestrator replicas: the GPU stages limit
    assert res.exit_code == 0, res.output
    rows = [line.split() for line in res.output.splitlines() if line.strip()[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "4", "1000"]
    caps = [float(r[1]) for r in rows]
    assert caps[0] < caps[1] < caps[2]
    assert "WARNING: placeholder" in res.output and str(DEFAULT_COSTS) in res.output
    assert all(r[6] in ("fomm", "wav2lip", "gfpgan", "media") for r in rows)
