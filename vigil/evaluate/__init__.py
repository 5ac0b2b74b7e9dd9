"""Checking Vigil against what happened: calibration of scores and alerts on outcomes,
fitting weights to them, and backtests of rules and settings over a history."""
