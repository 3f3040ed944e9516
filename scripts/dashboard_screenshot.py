"""optuna-dashboard on a real quadnas study: query its HTTP API, then screenshot it with headless Chromium.

Runs a short search (`--trials`, vpu 30 ms by default), serves it with `quadnas dashboard`, checks
through the dashboard's own API that the objectives are named and every trial carries the
`feasible` flag, and writes two screenshots (the study's history, a trial with its attributes) and a JSON
summary under docs/figures/. Needs optuna-dashboard (`pip install 'quadnas[dashboard]'`) and a
Chromium (Debian: `apt install chromium`).

    python scripts/dashboard_screenshot.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

STUDY = "dashboard-demo"
PAGES = {"history": "", "trials": "/trials"}  # the study's overview and its trials with their attributes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def wait_for(url: str, server: subprocess.Popen[bytes], seconds: float = 60) -> Any:
    """The JSON at `url` once the server answers; an error if it exits or stays silent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"error: quadnas dashboard exited with code {server.returncode}")
        try:
            return get_json(url)
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"error: the dashboard did not answer at {url} within {seconds:g} s")


def screenshot(browser: str, url: str, out: Path) -> None:
    """A PNG of `url` after its scripts have rendered (virtual time lets the charts finish)."""
    subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1500,1000",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="vpu")
    parser.add_argument("--budget", default="30ms")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out-dir", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("error: no Chromium found: install it (Debian: apt install chromium)")
    quadnas = [sys.executable, "-m", "quadnas"]
    with tempfile.TemporaryDirectory(prefix="quadnas-dashboard-") as tmp:
        runs = Path(tmp) / "runs"
        search = [*quadnas, "search", "--device", args.device, "--budget", args.budget, "--trials", str(args.trials)]
        subprocess.run([*search, "--study", STUDY, "--runs-dir", str(runs)], check=True, stdout=subprocess.DEVNULL)
        port = free_port()
        server = subprocess.Popen(
            [*quadnas, "dashboard", "--runs-dir", str(runs), "--study", STUDY, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            studies = wait_for(f"{base}/api/studies", server)["study_summaries"]
            study_id = next(s["study_id"] for s in studies if s["study_name"] == STUDY)
            detail = get_json(f"{base}/api/studies/{study_id}")
            for name, page in PAGES.items():
                url = f"{base}/dashboard/studies/{study_id}{page}"
                screenshot(browser, url, args.out_dir / f"dashboard-{name}.png")
        finally:
            server.terminate()
            server.wait(timeout=30)
    attrs = [{a["key"]: a["value"] for a in t["user_attrs"]} for t in detail["trials"]]
    summary = {
        "command": f"python scripts/dashboard_screenshot.py --trials {args.trials}",
        "study": STUDY,
        "objective_names": detail.get("objective_names"),
        "trial_user_attrs": [a["key"] for a in detail["union_user_attrs"]],
        "trials": len(attrs),
        "feasible": sum(a.get("feasible") == "True" for a in attrs),
        "infeasible": sum(a.get("feasible") == "False" for a in attrs),
        "screenshots": [f"dashboard-{name}.png" for name in PAGES],
    }
    (args.out_dir / "dashboard.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    ok = summary["objective_names"] and all("feasible" in a for a in attrs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
