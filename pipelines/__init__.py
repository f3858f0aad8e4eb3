"""Batch jobs of the kit, one package per pipeline: ingest, evaluate, finetune, drift.

Each stage is a function you can call from a notebook and a `kit` command you can run alone.
Pipelines never import the services' web code.
"""
