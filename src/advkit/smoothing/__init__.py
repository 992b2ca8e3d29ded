"""Certified robustness by randomized smoothing (Cohen, Rosenfeld & Kolter 2019).

``SmoothedClassifier.predict`` / ``.certify`` (fixed n), ``certify_sequential`` (early stopping, same
guarantee) and ``run_certify_stage`` (a data set → JSON-ready summary).
"""
from .sequential import LookSchedule, SequentialCertificate, certify_sequential
from .smoothed import ABSTAIN, Certificate, SmoothedClassifier, image_generators
from .stage import run_certify_stage

__all__ = ["ABSTAIN", "Certificate", "SmoothedClassifier", "image_generators", "LookSchedule",
           "SequentialCertificate", "certify_sequential", "run_certify_stage"]
