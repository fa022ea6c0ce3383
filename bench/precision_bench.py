"""Measure each network's error at bf16 / fp16 against its conformance vectors (sets lihq/precision.py).

Run: `python bench/precision_bench.py [--models fomm wav2lip ...] [--precisions bf16 fp16]`
(CPU: minutes per model on 2 cores; vectors from LIHQ_REFERENCE_DIR or ../shared/reference).

For every output row of `lihq verify MODEL` it prints the fp32 error and tolerance and the error of
the same verifier run under autocast at each precision (lihq.precision.autocast_everywhere: every
convolution and matmul in that dtype, CPU and CUDA), then the tolerance `lihq.precision.bound`
derives from it (2x the worst error over the set, one significant digit). `--json FILE` writes the
rows; `--emit` prints the TOLERANCES entries to paste into lihq/precision.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lihq.precision import autocast_everywhere, bound  # noqa: E402
from lihq.verify import MODELS, run_verify  # noqa: E402
from tests.reference import reference_dir  # noqa: E402


def measure(model: str, precisions: list[str], seed: int) -> list[dict]:
    vectors = reference_dir() / model / "vectors"
    t0 = time.perf_counter()
    base = run_verify(model, vectors, seed)
    out: dict[str, dict] = {}
    for r in base:
        o = out.setdefault(
            r.output, {"model": model, "output": r.output, "kind": r.kind, "fp32_tol": r.tolerance}
        )
        o["fp32"] = max(o.get("fp32", 0.0), r.max_abs_err)
    print(f"{model}: fp32 in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    for p in precisions:
        t0 = time.perf_counter()
        with autocast_everywhere(p):
            rows = run_verify(model, vectors, seed)
        for r in rows:
            o = out[r.output]
            o[p] = max(o.get(p, 0.0), r.max_abs_err)
        print(f"{model}: {p} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    for o in out.values():
        for p in precisions:
            o[f"{p}_tol"] = bound(o[p], o["fp32_tol"]) if o[p] == o[p] else float("nan")
    return list(out.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--precisions", nargs="+", default=["bf16", "fp16"], choices=["bf16", "fp16"])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--emit", action="store_true")
    args = ap.parse_args()
    rows: list[dict] = []
    for m in args.models:
        rows += measure(m, args.precisions, args.seed)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=1))
    cols = ["fp32"] + args.precisions
    print(f"{'model':<8} {'output':<44} {'kind':<5} {'fp32 tol':>9} " + " ".join(f"{c:>10}" for c in cols))
    for r in rows:
        print(
            f"{r['model']:<8} {r['output'][:44]:<44} {r['kind']:<5} {r['fp32_tol']:>9.2g} "
            + " ".join(f"{r[c]:>10.3g}" for c in cols)
        )
    if args.emit:
        table: dict = {}
        for r in rows:
            for p in args.precisions:
                if r[f"{p}_tol"] > r["fp32_tol"]:
                    table.setdefault(r["model"], {}).setdefault(p, {})[r["output"]] = r[f"{p}_tol"]
        print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
