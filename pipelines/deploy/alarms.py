"""The CloudWatch alarms a blue/green update rolls back on, made by deploy-model itself.

SageMaker's deployment guardrails roll an update back during the bake only when one of the alarms
named in AutoRollbackConfiguration fires; without alarms the bake watches nothing. A stage config
with `alarm_5xx_errors` and/or `alarm_model_latency_ms` gets these alarms, upserted before every
update (PutMetricAlarm is idempotent) and deleted by `make undeploy`:

- `<endpoint>-5xx-errors`: AWS/SageMaker Invocation5XXErrors, Sum over one minute >= the threshold;
- `<endpoint>-model-latency`: AWS/SageMaker ModelLatency (microseconds), Average over two
  consecutive minutes > the threshold.

Both on the endpoint's one variant: traffic moves ALL_AT_ONCE, so every request during the bake
goes to the new fleet and these metrics are the new fleet's. Missing data (no traffic) is not a
breach: an idle endpoint never rolls back.
"""

from __future__ import annotations

from pipelines.deploy.errors import call
from pipelines.deploy.resources import VARIANT_NAME, Target, delete_quietly
from pipelines.deploy.stage_config import StageConfig

NAMESPACE = "AWS/SageMaker"


def alarm_names(endpoint: str, config: StageConfig) -> list[str]:
    """Every alarm an update of `endpoint` rolls back on: the config's own, then ours."""
    ours = [name for name, _ in specs(endpoint, config)]
    return [*config.rollback_alarms, *ours]


def specs(endpoint: str, config: StageConfig) -> list[tuple[str, dict]]:
    """(name, PutMetricAlarm parameters) of the alarms the config asks deploy-model to make."""
    found = []
    if config.alarm_5xx_errors is not None:
        found.append((f"{endpoint}-5xx-errors", {
            "MetricName": "Invocation5XXErrors", "Statistic": "Sum", "EvaluationPeriods": 1, "DatapointsToAlarm": 1,
            "Threshold": float(config.alarm_5xx_errors), "ComparisonOperator": "GreaterThanOrEqualToThreshold"}))
    if config.alarm_model_latency_ms is not None:
        found.append((f"{endpoint}-model-latency", {
            "MetricName": "ModelLatency", "Statistic": "Average", "EvaluationPeriods": 2, "DatapointsToAlarm": 2,
            "Threshold": config.alarm_model_latency_ms * 1000.0, "ComparisonOperator": "GreaterThanThreshold"}))
    return found


def put_alarms(cloudwatch, target: Target) -> list[str]:
    """Create or update the target's alarms; the names an update must roll back on."""
    for name, spec in specs(target.endpoint, target.config):
        call("PutMetricAlarm", cloudwatch.put_metric_alarm, AlarmName=name, Namespace=NAMESPACE, Period=60,
             Dimensions=[{"Name": "EndpointName", "Value": target.endpoint}, {"Name": "VariantName", "Value": VARIANT_NAME}],
             TreatMissingData="notBreaching", Tags=target.tags,
             AlarmDescription=f"deploy-model: rolls a blue/green update of {target.endpoint} back", **spec)
    return alarm_names(target.endpoint, target.config)


def delete_alarms(cloudwatch, endpoint: str, config: StageConfig) -> list[str]:
    """Delete the alarms deploy-model made for `endpoint` (gone already is fine); their names."""
    names = [name for name, _ in specs(endpoint, config)]
    if names:
        delete_quietly("DeleteAlarms", cloudwatch.delete_alarms, AlarmNames=names)
    return names
