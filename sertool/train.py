"""Training: one model per fold, epoch chosen on validation speakers, resumable.

Per fold, ``RUN_DIR/fold-<i>/`` holds

- ``split.csv``: id, speaker, label, role (train / valid / test) of every utterance;
- ``train_log.csv``: epoch, train_loss, valid_loss, valid_UA, valid_WA, lr, seconds;
- ``state.pt``: the last finished epoch (weights, optimiser, best weights so
  far), rewritten atomically after every epoch: a rerun resumes from it;
- ``checkpoint.pt``: the best epoch (highest validation UA) as a
  :class:`~sertool.checkpoint.Checkpoint`, written when the fold finishes;
- ``config.json``: model, feature, train configs and the fold's speakers.

Normalisation statistics come from the fold's training utterances only.
Randomness is seeded per (seed, epoch), so a resumed run replays the same
batches and dropout masks as an uninterrupted one.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sertool.errors import ConfigError, SertoolError
from sertool.manifest import Utterance, read_manifest
from sertool.splits import Fold, make_folds

LOG_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_UA", "valid_WA", "lr", "seconds")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults follow LIGHT-SERNET's paper and code."""

    epochs: int = 300
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 1e-6
    lr_decay_start: int = 50
    lr_decay_every: int = 20
    lr_decay_factor: float = math.exp(-0.15)
    loss: str = "ce"
    focal_gamma: float = 2.0
    patience: int = 30
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "auto"
    workers: int = 0
    threads: int = 0
    specaugment: bool = False
    freq_masks: int = 2
    freq_mask_width: int = 8
    time_masks: int = 2
    time_mask_width: int = 20

    def __post_init__(self):
        if self.loss not in ("ce", "focal"):
            raise ConfigError(f"loss {self.loss!r} must be 'ce' or 'focal'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device {self.device!r} must be cpu, cuda or auto")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ConfigError("epochs and batch_size must be >= 1 and lr > 0")

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 1-based ``epoch``: constant, then x factor every ``every`` epochs from ``start``."""
        if epoch < self.lr_decay_start:
            return self.lr
        return self.lr * self.lr_decay_factor ** ((epoch - self.lr_decay_start) // self.lr_decay_every + 1)


def build_train_config(overrides: dict[str, Any] | None = None) -> TrainConfig:
    """TrainConfig defaults with ``overrides`` (None values ignored) applied and type-checked."""
    from sertool.configs import dataclass_from_dict

    return dataclass_from_dict(TrainConfig, {k: v for k, v in (overrides or {}).items() if v is not None},
                               what="training")


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available; use --device cpu")
    return torch.device(name)


def _atomic_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def _write_split(path: Path, fold: Fold, by_id: dict[str, Utterance]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "speaker", "label", "role"])
        for role, ids in (("train", fold.train), ("valid", fold.valid), ("test", fold.test)):
            for i in ids:
                w.writerow([i, by_id[i].speaker, by_id[i].label, role])
    os.replace(tmp, path)


def read_split(path: Path) -> dict[str, list[str]]:
    """role -> utterance ids, from a fold's split.csv."""
    roles: dict[str, list[str]] = {"train": [], "valid": [], "test": []}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            roles[row["role"]].append(row["id"])
    return roles


def evaluate_loader(model, loader, device, loss_fn=None):
    """Run ``model`` over ``loader``: (probabilities (N, C) numpy, labels (N,), mean loss or nan)."""
    import numpy as np
    import torch

    model.eval()
    probs, labels, losses = [], [], []
    with torch.no_grad():
        for feats, lengths, y in loader:
            logits = model(feats.to(device), lengths)
            if loss_fn is not None:
                losses.append(float(loss_fn(logits, y.to(device))) * len(y))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
            labels.append(y.numpy())
    n = sum(len(y) for y in labels)
    return np.concatenate(probs), np.concatenate(labels), (sum(losses) / n if losses else float("nan"))


@dataclass
class FoldResult:
    fold: Fold
    directory: Path
    best_epoch: int
    valid_ua: float
    epochs_run: int
    seconds: float
    skipped: bool


def train_fold(fold: Fold, *, utterances: list[Utterance], store_path: Path, model_name: str,
               model_config, train_config: TrainConfig, labels: list[str], out_dir: Path,
               utterance_store: Path | None = None, log: Callable[[str], None] = lambda m: None) -> FoldResult:
    """Train one fold into ``out_dir`` (resuming from ``state.pt`` when present)."""
    import torch

    from sertool.checkpoint import Checkpoint
    from sertool.data import FeatureDataset, JoinedStore, collate, normalisation_stats
    from sertool.metrics import confusion, scores
    from sertool.models import build_model
    from sertool.models.common import focal_loss

    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path, state_path, log_path = out_dir / "checkpoint.pt", out_dir / "state.pt", out_dir / "train_log.csv"
    by_id = {u.id: u for u in utterances}
    # Settings that change the result; workers, threads and device may differ on resume.
    results_config = {k: v for k, v in dataclasses.asdict(train_config).items()
                      if k not in ("workers", "threads", "device")}
    fingerprint = {"model": model_name, "model_config": dataclasses.asdict(model_config),
                   "train_config": results_config, "labels": labels,
                   "train": len(fold.train), "valid": len(fold.valid), "test": len(fold.test)}
    state = None
    if state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        if state.get("fingerprint") != json.loads(json.dumps(fingerprint)):
            raise SertoolError(f"{out_dir}: holds a run with other settings or data; use a new -o folder "
                               "or delete it to start over")
        if state.get("finished") and ckpt_path.exists():
            log(f"fold {fold.index}: already finished (best epoch {state['best_epoch']}), skipped")
            return FoldResult(fold, out_dir, state["best_epoch"], state["best_ua"], state["epoch"], 0.0, True)
    _write_split(out_dir / "split.csv", fold, by_id)
    joined = JoinedStore(store_path, utterance_store)
    feature_set, feature_config = joined.frames.attrs["feature_set"], joined.frames.attrs["config"]
    utterance_config = joined.utterance.attrs["config"] if joined.utterance else {}
    mean, std = normalisation_stats(joined, list(fold.train))
    input_dim = joined.dim
    _atomic_json(out_dir / "config.json", {
        **fingerprint, "feature_set": feature_set, "feature_config": feature_config, "store": str(store_path),
        "utterance_store": str(utterance_store) if utterance_store else None,
        "utterance_feature_config": utterance_config,
        "fold": fold.index, "fold_name": fold.name,
        "speakers": {role: sorted({by_id[i].speaker for i in ids})
                     for role, ids in (("train", fold.train), ("valid", fold.valid), ("test", fold.test))}})

    device = _device(train_config.device)
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    index = {label: k for k, label in enumerate(labels)}
    make = lambda ids: FeatureDataset(store_path, list(ids), [index[by_id[i].label] for i in ids], mean,  # noqa: E731
                                      std, utterance_store)
    train_set, valid_set = make(fold.train), make(fold.valid)
    if train_config.specaugment:
        from sertool.data import SpecAugment

        train_set.transform = SpecAugment(train_config.freq_masks, train_config.freq_mask_width,
                                          train_config.time_masks, train_config.time_mask_width)
    valid_loader = torch.utils.data.DataLoader(valid_set, batch_size=train_config.batch_size, collate_fn=collate,
                                               num_workers=train_config.workers)
    torch.manual_seed(train_config.seed)
    model = build_model(model_name, model_config, input_dim=input_dim, num_classes=len(labels)).to(device)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "conv" in type(_owner(model, n)).__name__.lower()]
    decay_ids = {id(p) for p in decay}
    others = [p for p in model.parameters() if id(p) not in decay_ids]
    optimiser = torch.optim.Adam([{"params": decay, "weight_decay": train_config.weight_decay},
                                  {"params": others, "weight_decay": 0.0}], lr=train_config.lr)
    if train_config.loss == "focal":
        loss_fn = lambda logits, y: focal_loss(logits, y, train_config.focal_gamma)  # noqa: E731
    else:
        loss_fn = torch.nn.functional.cross_entropy

    start_epoch, best = 1, {"ua": -1.0, "epoch": 0, "weights": None}
    if state is not None:
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        start_epoch = state["epoch"] + 1
        best = {"ua": state["best_ua"], "epoch": state["best_epoch"], "weights": state["best_weights"]}
        _truncate_log(log_path, state["epoch"])
        log(f"fold {fold.index}: resuming after epoch {state['epoch']}")
    elif log_path.exists():
        log_path.unlink()
    begin = time.monotonic()
    epoch = start_epoch - 1
    for epoch in range(start_epoch, train_config.epochs + 1):
        if epoch - best["epoch"] > train_config.patience and best["epoch"] > 0:
            epoch -= 1
            break
        tick = time.monotonic()
        lr = train_config.lr_at(epoch)
        for group in optimiser.param_groups:
            group["lr"] = lr
        torch.manual_seed(train_config.seed * 100003 + epoch)  # dropout masks and batch order per epoch
        order = torch.Generator().manual_seed(train_config.seed * 100003 + epoch)
        loader = torch.utils.data.DataLoader(train_set, batch_size=train_config.batch_size, shuffle=True,
                                             generator=order, collate_fn=collate, num_workers=train_config.workers)
        model.train()
        total, count = 0.0, 0
        for feats, lengths, y in loader:
            loss = loss_fn(model(feats.to(device), lengths), y.to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if train_config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), train_config.grad_clip)
            optimiser.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        probs, truth, valid_loss = evaluate_loader(model, valid_loader, device, loss_fn)
        valid = scores(confusion(truth, probs.argmax(axis=1), len(labels)))
        if valid["UA"] > best["ua"]:
            best = {"ua": valid["UA"], "epoch": epoch,
                    "weights": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        seconds = time.monotonic() - tick
        _append_log(log_path, [epoch, f"{total / count:.5f}", f"{valid_loss:.5f}", f"{valid['UA']:.4f}",
                               f"{valid['WA']:.4f}", f"{lr:.3g}", f"{seconds:.2f}"])
        _save_state(state_path, model, optimiser, epoch, best, fingerprint, finished=False)
        log(f"fold {fold.index} epoch {epoch}: train loss {total / count:.3f}, valid UA {valid['UA']:.3f} "
            f"WA {valid['WA']:.3f} (best {best['ua']:.3f} @ {best['epoch']}), {seconds:.1f} s")
    Checkpoint(model=model_name, model_config=dataclasses.asdict(model_config), feature_set=feature_set,
               feature_config=feature_config, labels=labels, norm_mean=torch.from_numpy(mean),
               norm_std=torch.from_numpy(std), train_config=dataclasses.asdict(train_config),
               state_dict=best["weights"], metrics={"valid_UA": best["ua"], "best_epoch": best["epoch"],
                                                    "epochs_run": epoch},
               utterance_feature_config=utterance_config).save(ckpt_path)
    _save_state(state_path, model, optimiser, epoch, best, fingerprint, finished=True)
    return FoldResult(fold, out_dir, best["epoch"], best["ua"], epoch, time.monotonic() - begin, False)


def _owner(model, param_name: str):
    module = model
    for part in param_name.split(".")[:-1]:
        module = getattr(module, part)
    return module


def _save_state(path, model, optimiser, epoch, best, fingerprint, *, finished: bool) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimiser": optimiser.state_dict(), "epoch": epoch,
                "best_ua": best["ua"], "best_epoch": best["epoch"], "best_weights": best["weights"],
                "fingerprint": json.loads(json.dumps(fingerprint)), "finished": finished}, tmp)
    os.replace(tmp, path)


def _append_log(path: Path, row: list) -> None:
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(LOG_COLUMNS)
        w.writerow(row)
        fh.flush()
        os.fsync(fh.fileno())


def _truncate_log(path: Path, last_epoch: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= last_epoch]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as fh:
        csv.writer(fh).writerows(kept)
    os.replace(tmp, path)


def train_run(manifest, store_path, *, model_name: str, out_dir, protocol: str = "speaker-kfold",
              folds: int = 5, fold: int | None = None, valid_speakers: int = 2,
              test_speakers: list[str] | None = None, split_column: str = "split",
              model_overrides: dict | None = None, train_config: TrainConfig | None = None,
              utterance_store=None, log: Callable[[str], None] = lambda m: None) -> list[FoldResult]:
    """Split ``manifest`` by ``protocol`` and train every fold (or only ``fold``).

    Raises
    ------
    SertoolError
        Bad protocol settings, unlabelled rows, a store without features for
        some rows, or a run folder holding a different run.
    """
    from sertool.models import build_model_config

    train_config = train_config or TrainConfig()
    utterances = read_manifest(manifest)
    unlabelled = [u.id for u in utterances if not u.label]
    if unlabelled:
        raise SertoolError(f"{manifest}: {len(unlabelled)} rows have no label (e.g. {unlabelled[0]!r}); "
                           "training needs labels")
    labels = sorted({u.label for u in utterances})
    model_overrides = dict(model_overrides or {})
    if utterance_store:
        from sertool.models import MODELS, model_names
        from sertool.store import FeatureStore

        model_names()
        if "speaker_dim" not in {f.name for f in dataclasses.fields(MODELS[model_name][1])}:
            raise ConfigError(f"model {model_name!r} takes no utterance-level vector; --utterance-store works "
                              "with models that have a speaker_dim setting (mscnn_spu, mscnn_spu_att)")
        with FeatureStore(utterance_store) as extra:
            model_overrides["speaker_dim"] = extra.dim
    model_config = build_model_config(model_name, model_overrides)
    all_folds = make_folds(utterances, protocol, folds=folds, valid_speakers=valid_speakers,
                           test_speakers=test_speakers, split_column=split_column, seed=train_config.seed, warn=log)
    if fold is not None and not 0 <= fold < len(all_folds):
        raise ConfigError(f"--fold {fold}: this protocol has folds 0-{len(all_folds) - 1}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_json(out_dir / "run.json", {"manifest": str(Path(manifest).resolve()),
                                        "store": str(Path(store_path).resolve()), "protocol": protocol,
                                        "folds": len(all_folds), "model": model_name, "labels": labels,
                                        "utterance_store": str(Path(utterance_store).resolve()) if utterance_store
                                        else None})
    results = []
    for f in all_folds:
        if fold is not None and f.index != fold:
            continue
        log(f"fold {f.index} ({f.name}): {len(f.train)} train, {len(f.valid)} valid, {len(f.test)} test utterances")
        results.append(train_fold(f, utterances=utterances, store_path=Path(store_path), model_name=model_name,
                                  model_config=model_config, train_config=train_config, labels=labels,
                                  out_dir=out_dir / f"fold-{f.index}",
                                  utterance_store=Path(utterance_store) if utterance_store else None, log=log))
    return results
