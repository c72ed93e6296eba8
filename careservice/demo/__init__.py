"""The demo province: deterministic data for trying the service."""
