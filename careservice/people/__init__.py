"""Regions, residents, providers and users."""
