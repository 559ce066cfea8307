"""`python -m pipelines.local` (make demo): the SageMaker pipeline's steps, run on this machine.

The step graph comes from pipelines.graph, as the SageMaker pipeline's does: each processing
step runs its spec's command with the container paths (/opt/ml/processing/...) mapped to
folders under WORK, and the training step runs `python -m gtsrb.train` with the environment the
sagemaker-training toolkit gives it (SM_CHANNEL_*, SM_MODEL_DIR, SM_HPS, hyperparameters as
`--key value`, SAGEMAKER_BASE_DIR so that /opt/ml/checkpoints is WORK/train/checkpoints). Then
the condition reads the accuracy from evaluation.json, and RegisterModel records the model in
MLflow's registry (pipelines.local.mlflow_registry: one store for every WORK, ../mlflow.db beside
WORK unless MLFLOW_TRACKING_URI says otherwise) or the run fails with graph.fail_message().

WORK layout: the names are defined in `layout`; the tree is drawn once, in docs/local-pipeline.md
("WORK layout"), and tests/docs checks it against them.

Exit codes: 0 registered, 1 a step failed or bad input, 3 accuracy below the threshold,
130 interrupted (run the same command again to resume).

Modules: options (the parsed command line, hyperparameters), layout (container paths mapped
under WORK), runner (the steps in graph order, with step reuse), console (what is printed),
cli (flags, signals, exit codes); pipelines.local.emulated_job runs each job as SageMaker would.
"""
