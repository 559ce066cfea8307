"""`python -m pipelines.deploy` is `deploy-model`."""

from pipelines.deploy.cli import main

main()
