"""Rollouts: a replaced deployment gets a successor beside it (successor.py), traffic moves in planned steps
(steps.py), each step held behind a gate (gates.py: a short load run against the new version alone), rolled back
by itself when a gate fails."""
