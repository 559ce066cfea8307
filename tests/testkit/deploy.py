"""Helpers of the deploy-model tests: packages in moto's registry, canned endpoint answers, and
the one call moto lacks (UpdateEndpoint) stubbed with botocore's Stubber on the real service model.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
import requests
from botocore.stub import Stubber

from gtsrb.common.classes import GTSRB_CLASS_NAMES
from gtsrb.serve import protocol
from pipelines import images
from pipelines.deploy.deployer import Clients
from testkit.pipelines import REGION, Moto

ACCOUNT = "123456789012"  # moto's default account
INSTANCE_TYPES = ["ml.m5.xlarge", "ml.c5.xlarge", "ml.g5.xlarge", "ml.p5.48xlarge", "ml.c7g.xlarge"]


def image(variant: str = "cpu") -> str:
    """Our serving image URI in the test account."""
    return images.image_uri(images.ecr_registry(ACCOUNT, REGION), variant, "abc1234")


def register(sm, group: str, status: str, variant: str = "cpu") -> str:
    """One model package version in `group` (created if needed) with our serving image; its ARN."""
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except sm.exceptions.ClientError:
        sm.create_model_package_group(ModelPackageGroupName=group)
    spec = {"Containers": [{"Image": image(variant), "ModelDataUrl": f"s3://bucket/{group}/model.tar.gz"}],
            "SupportedContentTypes": list(protocol.IMAGE_CONTENT_TYPES),
            "SupportedResponseMIMETypes": [protocol.JSON_CONTENT_TYPE],
            "SupportedRealtimeInferenceInstanceTypes": INSTANCE_TYPES}
    created = sm.create_model_package(ModelPackageGroupName=group, InferenceSpecification=spec, ModelApprovalStatus=status)
    return created["ModelPackageArn"]


def prediction_body(class_id: int = 14) -> str:
    """A valid answer of the model server, built from the wire-format constants."""
    item = dict(zip(protocol.PREDICTION_FIELDS, (class_id, GTSRB_CLASS_NAMES[class_id], 0.93), strict=True))
    return json.dumps({protocol.PREDICTIONS_KEY: [item]})


def accept_binary_requests(monkeypatch) -> None:
    """moto 5.2.5's sagemaker-runtime decodes every request body as UTF-8, so an image request
    fails with UnicodeDecodeError inside moto (a moto defect, not an API behaviour): keep the raw
    bytes and hand moto's answer cache a base64 text of them instead."""
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    original = SageMakerRuntimeResponse.setup_class

    def setup_class(self, request, full_url=None, headers=None, use_raw_body=None):
        original(self, request, full_url, headers, use_raw_body=True)
        if isinstance(self.body, bytes):
            self.body = base64.b64encode(self.body).decode()

    monkeypatch.setattr(SageMakerRuntimeResponse, "setup_class", setup_class)


def answer_next(moto: Moto, body: str) -> None:
    """Make `body` moto's answer to the next InvokeEndpoint request (moto answers a repeated request
    from a cache and queues answers across tests: both are emptied first)."""
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    backend = sagemakerruntime_backends[ACCOUNT][REGION]
    backend.results.clear()
    backend.results_queue.clear()
    result = {"Body": body, "ContentType": protocol.JSON_CONTENT_TYPE, "InvokedProductionVariant": "AllTraffic"}
    reply = requests.post(f"{moto.endpoint}/moto-api/static/sagemaker/endpoint-results",
                          json={"account_id": ACCOUNT, "region": REGION, "results": [result]}, timeout=10)
    reply.raise_for_status()


@dataclass
class Recorder:
    """Every API call the deploy clients made: (operation name, parameters)."""

    calls: list[tuple[str, dict]] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)  # as IAM names them, e.g. cloudwatch:PutMetricAlarm

    def __call__(self, model, params, **kwargs) -> None:
        self.calls.append((model.name, params))
        prefix = {"monitoring": "cloudwatch"}.get(model.service_model.signing_name, model.service_model.signing_name)
        self.actions.add(f"{prefix}:{model.name}")

    def operations(self) -> list[str]:
        return [name for name, _ in self.calls]

    def params(self, operation: str) -> list[dict]:
        return [p for name, p in self.calls if name == operation]


def moto_endpoint(name: str):
    """moto's in-process record of an endpoint (the server runs in this process)."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][REGION].endpoints[name]


@dataclass
class UpdateEndpointStub:
    """UpdateEndpoint through botocore's Stubber (moto lacks it): the request is validated against
    the real service model; the endpoint in moto then serves the new config, or, with
    `roll_back_with`, stays on the old one with that FailureReason as SageMaker's auto-rollback does."""

    recorder: Recorder
    roll_back_with: str | None = None

    def client(self):
        """A stubbed sagemaker client whose update_endpoint replaces the real client's."""
        stubbed = boto3.client("sagemaker", region_name=REGION)
        stubbed.meta.events.register_first("before-parameter-build.*.*", self.recorder)
        stubber = Stubber(stubbed)
        stubber.activate()

        def update_endpoint(**params):
            stubber.add_response("update_endpoint", {"EndpointArn": moto_endpoint(params["EndpointName"]).arn})
            answer = stubbed.update_endpoint(**params)
            self.apply(params)
            return answer

        return update_endpoint

    def apply(self, params: dict) -> None:
        """What SageMaker does when the blue/green update ends."""
        from moto.sagemaker.models import sagemaker_backends

        endpoint = moto_endpoint(params["EndpointName"])
        if self.roll_back_with:
            endpoint.failure_reason = self.roll_back_with
            return
        config = sagemaker_backends[ACCOUNT][REGION].endpoint_configs[params["EndpointConfigName"]]
        endpoint.endpoint_config_name = params["EndpointConfigName"]
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)


def quota(name: str, value: float) -> dict:
    """One entry of ListServiceQuotas' answer, as the real service model has it."""
    return {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaName": name, "Value": value,
            "QuotaCode": "L-" + format(abs(hash(name)) % 16**8, "08X"), "Adjustable": True, "GlobalQuota": False}


@dataclass
class QuotasStub:
    """Service Quotas through botocore's Stubber (moto has neither call for SageMaker): ListServiceQuotas
    answers `values` (quota name -> applied value), ListAWSDefaultServiceQuotas `defaults` (AWS's default
    values), each after the request is validated against the service model."""

    recorder: Recorder
    values: dict[str, float] = field(default_factory=lambda: {f"{t} for endpoint usage": 4.0 for t in INSTANCE_TYPES})
    defaults: dict[str, float] = field(default_factory=dict)

    def client(self, region: str):
        """A stubbed service-quotas client; its paginators go through the stubbed calls."""
        stubbed = boto3.client("service-quotas", region_name=region)
        stubbed.meta.events.register_first("before-parameter-build.*.*", self.recorder)
        stubber = Stubber(stubbed)
        stubber.activate()
        for operation, answers in (("list_service_quotas", lambda: self.values),
                                   ("list_aws_default_service_quotas", lambda: self.defaults)):
            setattr(stubbed, operation, self.stubbed_call(stubber, operation, getattr(stubbed, operation), answers))
        return stubbed

    @staticmethod
    def stubbed_call(stubber: Stubber, operation: str, real: Callable, answers: Callable[[], dict[str, float]]) -> Callable:
        """`operation` answering the quotas `answers()` returns at call time."""
        def call(**params):
            stubber.add_response(operation, {"Quotas": [quota(n, v) for n, v in answers().items()]},
                                 {"ServiceCode": "sagemaker", **params})
            return real(**params)

        return call


# Enough of every quota the tests' runs need (moto's server answers these through serve_quotas).
GENEROUS_QUOTAS = {f"{t} for {use}": 10.0 for t in (*INSTANCE_TYPES, "ml.g5.2xlarge", "ml.g4dn.xlarge", "ml.g6.xlarge",
                                                     "ml.p3.2xlarge", "ml.m5.large", "ml.m5d.xlarge", "ml.c5.2xlarge")
                   for use in ("training job usage", "spot training job usage", "processing job usage", "endpoint usage")}


def serve_quotas(monkeypatch, values: dict[str, float], defaults: dict[str, float] | None = None) -> None:
    """Teach the in-process moto server ListServiceQuotas (moto 5.2.5 lacks it) with canned `values`,
    and ListAWSDefaultServiceQuotas (moto knows only vpc) with `defaults`, for a deploy-model run in a
    subprocess, where no Stubber can reach."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    applied = json.dumps({"Quotas": [quota(n, v) for n, v in values.items()]})
    default = json.dumps({"Quotas": [quota(n, v) for n, v in (defaults or {}).items()]})
    monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", lambda self: applied, raising=False)
    monkeypatch.setattr(ServiceQuotasResponse, "list_aws_default_service_quotas", lambda self: default)


def recorded_clients(recorder: Recorder, update: UpdateEndpointStub, quotas: QuotasStub) -> Callable[[str], Clients]:
    """A make_clients replacement: real clients of the moto server, recorded, UpdateEndpoint and quotas stubbed."""

    def make_clients(region: str) -> Clients:
        sm = boto3.client("sagemaker", region_name=region)
        runtime = boto3.client("sagemaker-runtime", region_name=region)
        cloudwatch = boto3.client("cloudwatch", region_name=region)
        for client in (sm, runtime, cloudwatch):
            client.meta.events.register_first("before-parameter-build.*.*", recorder)
        sm.update_endpoint = update.client()
        return Clients(sm, runtime, cloudwatch, quotas.client(region))

    return make_clients
