"""Kill-and-resume: a pipeline process killed mid-run and restarted writes exactly what an uninterrupted run writes.

The μ² five-stage pipeline runs as its command-line tool (``python -m rrg_lite.prompting.reasoning``) against a
chat-completions server on 127.0.0.1 (started here, answering with the offline stand-in, with some HTTP 500s).
The first process is SIGKILLed once part of its calls are in its cache; a second process finishes the job.
"""
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from rrg_lite.prompting.jsonl import write_jsonl
from rrg_lite.prompting.reasoning import main as reasoning_main
from rrg_lite.prompting.server import ChatCompletionServer
from rrg_lite.prompting.standin import OfflineStandInLLM

ROOT = Path(__file__).resolve().parents[1]


def make_records(n):
    records = []
    for i in range(n):
        size = 6 + i
        records.append({
            "study_id": f"study{i:03d}", "image": f"volumes/study{i:03d}.nii.gz",
            "report": f"Findings: A {size} mm nodule is seen in the lung. A small effusion is seen in the pleura. "
                      f"The liver is normal. Impression: Lung nodule, {size} mm. Pleural effusion.",
            "findings": [{"label": "Lung nodule", "organ": "lung", "size_mm": size, "hypermetabolic": i % 3 == 0,
                          "suv": 2.0 + i / 10},
                         {"label": "Pleural effusion", "organ": "pleura"}],
            "normal": ["liver", "spleen"],
        })
    return records


def flaky(request, seen):
    return "http_500" if seen == 0 and int(request.key()[:8], 16) % 10 == 0 else "ok"


def cache_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0


def outputs(out: Path) -> dict[str, str]:
    files = {p.name: p.read_text() for p in sorted(out.glob("*.jsonl"))}
    stats = json.loads((out / "stats.json").read_text())
    stats.pop("llm")  # counts of calls/cache hits differ between a fresh and a resumed run, by design
    files["stats.json"] = json.dumps(stats, sort_keys=True)
    return files


def cli_args(records: Path, out: Path, url: str) -> list[str]:
    return ["--records", str(records), "--out", str(out), "--base-url", url, "--model", "standin",
            "--concurrency", "2", "--retries", "3", "--timeout", "10", "--backoff", "0.01"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_killed_pipeline_resumes_to_identical_output(tmp_path):
    records = make_records(16)
    write_jsonl(tmp_path / "records.jsonl", [{k: r[k] for k in ("study_id", "image", "report")} for r in records])
    standin = OfflineStandInLLM(records)
    # One endpoint for all three servers: the endpoint is part of the cache key (and of the provenance it records),
    # so the restarted run must talk to the same address to find its cached calls.
    port = free_port()

    # Reference: one uninterrupted run, in-process, with its own cache.
    with ChatCompletionServer(standin.chat, flaky, port=port) as server:
        reasoning_main(cli_args(tmp_path / "records.jsonl", tmp_path / "ref", server.url))
        unique_calls = cache_rows(tmp_path / "ref" / "llm_cache.sqlite")
    reference = outputs(tmp_path / "ref")
    assert unique_calls > 150 and json.loads(reference["stats.json"])["report_thinking"]["out"] == 16

    # Run 1: a separate process, killed with SIGKILL once about a third of the calls are cached.
    out, cache = tmp_path / "resumed", tmp_path / "resumed" / "llm_cache.sqlite"
    cmd = [sys.executable, "-m", "rrg_lite.prompting.reasoning", *cli_args(tmp_path / "records.jsonl", out, "")]
    with ChatCompletionServer(standin.chat, flaky, delay_s=0.01, port=port) as server:
        cmd[cmd.index("--base-url") + 1] = server.url
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while cache_rows(cache) < unique_calls // 3 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, f"pipeline ended before it could be killed: {proc.stderr.read()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stderr.close()
    at_kill = cache_rows(cache)
    assert 0 < at_kill < unique_calls
    assert not (out / "reasoning.jsonl").exists()  # the final stage never ran

    # Run 2: restart; it must only ask what was not finished, and write the same files.
    with ChatCompletionServer(standin.chat, flaky, port=port) as server:
        subprocess.run([*cmd[:cmd.index("--base-url") + 1], server.url, *cmd[cmd.index("--base-url") + 2:]],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        answered_ok = server.calls("ok")
    assert answered_ok == unique_calls - at_kill  # no finished call repeated, none lost
    assert cache_rows(cache) == unique_calls
    resumed = outputs(out)
    assert resumed == reference
    final = [json.loads(line) for line in resumed["reasoning.jsonl"].splitlines()]
    ids = [r["study_id"] for r in final]
    assert ids == sorted(set(ids)) and len(ids) == 16  # no duplicate, no missing study
