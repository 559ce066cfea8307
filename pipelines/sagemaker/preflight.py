"""Preflight: the SageMaker service quotas a run needs, read through the Service Quotas API.

New AWS accounts often have a quota of 0 for GPU training, spot training, processing and endpoint
instance types; a pipeline or a deployment then fails minutes in (or waits) with a message deep in
a job's status. The preflight reads the quotas first and refuses with one sentence naming the
quota and the number needed.

    make preflight                       # the pipeline (definition's defaults) + both stages' endpoints
    python -m pipelines.sagemaker.preflight --kwargs '{...}' --stage staging --stage prod

What each run needs (SageMaker's quota names):
- TrainModel: `<type> for training job usage`, or `<type> for spot training job usage` with spot,
  instance count of the step;
- PrepareData / EvaluateModel: `<type> for processing job usage`, the step's instance count (the
  steps run one after another, so the largest count of a type counts, not the sum);
- an endpoint: `<type> for endpoint usage`, its instance count; a blue/green update runs the new
  fleet beside the old one, so twice the count while it lasts.
The numbers are lower bounds: the quota is per account and region, and other jobs or endpoints may
use part of it (Service Quotas reports no SageMaker usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable

from gtsrb.common.failure import StepError

SERVICE_CODE = "sagemaker"


def training_quota(instance_type: str, spot: bool) -> str:
    """The quota name of a training job's instances."""
    return f"{instance_type} for {'spot ' if spot else ''}training job usage"


def processing_quota(instance_type: str) -> str:
    """The quota name of a processing job's instances."""
    return f"{instance_type} for processing job usage"


def endpoint_quota(instance_type: str) -> str:
    """The quota name of a real-time endpoint's instances."""
    return f"{instance_type} for endpoint usage"


def merge_max(*needs: dict[str, int]) -> dict[str, int]:
    """Needs of steps that run one after another: the largest count per quota."""
    merged: dict[str, int] = {}
    for need in needs:
        for name, count in need.items():
            merged[name] = max(merged.get(name, 0), count)
    return merged


def pipeline_needs(definition: dict, overrides: dict | None = None) -> dict[str, int]:
    """Quotas the pipeline's Training and Processing steps need, from its definition JSON; parameters
    resolve to `overrides`, else their defaults."""
    values = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters", [])} | (overrides or {})

    def resolve(value: object) -> object:
        if isinstance(value, dict) and str(value.get("Get", "")).startswith("Parameters."):
            return values[value["Get"].split(".", 1)[1]]
        return value

    needs = []
    for step in definition["Steps"]:
        args = step.get("Arguments", {})
        if step["Type"] == "Training":
            resources = args["ResourceConfig"]
            name = training_quota(str(resolve(resources["InstanceType"])), bool(args.get("EnableManagedSpotTraining")))
        elif step["Type"] == "Processing":
            resources = args["ProcessingResources"]["ClusterConfig"]
            name = processing_quota(str(resolve(resources["InstanceType"])))
        else:
            continue
        needs.append({name: int(resolve(resources["InstanceCount"]))})
    return merge_max(*needs)


def endpoint_needs(instance_type: str, count: int, updating: bool) -> dict[str, int]:
    """Quota an endpoint needs: its fleet, twice while a blue/green update runs both fleets."""
    return {endpoint_quota(instance_type): count * (2 if updating else 1)}


def stages_needs(fleets: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Endpoints of several stages at once, one of them (the largest) in a blue/green update."""
    needs: dict[str, int] = {}
    fleets = list(fleets)
    for instance_type, count in fleets:
        name = endpoint_quota(instance_type)
        needs[name] = needs.get(name, 0) + count
    if fleets:
        instance_type, count = max(fleets, key=lambda fleet: fleet[1])
        needs[endpoint_quota(instance_type)] += count
    return needs


def listed_values(client, operation: str, wanted: set[str]) -> dict[str, float]:
    """The values of the wanted SageMaker quotas that one Service Quotas list operation returns."""
    found = {}
    for page in client.get_paginator(operation).paginate(ServiceCode=SERVICE_CODE):
        for quota in page["Quotas"]:
            if quota["QuotaName"] in wanted:
                found[quota["QuotaName"]] = float(quota["Value"])
    return found


def quota_values(client, names: Iterable[str]) -> dict[str, float]:
    """The values of the named SageMaker quotas in the client's region: the applied value
    (ListServiceQuotas), else AWS's default (ListAWSDefaultServiceQuotas). Service Quotas leaves a quota
    out of ListServiceQuotas when it has no applied value, and then the default is what applies."""
    wanted = set(names)
    found = listed_values(client, "list_service_quotas", wanted)
    if wanted - found.keys():
        found = listed_values(client, "list_aws_default_service_quotas", wanted - found.keys()) | found
    return found


def check(client, needs: dict[str, int], region: str) -> dict[str, float]:
    """Raise StepError with one sentence for the first quota below what the run needs; the values read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        values = quota_values(client, needs)
    except (BotoCoreError, ClientError) as err:
        hint = (" (the caller needs servicequotas:ListServiceQuotas and ListAWSDefaultServiceQuotas)"
                if isinstance(err, ClientError) else "")
        raise StepError(f"preflight: cannot read the SageMaker service quotas in {region}{hint}: {err}") from None
    for name, needed in sorted(needs.items()):
        if name not in values:
            raise StepError(f"preflight: Service Quotas lists no SageMaker quota {name!r} in {region}, applied or "
                            "default: that instance type is not offered there; choose another type or region.")
        if values[name] < needed:
            raise StepError(f"preflight: the SageMaker quota {name!r} is {values[name]:g} in {region} but this run needs "
                            f"{needed}: request an increase (Service Quotas console, Amazon SageMaker) or choose "
                            "another instance type.")
    return values


def check_pipeline(pipeline, overrides: dict) -> dict[str, float]:
    """Preflight of one execution (run-pipeline --start): the quotas its steps need, with the overrides."""
    session = pipeline.sagemaker_session
    region = session.boto_region_name
    needs = pipeline_needs(json.loads(pipeline.definition()), overrides)
    return check(session.boto_session.client("service-quotas", region_name=region), needs, region)


def main(argv: list[str] | None = None) -> None:
    """make preflight: the pipeline's and the stages' quotas, one line per quota, exit 1 on a shortfall."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kwargs", default="{}", help="the pipeline kwargs (as make definition / upsert)")
    parser.add_argument("--parameters", default="{}", help="pipeline parameter overrides of the execution")
    parser.add_argument("--stage", action="append", default=[], help="a deploy/<stage>.json whose endpoint must fit")
    args = parser.parse_args(argv)
    try:
        import boto3

        from pipelines.deploy import stage_config
        from pipelines.sagemaker.cli_args import build_pipeline, parse_json, quiet_sdk

        quiet_sdk()
        pipeline = build_pipeline("pipelines.sagemaker.definition", args.kwargs)
        region = pipeline.sagemaker_session.boto_region_name
        configs = [stage_config.load(stage_config.config_path(stage)) for stage in args.stage]
        overrides = parse_json("--parameters", args.parameters, dict)
        needs = merge_max(pipeline_needs(json.loads(pipeline.definition()), overrides),
                          stages_needs((c.instance_type, c.initial_instance_count) for c in configs))
        values = check(boto3.client("service-quotas", region_name=region), needs, region)
    except StepError as err:
        sys.exit(f"ERROR: {err}")
    for name, needed in sorted(needs.items()):
        print(f"quota ok: {name!r} = {values[name]:g} (needs {needed})")


if __name__ == "__main__":
    main()
