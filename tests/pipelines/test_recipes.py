"""Recipes in files: the shipped presets equal the dataclass, `make demo RECIPE=` reads YAML or
JSON, `HP=` wins over the file, and a bad recipe is one sentence naming the file and the key."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gtsrb.common.failure import StepError
from gtsrb.train.hyperparameters import PRESETS, Hyperparameters
from pipelines import recipes
from pipelines.local import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("preset", PRESETS)
def test_the_shipped_recipes_are_the_presets_written_out(preset: str) -> None:
    shipped = recipes.preset_file(preset)
    assert shipped.read_text() == recipes.render(preset), f"run `make recipes`: {shipped} differs from the {preset} preset"
    assert Hyperparameters.from_mapping(recipes.load(shipped)) == Hyperparameters.for_preset(preset)


def test_a_json_recipe_with_hp_on_top(tmp_path: Path) -> None:
    recipe = tmp_path / "mine.json"
    recipe.write_text(json.dumps({"preset": "cpu", "epochs": 40, "lr": 0.05, "fit_on_validation": False,
                                  "early_stopping_patience": 3}))
    options = cli.parse_args(["--recipe", str(recipe), "--hp", "epochs=7", "tta=shift"])
    hp = Hyperparameters.from_mapping(options.hyperparameters)
    assert (hp.epochs, hp.lr, hp.tta, hp.fit_on_validation, hp.early_stopping_patience) == (7, 0.05, "shift", False, 3)
    assert hp.model == Hyperparameters.for_preset("cpu").model  # what the recipe leaves out: its preset's value


def test_a_short_yaml_recipe(tmp_path: Path) -> None:
    recipe = tmp_path / "short.yml"
    recipe.write_text("# my run\npreset: cpu\nepochs: 12\namp: no\n")
    hp = Hyperparameters.from_mapping(recipes.load(recipe))
    assert (hp.epochs, hp.amp, hp.lr) == (12, False, Hyperparameters.for_preset("cpu").lr)
    recipe.write_text("max_train_images: 1e5\n")  # YAML reads 1e5 as a string: the int check names it
    with pytest.raises(StepError, match=r"short.yml: hyperparameter max_train_images='1e5' is not a valid int"):
        recipes.load(recipe)


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("typo.yaml", "epoch: 3\n", "typo.yaml: unknown hyperparameter 'epoch'"),
        ("nested.yaml", "epochs:\n  a: 1\n", "nested.yaml: epochs must be a single value"),
        ("list.yaml", "- epochs\n", "list.yaml: a recipe is a mapping"),
        ("broken.yaml", "epochs: [3\n", "broken.yaml: not valid YAML"),
        ("broken.json", '{"epochs": 3', "broken.json: not valid JSON"),
        ("recipe.txt", "epochs: 3\n", "recipe.txt: a recipe file ends in .yaml, .yml, .json"),
        ("range.yaml", "lr: -1\n", "range.yaml: hyperparameter lr=-1.0 is invalid"),
    ],
)
def test_a_bad_recipe_names_the_file_and_the_key(tmp_path: Path, capsys, name: str, text: str, fragment: str) -> None:
    recipe = tmp_path / name
    recipe.write_text(text)
    with pytest.raises(SystemExit) as stop:
        cli.parse_args(["--recipe", str(recipe)])
    assert stop.value.code == 2
    assert fragment in capsys.readouterr().err


def test_a_missing_recipe_file(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--recipe", str(tmp_path / "nope.yaml")])
    assert "nope.yaml: cannot read the recipe" in capsys.readouterr().err


def test_make_demo_passes_the_recipe_before_hp() -> None:
    dry = subprocess.run(["make", "-n", "demo", "RECIPE=recipes/cpu.yaml", "HP=epochs=3"], cwd=REPO,
                         capture_output=True, text=True, check=True)
    line = next(x for x in dry.stdout.splitlines() if "pipelines.local" in x)
    assert "--recipe recipes/cpu.yaml --hp epochs=3" in line
