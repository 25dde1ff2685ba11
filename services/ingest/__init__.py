"""Usage capture: provider webhooks and batch imports, normalised into usage-recorded events."""
