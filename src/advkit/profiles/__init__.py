"""Domain profiles: each data domain's standard ε, robustness-curve grid, grade thresholds, clean-accuracy
floor and published reference points, as data files (``*.toml`` here; ``docs/profiles.md``)."""
from __future__ import annotations

from .grading import annotate, grade_label, grade_lines, grade_text, grade_threat
from .profile import (NONE, GradeLevel, Profile, Reference, ThreatProfile, default_profile, list_profiles,
                      load_profile, profile_for_data, profile_for_model, profile_names)

__all__ = ["NONE", "GradeLevel", "Profile", "Reference", "ThreatProfile", "annotate", "default_profile",
           "grade_label", "grade_lines", "grade_text", "grade_threat", "list_profiles", "load_profile",
           "profile_for_data",
           "profile_for_model", "profile_names"]
