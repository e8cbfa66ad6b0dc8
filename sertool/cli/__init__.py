"""The command line: a thin Click shell over :mod:`sertool.api`.

Layer 9 (the top): nothing inside sertool imports it.
"""
