"""Input-preprocessing defenses (JPEG, bit depth, median filter, Gaussian noise) with BPDA surrogates.

They are here to be *evaluated*: plain gradient attacks overrate them; :func:`bpda` and EOT do not.
"""
from .preprocessing import JPEG, BitDepth, Defended, GaussianNoise, MedianFilter, Preprocessing, bpda, defend

__all__ = ["JPEG", "BitDepth", "Defended", "GaussianNoise", "MedianFilter", "Preprocessing", "bpda", "defend"]
