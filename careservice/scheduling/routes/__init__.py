"""HTTP for scheduling: one module per resource."""
