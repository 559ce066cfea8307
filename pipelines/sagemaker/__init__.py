"""The SageMaker side: the pipeline definition, its steps and settings, and the CLIs that render and upsert it."""
