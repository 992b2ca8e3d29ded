"""Input-preprocessing defenses (JPEG, bit depth, median filter, Gaussian noise, random resize-and-pad)
with BPDA surrogates, and defense chains parsed from text (``--defense jpeg:75``).

They are here to be *evaluated*: plain gradient attacks overrate them; :func:`bpda` and EOT do not.
"""
from .chain import Chain, DefenseSpec, adaptive, build_chain, defended_models, parse_defense
from .preprocessing import JPEG, BitDepth, Defended, GaussianNoise, MedianFilter, Preprocessing, bpda, defend
from .randomization import RandomResizePad

__all__ = ["JPEG", "BitDepth", "Chain", "DefenseSpec", "Defended", "GaussianNoise", "MedianFilter",
           "Preprocessing", "RandomResizePad", "adaptive", "bpda", "build_chain", "defend", "defended_models",
           "parse_defense"]
