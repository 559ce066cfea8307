"""The AWS-side details a first real run meets: image references, the cache key's data version,
the images' account, KMS on instance storage, override checks (offline: no AWS call)."""

from __future__ import annotations

import json

import pytest

from gtsrb.common.failure import StepError
from pipelines import graph, images
from pipelines.instances import has_instance_storage
from pipelines.sagemaker import run_pipeline
from testkit.pipelines import IMAGE_TAG, REGION, ROLE, steps_by_name

KEY = "arn:aws:kms:eu-west-1:123456789012:key/volume"
OTHER_ACCOUNT = "210987654321"


def definition(**kwargs) -> tuple[object, dict]:
    """The pipeline and its definition for these kwargs (besides region, role, image tag)."""
    from pipelines.sagemaker.definition import get_pipeline

    pipeline = get_pipeline(**{"region": REGION, "role": ROLE, "image_tag": IMAGE_TAG, **kwargs})
    return pipeline, json.loads(pipeline.definition())


def test_images_are_named_by_sha_or_digest_never_latest(no_network: None) -> None:
    _, defn = definition()
    uris = {s["Name"]: json.dumps(s["Arguments"]) for s in defn["Steps"] if s["Type"] in ("Training", "Processing")}
    assert all(f":{IMAGE_TAG}" in uri and ":latest" not in uri for uri in uris.values())
    digest = "sha256:" + "ab" * 32
    _, by_digest = definition(image_tag=digest)
    train = steps_by_name(by_digest)[graph.TRAIN.name]["Arguments"]["AlgorithmSpecification"]["TrainingImage"]
    assert train.endswith(f"/{images.repository('gpu')}@{digest}")
    with pytest.raises(StepError, match="not an immutable reference"):
        definition(image_tag=None)


def test_data_version_is_a_parameter_in_the_prepare_cache_key(no_network: None) -> None:
    _, defn = definition(data_version="2026-12-01")
    params = {p["Name"]: p for p in defn["Parameters"]}
    assert params["DataVersion"]["DefaultValue"] == "2026-12-01"
    prepare = steps_by_name(defn)[graph.PREPARE.name]
    args = prepare["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--data-version") + 1] == {"Get": "Parameters.DataVersion"}
    assert prepare["CacheConfig"]["Enabled"] is True


def test_one_image_account_for_push_and_definition(no_network: None) -> None:
    _, defn = definition(image_account=OTHER_ACCOUNT)
    train = steps_by_name(defn)[graph.TRAIN.name]["Arguments"]["AlgorithmSpecification"]["TrainingImage"]
    assert train.startswith(images.ecr_registry(OTHER_ACCOUNT, REGION) + "/")
    # make push asks the same function: explicit account first, else the role's
    assert images.image_account(ROLE, OTHER_ACCOUNT) == OTHER_ACCOUNT
    assert images.image_account(ROLE) == "123456789012"
    with pytest.raises(ValueError, match="no image account"):
        images.image_account("", "")


@pytest.mark.parametrize(("instance_type", "storage"), [("ml.m5.xlarge", False), ("ml.m5d.xlarge", True),
                         ("ml.c6id.2xlarge", True), ("ml.g5.xlarge", True), ("ml.p3.2xlarge", False), ("ml.c5n.xlarge", False)])
def test_instance_storage_types(instance_type: str, storage: bool) -> None:
    assert has_instance_storage(instance_type) is storage


def test_no_volume_key_on_instance_storage_processing(no_network: None) -> None:
    _, defn = definition(training_instance_type="ml.p3.2xlarge", processing_instance_type="ml.m5d.xlarge",
                         volume_kms_key=KEY)
    steps = steps_by_name(defn)
    assert steps[graph.TRAIN.name]["Arguments"]["ResourceConfig"]["VolumeKmsKeyId"] == KEY
    for spec in (graph.PREPARE, graph.EVALUATE):
        assert "VolumeKmsKeyId" not in steps[spec.name]["Arguments"]["ProcessingResources"]["ClusterConfig"]


@pytest.mark.parametrize(("override", "message"), [
    ({"TrainingInstanceType": "ml.g5.xlarge"}, "volume_kms_key cannot be used with training instance type ml.g5.xlarge"),
    ({"ProcessingInstanceType": "ml.m5d.xlarge"}, "ProcessingInstanceType=ml.m5d.xlarge has instance storage"),
])
def test_overrides_are_rechecked_against_the_volume_key(no_network: None, override: dict, message: str) -> None:
    pipeline, _ = definition(training_instance_type="ml.p3.2xlarge", volume_kms_key=KEY)
    with pytest.raises(StepError, match=message):
        run_pipeline.check_overrides(pipeline, override)
    run_pipeline.check_overrides(pipeline, {"TrainingInstanceType": "ml.p3.8xlarge"})  # EBS: fine


@pytest.mark.parametrize(("override", "message"), [
    ({"TrainingInstanceCount": 3}, "TrainingInstanceCount=3 cannot split BatchSize=128"),
    ({"TrainingInstanceCount": 2, "BatchSize": 63}, "TrainingInstanceCount=2 cannot split BatchSize=63"),
    ({"TrainingInstanceCount": 9}, "TrainingInstanceCount=9 must be between 1 and 8"),
])
def test_training_instance_count_is_checked_before_anything_is_paid(no_network: None, override: dict, message: str) -> None:
    pipeline, _ = definition()
    with pytest.raises(StepError, match=message):
        run_pipeline.check_overrides(pipeline, override)
    run_pipeline.check_overrides(pipeline, {"TrainingInstanceCount": 2})  # 128 / 2: fine


def test_the_instance_count_check_reads_the_definitions_fixed_hyperparameters(no_network: None) -> None:
    """Hyperparameters fixed at upsert (settings, not pipeline parameters) count too: the job would fail on them."""
    nccl, _ = definition(hyperparameters={"kvstore": "nccl"})
    with pytest.raises(StepError, match="TrainingInstanceCount=2 cannot train with hyperparameter kvstore=nccl"):
        run_pipeline.check_overrides(nccl, {"TrainingInstanceCount": 2})
    run_pipeline.check_overrides(nccl, {"TrainingInstanceCount": 1})
    per_device, _ = definition(hyperparameters={"batch_per_device": "32"})
    run_pipeline.check_overrides(per_device, {"TrainingInstanceCount": 3})  # the global batch follows the count
