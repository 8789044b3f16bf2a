"""Process settings of the service processes: the start-up heap frozen, worker priority lowered."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout.strip()


def test_freezing_moves_start_up_objects_out_of_garbage_collection() -> None:
    out = run_python("import gc, api.main; from engine.process import freeze_startup_heap; "
                     "n = freeze_startup_heap(); print(n, len(gc.get_objects()))")
    frozen, tracked = map(int, out.split())
    assert frozen > 50_000  # FastAPI, Prefect, SQLAlchemy, the connectors
    assert tracked < frozen // 10  # a full collection now walks only what is created afterwards


def test_lower_priority_makes_the_process_nicer_and_zero_leaves_it() -> None:
    out = run_python("import os; from engine.process import lower_priority; "
                     "start = os.nice(0); print(start, lower_priority(0), lower_priority(5))")
    start, unchanged, lowered = map(int, out.split())
    assert unchanged == start
    assert lowered == min(19, start + 5)


def test_worker_nice_option_is_applied(tmp_path: Path) -> None:
    """`flowlink worker --nice 7` runs at niceness +7 (read from /proc while it runs)."""
    env = {**os.environ, "FLOWLINK_HOME": str(tmp_path), "FLOWLINK_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "worker", "--nice", "7", "--no-schedules"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        while "running (max" not in line:
            line = proc.stdout.readline()
            assert line, "worker exited early"
        nice = int(Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[16])
        assert nice == min(19, os.nice(0) + 7)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
