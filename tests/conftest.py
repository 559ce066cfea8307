"""Session fixtures shared by every test area: real sample, generated demo sets, prepared data.

Test helpers live in the package `tests/testkit/`, one module per area, imported as
`from testkit.train import ...` (pyproject puts tests/ on pytest's pythonpath). The test folders
are not packages, so every test module has a name unique across folders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "data" / "gtsrb-sample"


@pytest.fixture(autouse=True)
def _default_mlflow_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test uses the default store beside its WORK, never the MLFLOW_TRACKING_URI of the
    shell that runs the tests (a test that wants one sets it)."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The real GTSRB sample beside the project (official layout), or skip."""
    if not (SAMPLE / "GTSRB" / "Final_Training" / "Images").is_dir():
        pytest.skip(f"the real GTSRB sample is not at {SAMPLE} (it lives beside the project, not in it)")
    return SAMPLE


@pytest.fixture(scope="session")
def demo_official(tmp_path_factory) -> Path:
    """A small generated demo set in the official layout."""
    from gtsrb.demo_data.writer import generate

    return generate(tmp_path_factory.mktemp("demo-official"), layout="official", seed=1, tracks_per_class=3, frames_per_track=6,
                    test_per_class=4)


@pytest.fixture(scope="session")
def demo_kaggle(tmp_path_factory) -> Path:
    """A small generated demo set in the Kaggle layout."""
    from gtsrb.demo_data.writer import generate

    return generate(tmp_path_factory.mktemp("demo-kaggle"), layout="kaggle", seed=2, tracks_per_class=2, frames_per_track=4,
                    test_per_class=2)


@pytest.fixture(scope="session")
def prepared_demo(tmp_path_factory, demo_official) -> Path:
    """The prepare step's output folder (train/ validation/ test/ manifest/) of demo_official at 32 px."""
    from gtsrb.prepare.step import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared-demo")
    prepare(demo_official, out, PrepareOptions(image_size=32, validation_fraction=0.34))
    return out


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory, sample_dir) -> Path:
    """The prepare step's output folder of the real GTSRB sample at 32 px (skips without it)."""
    from gtsrb.prepare.step import PrepareOptions, prepare

    out = tmp_path_factory.mktemp("prepared-sample")
    prepare(sample_dir, out, PrepareOptions(image_size=32))
    return out


@pytest.fixture(scope="session", params=["prepared_demo", "prepared_sample"])
def prepared(request) -> Path:
    """Each prepared folder in turn: generated demo data, then the real sample."""
    return request.getfixturevalue(request.param)
