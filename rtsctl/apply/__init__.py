"""Carrying out a plan: in dependency order, with progress, a lock, forensics and the smoke test."""
