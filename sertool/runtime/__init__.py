"""Process-wide settings (torch and BLAS threads, devices) and worker processes.

Layer 1: imports only :mod:`sertool.errors`.
"""
