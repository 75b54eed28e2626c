"""The worker processes archspec starts itself yield the CPU while they wait (archspec/train/processes.py)."""
import os
import subprocess
import sys

from archspec.train import processes, search


def test_worker_threads_yield_unless_the_user_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert processes.worker_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert processes.worker_environment()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_search_jobs_start_their_workers_with_passive_threads(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    started = []

    class Worker:
        def __init__(self, argv, env):
            started.append((argv, env))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", Worker)
    assert search.spawn(["search", "space.yaml", "--jobs", "2"], 2) == 0
    assert len(started) == 2
    assert all(env["OMP_WAIT_POLICY"] == "PASSIVE" and "--worker" in argv for argv, env in started)


def test_local_launch_starts_its_workers_with_passive_threads(monkeypatch):
    from archspec.train import launch

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    seen = {}

    def run_path(path, run_name):  # MXNet's launch.py, which starts the workers with this process's environment
        seen["policy"], seen["argv"] = os.environ.get("OMP_WAIT_POLICY"), list(sys.argv)

    monkeypatch.setattr(launch.runpy, "run_path", run_path)
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    assert launch.main(["-n", "2", "-s", "1", "--launcher", "local", "--", "archspec", "train", "a.yaml"]) == 0
    assert seen["policy"] == "PASSIVE" and seen["argv"][-3:] == ["archspec", "train", "a.yaml"]
