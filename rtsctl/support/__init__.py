"""Helpers every layer shares: errors, the private home, numeric settings, retries."""
