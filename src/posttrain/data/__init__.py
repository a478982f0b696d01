"""Building and selecting training data."""
