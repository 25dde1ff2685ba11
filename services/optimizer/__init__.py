"""Savings recommendations with the arithmetic behind each estimate."""
