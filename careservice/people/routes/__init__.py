"""HTTP for people: one module per resource."""
