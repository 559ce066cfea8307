"""`deploy-model`: an Approved model package version becomes a tested SageMaker endpoint.

One module per concern: stage_config (deploy/<stage>.json), packages (which version), resources
(Model / EndpointConfig / Endpoint calls, names, tags), smoke (one real request), errors (exit codes),
deployer (the order of it all, waiting, rollback and undeploy) and cli (flags).
"""
