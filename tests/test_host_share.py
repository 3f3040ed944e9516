"""Searches on one host size torch's threads to their share of its cores."""

import subprocess
import sys

import torch

from quadnas._search import host_share
from quadnas._search.host_share import HostShare


def test_live_searches_share_the_cores_and_a_dead_ones_file_is_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(host_share, "usable_cores", lambda: 4)
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / dead.stdout.strip()).touch()  # a search killed without cleaning up
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / str(other.pid)).touch()
        with HostShare(tmp_path) as share:
            assert share.workers() == 2
            assert not (tmp_path / dead.stdout.strip()).exists()
            assert share.size_threads() == 2 and torch.get_num_threads() == 2
            other.kill()
            other.wait()
            assert share.workers() == 1 and share.size_threads() == 4
        assert list(tmp_path.iterdir()) == [] and torch.get_num_threads() == 4
    finally:
        other.kill()
        torch.set_num_threads(before)


def test_a_share_never_raises_the_threads_it_was_given(tmp_path, monkeypatch):
    monkeypatch.setattr(host_share, "usable_cores", lambda: 8)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # e.g. OMP_NUM_THREADS=1
    try:
        with HostShare(tmp_path) as share:
            assert share.size_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_folder_that_cannot_be_written_leaves_the_search_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(host_share, "usable_cores", lambda: 4)
    blocker = tmp_path / "file"
    blocker.write_text("")  # a file where the folder should be: mkdir fails
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    try:
        with HostShare(blocker / "workers") as share:
            assert share.workers() == 1 and share.size_threads() == 4
    finally:
        torch.set_num_threads(before)
