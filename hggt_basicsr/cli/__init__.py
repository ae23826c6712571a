"""Console entry points: thin argument parsing that calls library functions."""
