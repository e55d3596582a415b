"""What acknowledging a question only once it is stored costs: added TTFB, before and after.

    git worktree add /tmp/parley-before <commit before the change>
    .venv/bin/python -m bench.echo_cost --before /tmp/parley-before

Run from the repository root. It starts the scripted model (bench/model_server.py) and two
Parley processes on their own data directories: "before" runs the code in `--before`,
"after" this tree's. Then, round after round, at each concurrency level, it drives the
direct arm (the model's own stream) and both Parley arms one after the other, in an order
that alternates between rounds, with bench/run.py's load generator and short answers
(`bench:tokens=20:delay_ms=5:ttft_ms=20`; `--ttft-ms 0` makes the model answer at once, so that
the question's write is on the critical path: the worst case). Added TTFB is the arm's percentile minus the
direct arm's in the same round; the table gives each round's figures and their median, so
that other work on a shared machine shows as spread between rounds rather than as a
difference between the arms. Raw results go to bench/results/echo_cost-ttft<N>ms.json.
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

from bench.run import (
    ROOT,
    SHORT,
    Parley,
    Plan,
    run_turns,
    start_model_server,
    start_parley,
    wait_quiet,
)
from bench.scenario import Scenario

RESULTS = ROOT / "bench" / "results"
"""Raw results go to echo_cost-ttft<N>ms.json here (a run replaces the last one with its first-token delay)."""


def start_parley_from(code: Path, work: Path, model: Any, label: str, scenario: Scenario) -> Parley:
    """A Parley process running the code in `code`, with one model: the scenario's."""
    config = (
        f'default_model = "{scenario.spec}"\nlocal_model = false\nlog_level = "warning"\n\n'
        f'[[models]]\nname = "{scenario.spec}"\nmodel = "{scenario.spec}"\nbase_url = "{model.url}/v1"\n'
    )
    return start_parley(work, model, Plan(quick=True), label, code=code, config_text=config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="a checkout of the code to compare against")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--ttft-ms", type=float, default=SHORT.ttft_ms,
                        help="the model's first-token delay; 0 puts the question's write on the critical path")
    args = parser.parse_args()
    scenario = SHORT.with_(ttft_ms=args.ttft_ms)

    work = Path(tempfile.mkdtemp(prefix="parley-echo-cost-"))
    model = start_model_server(work)
    servers = {
        "before": start_parley_from(args.before.resolve(), work, model, "before", scenario),
        "after": start_parley_from(ROOT, work, model, "after", scenario),
    }
    runs: list[dict[str, Any]] = []
    try:
        for round_ in range(args.rounds):
            for level in args.levels:
                arms = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
                direct = run_turns("direct", model, model, scenario, level, args.window, args.warmup, 30.0, work)
                row: dict[str, Any] = {"round": round_, "c": level, "direct": direct}
                for arm in arms:
                    wait_quiet(model, servers[arm])
                    row[arm] = run_turns("parley", servers[arm], model, scenario, level, args.window, args.warmup, 30.0, work)
                for arm in ("before", "after"):
                    for p in ("p50", "p99"):
                        row[f"{arm}_added_{p}"] = round(row[arm]["ttfb_ms"][p] - direct["ttfb_ms"][p], 3)
                runs.append(row)
                print(
                    f"round {round_} c={level}: added TTFB p50/p99 before {row['before_added_p50']}/"
                    f"{row['before_added_p99']} ms, after {row['after_added_p50']}/{row['after_added_p99']} ms; "
                    f"errors {row['before']['error_count']}/{row['after']['error_count']}; "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        for server in servers.values():
            server.stop()
        model.stop()

    summary = {}
    for level in args.levels:
        rows = [r for r in runs if r["c"] == level]
        summary[str(level)] = {
            key: statistics.median(r[key] for r in rows)
            for key in ("before_added_p50", "before_added_p99", "after_added_p50", "after_added_p99")
        }
    RESULTS.mkdir(parents=True, exist_ok=True)
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    raw = {"when": when, "scenario": scenario.spec, "runs": runs, "median": summary}
    (RESULTS / f"echo_cost-ttft{args.ttft_ms:g}ms.json").write_text(json.dumps(raw, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
