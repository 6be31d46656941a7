"""Evaluation: presets, methods, typed requests, model and data loading, the backend, the resumable runner,
records and reports; `commands` holds what the `ssni` CLI runs."""
