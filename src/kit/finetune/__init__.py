"""Fine-tuning for intent routing on BANKING77: baselines, training, MLflow, registry gate."""
