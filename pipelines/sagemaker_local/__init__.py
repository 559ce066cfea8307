"""The SageMaker pipeline as SageMaker runs it, on this machine: `make sagemaker-local`.

The definition `make upsert` sends (pipelines.sagemaker.definition, with its one `local_mode` switch) is
executed by the SageMaker SDK's own `LocalPipelineSession` (sagemaker.mlops.local): each step's job
runs in our image under docker compose with the container contract SageMaker's launcher uses.
Outputs live on a local S3 (a moto server, started and stopped here), because local mode reads the
condition's JsonGet file from S3; the raw data goes in as `file://`. At the end the execution's S3
is mirrored under WORK, and a passed condition records the model in MLflow as `make demo` does.

    preflight.py   docker, compose and the image, each missing one named in a sentence
    local_s3.py    the moto server, its environment (no real AWS reachable), the mirror
    progress.py    a line per step as the SDK reports it, and each step's log under WORK/steps
    runner.py      build, start, collect, register, summarise
    cli.py         the command line (python -m pipelines.sagemaker_local)
    transform.py   make transform LOCAL=1: make transform's Batch Transform job in the SDK's local mode
"""
