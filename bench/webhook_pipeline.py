#!/usr/bin/env python3
"""Webhook -> five-step flow, Flowlink topologies and n8n side by side in one invocation.

The flow is flows/lead-intake.json (webhook -> set, choice, set, two http.request calls to
the peers' fake CRM/robot, set), the same lead-intake workflow as ../shared/bench/peers/
n8n_workflow.json. Every system is driven by the peers' own `suite.py` (warm-up, `seq`, then
closed loops at c1/c8/c32 for --duration s each, drained and counted at the fake CRM), so the
figures are comparable row for row: completed runs/s (distinct leads that reached the fake
CRM and robot / time from the phase start to the last hit), acknowledgement p50/p99 (what the
load generator saw), CPU % of every monitored process tree and "other CPU %" (host CPU used by
processes that are neither monitored nor the load generator: other jobs on the machine).

Topologies (each with a fresh FLOWLINK_HOME):

- `sqlite`:  one `flowlink serve` (SQLite, dispatch on);
- `pg-w1`:   PostgreSQL, one API (`FLOWLINK_DISPATCH=0 flowlink serve`) + one `flowlink worker --nice 10`;
- `pg-w2`:   the same with two workers.

PostgreSQL is a private cluster started here (initdb in a temporary folder, run as the
`postgres` user when this runs as root) so its CPU is measured as the `db` process tree.
Modes: `async` (respond "immediately": 202 once the event is committed) and `sync` (respond
"last": the flow's output); n8n's two workflows are the same two modes.

    python bench/webhook_pipeline.py --quick                    # smoke: 3 s phases, sqlite only
    python bench/webhook_pipeline.py --n8n                      # the full comparison (~25 min)
    python bench/webhook_pipeline.py --topologies sqlite pg-w2 --modes async --duration 10

Results: --out (JSONL, one row per phase and system, as suite.py writes them) and a markdown
summary on stdout (also written next to --out as .md).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import httpx

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(os.environ.get("FLOWLINK_PEERS", ROOT.parent / "shared" / "bench" / "peers"))
PASSWORD = "bench-admin-password"
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
TOPOLOGIES = {"sqlite": 0, "pg-w1": 1, "pg-w2": 2}  # name -> worker processes (0: the API runs the flows)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 90.0, proc: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers with anything but a 5xx."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited ({proc.returncode}) before {url} answered")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen, timeout: float = 40.0) -> None:
    """SIGTERM one process we started, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class PrivatePostgres:
    """A throw-away PostgreSQL cluster on a free port (its postmaster is one process tree)."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="flowlink-bench-pg-"))
        self.port = free_port()
        self.pid: int | None = None
        self._user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> None:
        """initdb + start with settings fit for a benchmark box (fsync kept on: real commits)."""
        if self._user:
            shutil.chown(self.dir, "postgres")
        subprocess.run([*self._user, str(PG_BIN / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                        "--auth=trust", "-E", "UTF8"], check=True, stdout=subprocess.DEVNULL)
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=256MB"
        subprocess.run([*self._user, str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-o", opts, "-w",
                        "-l", str(self.dir / "pg.log"), "start"], check=True, stdout=subprocess.DEVNULL)
        self.pid = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])

    def create_database(self, name: str) -> str:
        """A fresh database; its SQLAlchemy URL."""
        subprocess.run([*self._user, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                       check=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the cluster and remove its files."""
        if self.pid is not None:
            subprocess.run([*self._user, str(PG_BIN / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "stop"],
                           check=False, stdout=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def fake_endpoints() -> Iterator[str]:
    """The peers' fake CRM/robot on a free port (for the scripts that need no n8n); its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(PEERS / "fake_endpoints.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/stats", proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()


@contextlib.contextmanager
def flowlink(topology: str, fake: str, pg: PrivatePostgres | None, env_extra: dict[str, str],
             worker_nice: int = 10, defer_workers: bool = False) -> Iterator[dict[str, Any]]:
    """Start one topology with the lead flow active at /hooks/lead-sync and /hooks/lead-async.

    With `defer_workers` no worker is started: the caller starts them with the yielded
    `start_workers(count)` (to fill the inbox first)."""
    workers = TOPOLOGIES[topology]
    home = tempfile.mkdtemp(prefix="flowlink-bench-")
    env = {**os.environ, "FLOWLINK_HOME": home, "FLOWLINK_ADMIN_PASSWORD": PASSWORD, "FLOWLINK_LOG_LEVEL": "warning", **env_extra}
    env.pop("FLOWLINK_DATABASE_URL", None)
    pids: dict[str, int] = {}
    if workers:
        assert pg is not None
        env["FLOWLINK_DATABASE_URL"] = pg.create_database(f"bench_{topology.replace('-', '_')}_{int(time.time())}")
        pids["db"] = pg.pid
    procs: list[subprocess.Popen] = []
    port = free_port()
    try:
        api_env = {**env, "FLOWLINK_DISPATCH": "0"} if workers else env
        server = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--port", str(port), "--log-level", "warning"],
                                  cwd=ROOT, env=api_env)
        procs.append(server)
        pids["flowlink_api"] = server.pid
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/api/health", proc=server)

        def start_workers(count: int) -> None:
            for _ in range(count):
                worker = subprocess.Popen([sys.executable, "-m", "engine.cli", "worker", "--no-schedules", "--nice", str(worker_nice)],
                                          cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
                procs.append(worker)
                pids[f"flowlink_worker{sum(name.startswith('flowlink_worker') for name in pids) + 1}"] = worker.pid

        if not defer_workers:
            start_workers(workers)
        with httpx.Client(base_url=base, timeout=30) as api:
            token = api.post("/api/auth/login", json={"username": "admin", "password": PASSWORD}).raise_for_status().json()["token"]
            api.headers["Authorization"] = f"Bearer {token}"
            template = json.loads((ROOT / "flows" / "lead-intake.json").read_text())
            for mode, respond in (("sync", "last"), ("async", "immediately")):
                definition = copy.deepcopy(template)
                definition["id"] = f"lead-intake-{mode}"
                definition["trigger"].update(path=f"lead-{mode}", respond=respond)
                definition["vars"].update(crm_url=f"{fake}/crm/leads", robot_url=f"{fake}/robot/send")
                api.post("/api/flows", json={"definition": definition}).raise_for_status()
                api.post(f"/api/flows/{definition['id']}/activate").raise_for_status()
        time.sleep(3)  # the webhook cache refreshes within FLOWLINK_WEBHOOK_CACHE_TTL; workers settle
        yield {"base": base, "pids": pids, "start_workers": start_workers, "database_url": env.get("FLOWLINK_DATABASE_URL") or f"sqlite:///{home}/flowlink.db"}
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(home, ignore_errors=True)


def run_suite(args: argparse.Namespace, url: str, label: str, pids: dict[str, int], fake: str, extra: str) -> None:
    """The peers' suite.py against one URL; rows are appended to args.out."""
    cmd = [sys.executable, str(PEERS / "suite.py"), "--url", url, "--label", label, "--fake", fake,
           "--seq", str(args.seq), "--warmup", str(args.warmup), "--concurrency", args.concurrency,
           "--duration", str(args.duration), "--out", str(args.out), "--extra", extra, "--drain-quiet", "10"]
    if label.endswith("-sync"):
        cmd += ["--expect", "crm_id"]
    for name, pid in pids.items():
        cmd += ["--pid", f"{name}={pid}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def run_n8n(args: argparse.Namespace, fake_port: int) -> None:
    """The peers' run_n8n.sh (installs n8n 2.8.4 into /tmp/peerbench once) with the same knobs."""
    results = Path(tempfile.mkdtemp(prefix="n8n-results-"))
    env = {**os.environ, "FAKE_PORT": str(fake_port), "DURATION": str(args.duration), "CONCURRENCY": args.concurrency,
           "SEQ": str(args.seq), "WARMUP": str(args.warmup), "RESULTS": str(results), "SAVE_MODES": args.n8n_save,
           "MODES": " ".join(args.modes)}
    subprocess.run(["bash", str(PEERS / "run_n8n.sh")], env=env, check=True, stdout=subprocess.DEVNULL)
    rows = (results / "results.jsonl").read_text() if (results / "results.jsonl").exists() else ""
    with open(args.out, "a") as out:
        out.write(rows)
    shutil.rmtree(results, ignore_errors=True)


# ---------------------------------------------------------------------------------------- report


def _system(row: dict[str, Any]) -> str:
    return row["label"].rsplit("-", 1)[0] if row["label"].startswith("flowlink") else row["label"]


def _mode(row: dict[str, Any]) -> str:
    label = row["label"]
    return "sync" if "-sync" in label else "async"


def _cpu(row: dict[str, Any], prefix: str) -> float:
    return round(sum(p.get("cpu_pct") or 0 for n, p in row["processes"].items() if n.startswith(prefix)), 1)


def _cpu_per_run(row: dict[str, Any]) -> float | str:
    """CPU ms of the system under test (Flowlink processes + its PostgreSQL, or the peer) per request
    answered in the load window: robust to a shared machine, where runs/s is not. In async mode
    runs still finishing after the window are not in it, so this reads low there for a backlog."""
    cpu = _cpu(row, "flowlink") + _cpu(row, "db") + _cpu(row, "peer")
    if not row.get("ok"):
        return ""
    return round(10 * cpu * row["duration_s"] / row["ok"], 2)


def summary(rows: list[dict[str, Any]]) -> str:
    """Markdown: every phase of every system, then Flowlink / n8n ratios of completed runs/s."""
    lines = ["| system | mode | phase | completed runs/s | ack req/s | ack p50 ms | ack p99 ms | errors | lost | lag s "
             "| flowlink CPU % | CPU ms/run | db CPU % | peer CPU % | other CPU % |", "|" + "---|" * 15]
    for r in rows:
        lines.append(f"| {_system(r)} | {_mode(r)} | {r['phase']} | {r['completed_per_s']} | {r['ok_rps']} | {r['lat_ms']['p50']} "
                     f"| {r['lat_ms']['p99']} | {r['errors']} | {r['lost']} | {r['completion_lag_s']} | {_cpu(r, 'flowlink')} "
                     f"| {_cpu_per_run(r)} | {_cpu(r, 'db')} | {_cpu(r, 'peer')} | {r['other_cpu_pct']} |")
    peers = {(_mode(r), r["phase"]): r for r in rows if r["label"].startswith("n8n")}
    if peers:
        lines += ["", "Completed runs/s as a multiple of n8n's (same mode and phase; n8n save mode: "
                  + ", ".join(sorted({r['label'].rsplit('_', 1)[-1] for r in rows if r['label'].startswith('n8n')})) + ")", "",
                  "| system | mode | phase | Flowlink runs/s | n8n runs/s | ratio |", "|---|---|---|---|---|---|"]
        for r in rows:
            peer = peers.get((_mode(r), r["phase"]))
            if r["label"].startswith("flowlink") and peer and peer["completed_per_s"]:
                lines.append(f"| {_system(r)} | {_mode(r)} | {r['phase']} | {r['completed_per_s']} | {peer['completed_per_s']} "
                             f"| {r['completed_per_s'] / peer['completed_per_s']:.1f}x |")
    others = [r["other_cpu_pct"] for r in rows if r.get("other_cpu_pct") is not None]
    if others:
        lines += ["", f"Other CPU % over all phases: median {statistics.median(others):.0f}, max {max(others):.0f} "
                  "(100 = one of the 2 cores busy with other jobs)."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topologies", nargs="+", default=list(TOPOLOGIES), choices=list(TOPOLOGIES))
    ap.add_argument("--modes", nargs="+", default=["async", "sync"], choices=["async", "sync"])
    ap.add_argument("--split-modes", nargs="+", default=["async", "sync"], choices=["async", "sync"],
                    help="modes for the PostgreSQL API + worker topologies (sync there: the worker's finished run "
                         "reaches the waiting API through PostgreSQL NOTIFY)")
    ap.add_argument("--duration", type=float, default=20, help="seconds per closed-loop phase (the peers used 20)")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--seq", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--n8n", action="store_true", help="also run n8n 2.8.4 (../shared/bench/peers/run_n8n.sh) last")
    ap.add_argument("--n8n-save", default="all", help="n8n EXECUTIONS_DATA_SAVE_ON_SUCCESS value(s), as SAVE_MODES")
    ap.add_argument("--quick", action="store_true", help="3 s phases, 50 warm-up/seq requests, sqlite only")
    ap.add_argument("--worker-nice", type=int, default=10,
                    help="`flowlink worker --nice` for the split topologies (the API keeps its priority, so acks stay fast)")
    ap.add_argument("--env", action="append", default=[], metavar="K=V", help="extra environment for Flowlink processes")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / f"pipeline-{time.strftime('%Y%m%d-%H%M')}.jsonl")
    ap.add_argument("--report", type=Path, nargs="*", help="only print the summary of existing JSONL files")
    args = ap.parse_args()
    if args.report:
        print(summary([json.loads(line) for f in args.report for line in f.read_text().splitlines() if line.strip()]))
        return 0
    if args.quick:
        args.duration, args.seq, args.warmup = 3, 50, 50
        if args.topologies == list(TOPOLOGIES):
            args.topologies = ["sqlite"]
    if not (PEERS / "suite.py").exists():
        print(f"{PEERS} has no suite.py/load.py/fake_endpoints.py: nothing to run against", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    env_extra = dict(item.split("=", 1) for item in args.env)
    fake_port = free_port()
    fake = f"http://127.0.0.1:{fake_port}"
    fake_proc = subprocess.Popen([sys.executable, str(PEERS / "fake_endpoints.py"), "--port", str(fake_port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pg = PrivatePostgres() if any(TOPOLOGIES[t] for t in args.topologies) else None
    started = time.time()
    try:
        wait_http(f"{fake}/healthz")
        if pg is not None:
            pg.start()
        for topology in args.topologies:
            print(f"[pipeline] {time.strftime('%H:%M:%S')} flowlink {topology}", file=sys.stderr, flush=True)
            with flowlink(topology, fake, pg, env_extra, args.worker_nice) as system:
                pids = {**system["pids"], "fake": fake_proc.pid}
                for mode in (args.split_modes if TOPOLOGIES[topology] else args.modes):
                    run_suite(args, f"{system['base']}/hooks/lead-{mode}", f"flowlink-{topology}-{mode}", pids, fake,
                              f"flowlink {topology}, {' '.join(args.env)}")
        if args.n8n:
            print(f"[pipeline] {time.strftime('%H:%M:%S')} n8n", file=sys.stderr, flush=True)
            run_n8n(args, fake_port)
    finally:
        stop(fake_proc)
        if pg is not None:
            pg.stop()
    rows = [json.loads(line) for line in args.out.read_text().splitlines() if line.strip() and json.loads(line)["ts"] >= started]
    text = summary(rows)
    args.out.with_suffix(".md").write_text(f"# webhook_pipeline {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}\n\n"
                                           f"`{' '.join(sys.argv)}`\n\n{text}\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
