"""Serving: the trained model answers HTTP requests (SageMaker hosting contract) and CLI predictions."""
