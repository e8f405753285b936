"""kill -9 in the middle of a paid run, then run again: no answered request is asked twice
(only the ones in flight at the kill can be), nothing answered is lost, no row is written twice.
The server is a separate process that logs every request it gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from factory_kit.synth.journal import Journal

HERE = Path(__file__).resolve().parent
CONCURRENCY = 3
TOPICS = 16


def _wait_for(pred, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not pred():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kill_9_mid_run_resumes_without_repeating_paid_calls(project, tmp_path):
    port_file, log = tmp_path / "port", tmp_path / "requests.log"
    server = subprocess.Popen([sys.executable, str(HERE / "fakeserver.py"), str(port_file), str(log), "0.25"])
    try:
        _wait_for(port_file.exists, 20, "the fake server")
        url = f"http://127.0.0.1:{port_file.read_text()}/v1"
        topics = project / "topics.txt"
        topics.write_text("\n".join(f"专题{i}" for i in range(TOPICS)) + "\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "factory_kit.cli.main", "synth", "topics", str(topics), "--name", "k",
               "--base-url", url, "--concurrency", str(CONCURRENCY), "--count", "2", "--json"]
        env = {**os.environ, "FACTORY_KIT_PROJECT": str(project), "FACTORY_KIT_PROGRESS": "0"}
        first = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        journal = project / "synth" / "journal.jsonl"
        _wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 5, 30, "5 answers")
        first.kill()  # SIGKILL: no cleanup of any kind
        first.wait(10)
        time.sleep(0.5)  # requests that reached the server just before the kill get logged
        asked_first = len(log.read_text().splitlines())
        answered_first = len(Journal(journal))  # whole lines only (a torn one is not an answer)
        assert answered_first < TOPICS, "the run finished before the kill; slow the server down"
        assert not (project / "data" / "k.jsonl").exists()

        second = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 0, second.stderr
        report = json.loads(second.stdout)
        assert report["requests"]["cached"] >= answered_first  # every answer paid before the kill reused
        assert report["requests"]["sent"] == TOPICS - report["requests"]["cached"]
        per_key = Counter(log.read_text().split())
        assert len(per_key) == TOPICS
        repeated = [k for k, n in per_key.items() if n > 1]
        assert all(per_key[k] == 2 for k in repeated)
        assert len(repeated) == asked_first - answered_first <= CONCURRENCY  # only those in flight at the kill
        rows = [json.loads(l) for l in (project / "data" / "k.jsonl").read_text().splitlines()]
        assert len(rows) == TOPICS * 2 == len({r["instruction"] for r in rows}) == len({r["source_row"] for r in rows})
        keys = [json.loads(l)["key"] for l in journal.read_text().splitlines() if l.strip()]
        assert len(keys) == len(set(keys)) == TOPICS
    finally:
        server.kill()
        server.wait(10)


def test_sigterm_stops_cleanly_and_sends_nothing_queued(project, tmp_path):
    """SIGTERM (a container stopping) acts like Ctrl-C: one line, exit 130, requests in flight
    finish into the journal, nothing queued is sent afterwards."""
    port_file, log = tmp_path / "port", tmp_path / "requests.log"
    server = subprocess.Popen([sys.executable, str(HERE / "fakeserver.py"), str(port_file), str(log), "0.3"])
    try:
        _wait_for(port_file.exists, 20, "the fake server")
        url = f"http://127.0.0.1:{port_file.read_text()}/v1"
        topics = project / "topics.txt"
        topics.write_text("\n".join(f"专题{i}" for i in range(TOPICS)) + "\n", encoding="utf-8")
        cmd = [sys.executable, "-m", "factory_kit.cli.main", "synth", "topics", str(topics), "--name", "t",
               "--base-url", url, "--concurrency", "2", "--count", "1"]
        env = {**os.environ, "FACTORY_KIT_PROJECT": str(project), "FACTORY_KIT_PROGRESS": "0"}
        proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        journal = project / "synth" / "journal.jsonl"
        _wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) >= 2, 30, "2 answers")
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
        assert proc.returncode == 130 and "run the same command again to resume" in err and "Traceback" not in err
        asked = len(log.read_text().splitlines())
        time.sleep(0.8)
        assert len(log.read_text().splitlines()) == asked < TOPICS  # nothing more after the stop
        assert len(journal.read_text().splitlines()) == asked  # what was in flight finished into the journal
    finally:
        server.kill()
        server.wait(10)
