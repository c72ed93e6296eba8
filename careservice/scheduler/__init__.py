"""The scheduler process: every periodic job of every capability, from one list."""
