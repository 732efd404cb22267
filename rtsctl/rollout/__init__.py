"""Rollouts: traffic moved in planned steps, each step held behind a gate (a short load run against the
new version alone), rolled back by itself when a gate fails."""
