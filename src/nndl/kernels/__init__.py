"""Compiled fast paths. Each computes exactly what the readable NumPy code
in :mod:`nndl.layers` computes (tests compare them), only faster."""
