"""sertool: speech emotion recognition from the command line and from Python.

The package is a small library with a thin Click shell (:mod:`sertool.cli`).
Importing it is cheap: heavy dependencies (numpy, h5py, librosa, torch) are
imported by the modules that need them, never here.
"""

__version__ = "0.1.0"
