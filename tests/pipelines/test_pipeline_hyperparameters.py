"""The SageMaker pipeline's tunable hyperparameters: typed parameters of the definition, checked at
upsert (moto), a Preset override or a recipe file filling them as `make demo` would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gtsrb.common.preprocessing import TTA_MODES
from gtsrb.train.hyperparameters import PRESETS, Hyperparameters
from pipelines import recipes
from pipelines.sagemaker import run_pipeline
from pipelines.sagemaker.settings import HYPERPARAMETER_OF
from testkit.pipelines import REGION, Moto

TUNED = {"Preset": ("String", "preset"), "Epochs": ("Integer", "epochs"), "LearningRate": ("Float", "lr"),
         "Tta": ("String", "tta"), "MaxTrainImages": ("Integer", "max_train_images")}


def start(moto: Moto, name: str, *extra: str) -> dict[str, str]:
    """Upsert and start through run-pipeline's CLI; the execution's parameters."""
    kwargs = json.dumps({"region": REGION, "role": moto.role, "pipeline_name": name, "model_package_group_name": name,
                         "base_job_prefix": name, "image_tag": "aaaaaaa"})
    with pytest.raises(SystemExit) as exited:
        run_pipeline.main(["--kwargs", kwargs, "--start", *extra])
    assert exited.value.code == 0
    sm = moto.client("sagemaker")
    (summary,) = sm.list_pipeline_executions(PipelineName=name)["PipelineExecutionSummaries"]
    found = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=summary["PipelineExecutionArn"])
    return {p["Name"]: p["Value"] for p in found["PipelineParameters"]}


def test_the_tuned_hyperparameters_are_typed_parameters_of_the_training_job(offline_definition: dict) -> None:
    parameters = {p["Name"]: p for p in offline_definition["Parameters"]}
    defaults = Hyperparameters()
    for name, (kind, field) in TUNED.items():
        assert parameters[name]["Type"] == kind and HYPERPARAMETER_OF[name] == field
        assert parameters[name]["DefaultValue"] == getattr(defaults, field)
    assert parameters["Preset"]["EnumValues"] == list(PRESETS) and parameters["Tta"]["EnumValues"] == list(TTA_MODES)
    (train,) = [s for s in offline_definition["Steps"] if s["Type"] == "Training"]
    sent = json.dumps(train["Arguments"]["HyperParameters"])
    for name, (_, field) in TUNED.items():
        assert field in train["Arguments"]["HyperParameters"] and f'"Get": "Parameters.{name}"' in sent, name


def test_a_preset_override_brings_the_whole_preset(moto_server: Moto) -> None:
    values = start(moto_server, "gtsrb-preset", "--parameters", '{"Preset": "cpu", "Epochs": 5}')
    cpu = Hyperparameters.for_preset("cpu")
    assert values["Preset"] == "cpu" and values["Epochs"] == "5"  # what is given wins over the preset
    assert (values["LearningRate"], values["Model"], values["ImageSize"], values["MaxTrainImages"]) == (
        str(cpu.lr), cpu.model, str(cpu.image_size), str(cpu.max_train_images))


def test_a_recipe_file_starts_an_execution_with_its_values(moto_server: Moto, tmp_path: Path) -> None:
    recipe = tmp_path / "mine.yaml"
    recipe.write_text(recipes.preset_file("cpu").read_text().replace("tta: rotate", "tta: shift"))
    values = start(moto_server, "gtsrb-recipe", "--recipe", str(recipe), "--parameters", '{"LearningRate": 0.2}')
    assert (values["Preset"], values["Tta"], values["LearningRate"], values["Epochs"]) == ("cpu", "shift", "0.2", "24")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--parameters", '{"Tta": "sideways"}'], "hyperparameter tta='sideways' is invalid"),
        (["--parameters", '{"Preset": "tpu"}'], "hyperparameter preset='tpu' is unknown"),
        (["--parameters", '{"MaxTrainImages": -5}'], "hyperparameter max_train_images=-5 is invalid"),
        (["--recipe", "WD"], "wd=0.1 differ(s) from the cpu preset but the pipeline's parameters are only"),
    ],
)
def test_bad_values_fail_before_the_upsert(moto_server: Moto, capsys, tmp_path: Path, extra: list[str], message: str) -> None:
    recipe = tmp_path / "wd.yaml"
    recipe.write_text("preset: cpu\nwd: 0.1\n")
    name = "gtsrb-bad-hp"
    kwargs = json.dumps({"region": REGION, "role": moto_server.role, "pipeline_name": name, "image_tag": "aaaaaaa"})
    with pytest.raises(SystemExit) as exited:
        run_pipeline.main(["--kwargs", kwargs, "--start", *[str(recipe) if x == "WD" else x for x in extra]])
    assert exited.value.code == 1
    assert message in capsys.readouterr().err
    assert not moto_server.client("sagemaker").list_pipelines(PipelineNamePrefix=name)["PipelineSummaries"]
