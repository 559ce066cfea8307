"""What a tracking run records beside the metrics: the code's commit, the resolved
hyperparameters, and the training curves as a picture.

The git commit must never fail a run: CodePipeline hands CodeBuild a ZIP without `.git`, so the
CI's own variables are the fallback, then `unknown`.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from gtsrb.common import contract

REPO = Path(__file__).resolve().parents[1]
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it on the run page
GIT_DIRTY_TAG = "git_dirty"  # "true" when tracked files differed from the commit
CI_COMMIT_ENV = ("CODEBUILD_RESOLVED_SOURCE_VERSION", "GITHUB_SHA")  # set where there is no .git
CURVES_PNG = "training_curves.png"


def _git(*args: str, repo: Path = REPO) -> str | None:
    """A git command's output, or None without git or outside a work tree."""
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_tags(repo: Path = REPO) -> dict[str, str]:
    """The commit of the code that ran and whether the tree was dirty ('unknown' without .git)."""
    commit = _git("rev-parse", "HEAD", repo=repo)
    if commit is None:
        from_ci = next((os.environ[name] for name in CI_COMMIT_ENV if os.environ.get(name)), None)
        return {GIT_COMMIT_TAG: from_ci or "unknown", GIT_DIRTY_TAG: "unknown"}
    dirty = _git("status", "--porcelain", "--untracked-files=no", repo=repo)
    return {GIT_COMMIT_TAG: commit, GIT_DIRTY_TAG: "unknown" if dirty is None else str(bool(dirty)).lower()}


def resolved_hyperparameters(model_dir: Path) -> dict[str, str]:
    """Every hyperparameter the train step used: its hyperparameters.json (defaults, preset,
    overrides and the epochs fitted to max_train_images); empty when the model has none."""
    saved = model_dir / contract.HYPERPARAMETERS_FILE
    values = json.loads(saved.read_text()) if saved.is_file() else {}
    return {key: str(value) for key, value in values.items()}


def curves_png(history: list[dict], out: Path) -> Path | None:
    """Loss and accuracies per epoch, one PNG (None without a history)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    loss_ax.plot(epochs, [row.get("train_loss") for row in history], marker="o", label="train_loss")
    for key in ("train_acc", "val_acc"):
        acc_ax.plot(epochs, [row.get(key) for row in history], marker="o", label=key)
    for ax, title in ((loss_ax, "training loss"), (acc_ax, "accuracy")):
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
