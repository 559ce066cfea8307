"""Your own data end to end: a 3-class folder set made here goes through the real `make demo`
command (python -m pipelines.local --data DIR), the registry, `make predict` and `make serve`,
and every one of them answers with the folder names as classes."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gtsrb.common import contract
from gtsrb.serve import protocol
from pipelines import graph
from pipelines.local import mlflow_registry as registry
from testkit.prepare import write_folders
from testkit.serve import running_server

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
NAMES = ["blue_circle", "green_square", "red_triangle"]  # sorted, as the folders list them


@pytest.fixture(scope="module")
def own_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """40 images per class, no test/ folder (prepare holds out a stratified 20%), 10 epochs of batch 16 (6 steps each)."""
    root = tmp_path_factory.mktemp("own")
    data = write_folders(root / "signs", NAMES, per_class=40, ext=".jpg")
    work = root / "work"
    argv = [sys.executable, "-m", "pipelines.local", "--work", str(work), "--data", str(data),
            "--threshold", "0.8", "--hp", "epochs=10", "batch_size=16"]
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    print(result.stdout[-4000:], result.stderr[-4000:], sep="\n")
    return data, work, result


def test_the_demo_command_trains_on_the_folder_classes(own_run) -> None:
    data, work, result = own_run
    assert result.returncode == 0, result.stderr
    manifest = json.loads((work / "prepare" / contract.MANIFEST_OUTPUT / contract.MANIFEST_FILE).read_text())
    assert manifest["layout"] == "folders" and manifest["class_names"] == NAMES
    assert manifest["counts"]["test"]["per_class"] == [8, 8, 8]
    assert json.loads((work / "train" / "model" / contract.CLASSES_FILE).read_text()) == NAMES
    report = json.loads((work / "evaluation" / contract.EVALUATION_FILE).read_text())
    details = report[contract.EVALUATION_DETAILS_KEY]
    assert details["num_classes"] == 3 and details["records"] == 24 and details["unscored_classes"] == []
    assert len(report[contract.QUALITY_METRICS_KEY]["confusion_matrix"]) == 3
    assert contract.json_get(report, contract.ACCURACY_JSON_PATH) >= 0.8
    (version,) = registry.find_versions(work)
    assert version.tags["num_classes"] == "3" and version.tags["class_names"] == ", ".join(NAMES)


def test_predict_and_serve_answer_with_the_folder_names(own_run, tmp_path: Path) -> None:
    data, work, result = own_run
    assert result.returncode == 0, result.stderr
    # the registered version, as `make serve MODEL=...` resolves it on the host for the server
    model = registry.resolve(f"models:/{graph.MODEL_PACKAGE_GROUP}/1", work)
    out = tmp_path / "predictions.csv"
    done = subprocess.run([sys.executable, "-m", "gtsrb.serve.predict", str(data / "train"), "--model", str(model),
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 120 and {r["class_name"] for r in rows} <= set(NAMES)
    right = sum(Path(r["file"]).parent.name == r["class_name"] for r in rows)
    assert right / len(rows) >= 0.8, right
    image = data / "train" / "red_triangle" / "img_000.jpg"
    with running_server(model, tmp_path / "server.log") as server:
        answer = server.post(image.read_bytes(), "image/jpeg")
    assert answer.status_code == 200, answer.text
    predictions = protocol.parse_answer(answer.content, len(NAMES))
    assert len(predictions) == 3  # top_k defaults to min(5, classes)
    assert [p["class_name"] for p in predictions] == [NAMES[p["class_id"]] for p in predictions]
