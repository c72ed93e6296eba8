"""Matching residents with providers: explainable suggestions (owns no tables)."""
