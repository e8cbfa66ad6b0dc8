"""Training: configs, speaker-independent splits, datasets, the run folder, the epoch loop, DDP.

Layer 6: imports inference, models, features, store, io, runtime.
"""
