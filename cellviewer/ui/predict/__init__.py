"""Prediction without Qt: the batch job, model files and the chosen model."""
