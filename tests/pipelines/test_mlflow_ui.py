"""`make ui`: MLflow's UI on the one store, checked in a real headless browser (Debian chromium).

The UI is a JavaScript application: only a browser shows what a person sees. The test logs a run
through the registry, starts `python -m pipelines.local.ui` as `make ui` does, and reads the pages that
chromium rendered: the run (its name, resolved hyperparameters, data hash) and the registered model.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import graph
from pipelines.local import mlflow_registry as registry
from testkit.pipelines import REPO_ROOT, answers_200, fake_submission
from testkit.serve import free_port

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium")
# Debian's chromium, as root, on a machine without network (docs: /usr/share/doc/chromium).
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=20000", "--window-size=1400,1000")


def rendered(url: str, profile: Path) -> str:
    """The DOM chromium built for `url` after running its scripts."""
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=180)
    return done.stdout


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)")
def test_make_ui_shows_the_run_and_the_registered_model_in_a_browser(tmp_path: Path) -> None:
    work = tmp_path / "runs" / "demo"
    registered = registry.register(work, fake_submission(tmp_path))
    run = registry.open_client(work).get_run(registered.run_id)
    port = free_port()
    argv = [sys.executable, "-m", "pipelines.local.ui", "--work", str(work), "--port", str(port)]
    server = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        if not answers_200(base, 180, alive=lambda: server.poll() is None):
            server.kill()
            pytest.fail(f"the MLflow UI did not answer at {base}: {server.communicate()[0][-3000:]}")
        page = rendered(f"{base}/#/experiments/{run.info.experiment_id}/runs/{registered.run_id}", tmp_path / "chrome")
        assert "fake-run" in page and registry.DATA_HASH_TAG in page and "warmup_epochs" in page, page[-3000:]
        models = rendered(f"{base}/#/models/{graph.MODEL_PACKAGE_GROUP}", tmp_path / "chrome")
        assert graph.MODEL_PACKAGE_GROUP in models and "Version 1" in models, models[-3000:]
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_make_ui_without_a_store_says_run_make_demo(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines.local.ui", "--work", str(tmp_path / "runs" / "demo")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "no MLflow store at sqlite:///" in done.stderr and "make demo" in done.stderr
