"""Sending an evaluation's results to an experiment tracker (MLflow: :mod:`advkit.tracking.mlflow`).

Above :mod:`advkit.results` and :mod:`advkit.report` (it reads a finished ``result.json`` dict and the
run directory's files); nothing below imports it.  The tracker's package is imported lazily, so advkit
works without it.
"""
