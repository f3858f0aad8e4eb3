"""Evaluation: retrieval and answer metrics over labelled question sets, logged to MLflow."""
