"""The five pipeline services: ingest, allocation, risk, value and optimizer."""
