"""Input and output: audio decoding, manifests, atomic writes, output locks, run reports, progress bars.

Layer 1: imports only :mod:`sertool.errors` and :mod:`sertool.configs`.
"""
