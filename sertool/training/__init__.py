"""Training: configs, speaker-independent splits, datasets, the run folder, the epoch loop, DDP.

Modules: config (TrainConfig), device (device, bf16), splits, data (datasets), folds (set-up, resume),
loop (the torch epoch loop), classic (scikit-learn fits), checkpoints (what a fold writes), runs (the run
folder's files), distributed (DDP), trainer (train_run, train_fold).

Layer 6: imports inference, models, features, store, io, runtime.
"""
