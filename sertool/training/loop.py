"""The torch training loop of one fold: optimiser, loss, epochs, validation, weight averaging, checkpoints.

Randomness is seeded per (seed, epoch), so a resumed run replays the same batches and dropout masks as
an uninterrupted one. Imports torch: load it only when a model trains.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from sertool.inference.runner import evaluate_loader
from sertool.metrics import confusion, scores
from sertool.models import build_model
from sertool.models.common import fast_layout, focal_loss
from sertool.models.contract import decay_kernels
from sertool.training import distributed, regression
from sertool.training.checkpoints import (accumulate, append_log, save_state, truncate_log, weights,
                                          write_checkpoint)
from sertool.training.config import TrainConfig
from sertool.training.data import collate
from sertool.training.device import autocast, resolved_precision
from sertool.training.folds import FoldResult, FoldSetup
from sertool.training.runs import LOG_COLUMNS, REGRESSION_LOG_COLUMNS


def _epoch_seed(config: TrainConfig, epoch: int) -> int:
    return config.seed * 100003 + epoch


def optimiser(model, config: TrainConfig):
    """The optimiser, with weight decay on matrices (or only convolution kernels) and none on the rest.

    Parameters
    ----------
    model : torch.nn.Module
    config : TrainConfig
        ``optimizer``, ``lr``, betas, momentum, ``weight_decay`` and ``decay_params`` (``conv``: the
        LIGHT-SERNET paper's L2 on convolution kernels only, as the model declares them).

    Returns
    -------
    torch.optim.Optimizer
        Two parameter groups: decayed, then the others.
    """
    decay = decay_kernels(model) if config.decay_params == "conv" else [p for p in model.parameters() if p.ndim > 1]
    decay_ids = {id(p) for p in decay}
    groups = [{"params": decay, "weight_decay": config.weight_decay},
              {"params": [p for p in model.parameters() if id(p) not in decay_ids], "weight_decay": 0.0}]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=True)
    cls = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
    return cls(groups, lr=config.lr, betas=(config.beta1, config.beta2))


def loss_function(config: TrainConfig, class_counts: list[int]):
    """``loss(logits (B, C), target (B,)) -> scalar``: cross-entropy or focal loss.

    Parameters
    ----------
    config : TrainConfig
        ``loss``, ``focal_gamma``, ``label_smoothing``, ``balance`` (``loss``: class weights
        inversely proportional to ``class_counts``).
    class_counts : list of int
        Training utterances per class.

    Returns
    -------
    callable
    """
    weight = None
    if config.balance == "loss":
        counts = torch.tensor(class_counts, dtype=torch.float32).clamp(min=1)
        weight = counts.sum() / (len(counts) * counts)
    if config.loss == "focal":
        return lambda logits, y: focal_loss(logits, y, config.focal_gamma)
    smoothing = config.label_smoothing

    def ce(logits, y):
        w = weight.to(logits.device) if weight is not None else None
        return torch.nn.functional.cross_entropy(logits, y, weight=w, label_smoothing=smoothing)

    return ce


def class_counts(setup: FoldSetup) -> list[int]:
    """Training utterances per class index of the fold."""
    counts = [0] * len(setup.labels)
    for y in setup.train_set.labels:
        counts[y] += 1
    return counts


def _sampling_weights(setup: FoldSetup, *, by_corpus: bool) -> list[float]:
    """Per training item: 1 / the count of its class (``sampler``), or of its (corpus, class) pair (``corpus``).

    ``corpus``: every corpus and every class within it is drawn equally often, so a large corpus does not
    drown a small one.
    """
    labels = setup.train_set.labels
    groups = list(zip(getattr(setup.train_set, "corpora", None) or [""] * len(labels), labels)) if by_corpus \
        else [("", y) for y in labels]
    counts: dict = {}
    for group in groups:
        counts[group] = counts.get(group, 0) + 1
    return [1.0 / counts[group] for group in groups]


def _train_loader(setup: FoldSetup, epoch: int):
    """The epoch's batches: shuffled (or class-balanced) by the epoch seed; under DDP this rank's share."""
    config = setup.train_config
    order = torch.Generator().manual_seed(_epoch_seed(config, epoch))
    options = dict(batch_size=config.batch_size, collate_fn=collate, num_workers=config.workers)
    world = distributed.world()
    if config.balance in ("sampler", "corpus"):
        per_item = _sampling_weights(setup, by_corpus=config.balance == "corpus")
        sampler = torch.utils.data.WeightedRandomSampler(per_item, len(per_item), replacement=True, generator=order)
    elif world.active:
        sampler = torch.randperm(len(setup.train_set), generator=order).tolist()  # the order every rank shares
    else:
        return torch.utils.data.DataLoader(setup.train_set, shuffle=True, generator=order, **options)
    if world.active:  # this rank's share of the order; the global batch stays batch_size
        sampler = distributed.shard(list(sampler))
        options["batch_size"] = max(1, config.batch_size // world.size)
    return torch.utils.data.DataLoader(setup.train_set, sampler=sampler, **options)


def _step_loss(config: TrainConfig, model, loss_fn, feats, lengths, y):
    """The loss of one batch (with mixup when ``config.mixup`` > 0)."""
    if config.mixup <= 0:
        return loss_fn(model(feats, lengths).float(), y)
    lam = float(torch.distributions.Beta(config.mixup, config.mixup).sample())
    perm = torch.randperm(len(y))
    feats = lam * feats + (1 - lam) * feats[perm]
    lengths = torch.maximum(lengths, lengths[perm])
    logits = model(feats, lengths).float()
    return lam * loss_fn(logits, y) + (1 - lam) * loss_fn(logits, y[perm])


def _mean_over_ranks(total: float, count: int) -> float:
    if distributed.world().active:
        sums = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(sums)
        total, count = float(sums[0]), int(sums[1])
    return total / max(count, 1)


def train_epoch(setup: FoldSetup, model, optimiser, loss_fn, epoch: int) -> float:
    """One pass over the training set, the learning rate set per step.

    Parameters
    ----------
    setup : FoldSetup
    model : torch.nn.Module
        The network, or its DistributedDataParallel wrapper under DDP.
    optimiser : torch.optim.Optimizer
    loss_fn : callable
    epoch : int
        1-based; seeds dropout, masks, mixup and batch order.

    Returns
    -------
    float
        The mean training loss (over all ranks).
    """
    config = setup.train_config
    torch.manual_seed(_epoch_seed(config, epoch))
    setup.train_set.epoch_seed = _epoch_seed(config, epoch)
    loader = _train_loader(setup, epoch)
    steps = len(loader)
    model.train()
    total, count = 0.0, 0
    for step, (feats, lengths, y) in enumerate(loader):
        for group in optimiser.param_groups:
            group["lr"] = config.lr_at(epoch, step / steps)
        feats, y, lengths = feats.to(setup.device), y.to(setup.device), lengths.to(setup.device)
        with autocast(config, setup.device):
            loss = _step_loss(config, model, loss_fn, feats, lengths, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimiser.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
    return _mean_over_ranks(total, count)


def _loader(setup: FoldSetup, dataset):
    """Unshuffled batches of ``dataset`` (validation, batch-norm statistics)."""
    return torch.utils.data.DataLoader(dataset, batch_size=setup.train_config.batch_size, collate_fn=collate,
                                       num_workers=setup.train_config.workers)


def validate(setup: FoldSetup, model, loss_fn) -> tuple[dict, float]:
    """Scores of ``model`` on the fold's validation speakers.

    Parameters
    ----------
    setup : FoldSetup
    model : torch.nn.Module
    loss_fn : callable or None

    Returns
    -------
    tuple of (dict, float)
        Scores (``UA``, ``WA``, ...) and the mean loss; nan when the fold has no validation utterances.
    """
    if setup.regression is not None:  # CCC and RMSE in the two score slots (training.regression)
        return regression.validate(setup, model, loss_fn)
    if not len(setup.valid_set):
        return {"UA": float("nan"), "WA": float("nan")}, float("nan")
    probs, truth, loss = evaluate_loader(model, _loader(setup, setup.valid_set), setup.device, loss_fn)
    return scores(confusion(truth, probs.argmax(axis=1), len(setup.labels))), loss


def averaged_model(setup: FoldSetup, model, total: dict, count: int):
    """``model`` with the mean of the accumulated weights, batch-norm statistics recomputed on training data.

    Parameters
    ----------
    setup : FoldSetup
    model : torch.nn.Module
        Changed in place.
    total : dict
        Running weight sum (:func:`~sertool.training.checkpoints.accumulate`).
    count : int
        Epochs summed.

    Returns
    -------
    torch.nn.Module
        ``model``, in evaluation mode.
    """
    reference = model.state_dict()
    model.load_state_dict({k: (v / count).to(reference[k].dtype) if v.is_floating_point() else v
                           for k, v in total.items()})
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if norms:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        torch.manual_seed(setup.train_config.seed * 100003)
        model.train()
        with torch.no_grad():
            for feats, lengths, _ in _loader(setup, setup.train_set):
                model(feats.to(setup.device), lengths)
        for m in norms:
            m.momentum = 0.1
    return model.eval()


def _candidates(setup: FoldSetup, model, best: dict, average: dict, epochs_run: int) -> dict:
    """selection name -> (model, epoch): last, best (when kept) and average (when the run reached the last epochs)."""
    candidates = {"last": (model, epochs_run)}
    if best["weights"] is not None:
        best_model = build_model(setup.model_name, setup.model_config, input_dim=setup.info["input_dim"],
                                 num_classes=len(setup.labels))
        best_model.load_state_dict(best["weights"])
        candidates["best"] = (best_model, best["epoch"])
    if average["count"]:
        candidates["average"] = (averaged_model(setup, copy.deepcopy(model), average["sum"], average["count"]),
                                 epochs_run)
    return candidates


def write_checkpoints(setup: FoldSetup, model, best: dict, average: dict, epochs_run: int) -> float:
    """checkpoint-best.pt, checkpoint-last.pt, checkpoint-average.pt and checkpoint.pt (``selection``'s).

    Parameters
    ----------
    setup : FoldSetup
    model : torch.nn.Module
        The last epoch's model.
    best : dict
        ``ua``, ``epoch`` and ``weights`` of the best validation epoch.
    average : dict
        ``sum`` and ``count`` of the last epochs' weights.
    epochs_run : int

    Returns
    -------
    float
        The selected model's validation UA.
    """
    config = setup.train_config
    candidates = _candidates(setup, model, best, average, epochs_run)
    chosen = config.selection if config.selection in candidates else "best"
    if chosen != config.selection:
        setup.log(f"fold {setup.fold.index}: stopped before the last {config.average_last} epochs; "
                  "checkpoint.pt is the best-validation epoch")
    uas = {}
    for name, (candidate, epoch) in candidates.items():
        valid, _ = validate(setup, candidate, None)
        uas[name] = valid["UA"]
        metrics = {"valid_UA": valid["UA"], "best_epoch": best["epoch"], "epochs_run": epochs_run,
                   "selection": name, "epoch": epoch, "precision": resolved_precision(config, setup.device)}
        write_checkpoint(setup, f"checkpoint-{name}.pt", candidate, metrics)
        if name == chosen:
            write_checkpoint(setup, "checkpoint.pt", candidate, metrics)
    setup.log(f"fold {setup.fold.index}: valid {score_names(setup)[0]} "
              + ", ".join(f"{k} {v:.3f}" for k, v in uas.items())
              + f"; checkpoint.pt = {chosen}")
    return uas.get(chosen, float("nan"))


def _build(setup: FoldSetup):
    """The fold's model on its device, and what the epoch runs (under DDP its wrapper, gradients all-reduced)."""
    torch.manual_seed(setup.train_config.seed)
    model = fast_layout(build_model(setup.model_name, setup.model_config, input_dim=setup.info["input_dim"],
                                    num_classes=len(setup.labels)).to(setup.device))
    if not distributed.world().active:
        return model, model
    return model, DistributedDataParallel(model, device_ids=[setup.device.index] if setup.device.type == "cuda"
                                          else None)


def _resume(setup: FoldSetup, model, optimiser, state: dict | None) -> tuple[int, dict, dict]:
    """Load ``state`` (when resuming): first epoch to run, best epoch record, weight average record."""
    main = distributed.world().is_main
    if state is None:
        if main and setup.log_path.exists():
            setup.log_path.unlink()
        return 1, {"ua": -1.0, "epoch": 0, "weights": None}, {"sum": None, "count": 0}
    model.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    if main:
        truncate_log(setup.log_path, state["epoch"])
    setup.log(f"fold {setup.fold.index}: resuming after epoch {state['epoch']}")
    return (state["epoch"] + 1, {"ua": state["best_ua"], "epoch": state["best_epoch"], "weights": state["best_weights"]},
            {"sum": state.get("average_sum"), "count": state.get("average_count", 0)})


def _record_epoch(setup: FoldSetup, model, optimiser, epoch: int, train_loss: float, loss_fn, best: dict,
                  average: dict, tick: float) -> tuple[dict, dict]:
    """Rank 0 after an epoch: validate, update best and average, append the log row, save the state."""
    config = setup.train_config
    valid, valid_loss = validate(setup, model, loss_fn)
    ua = valid["UA"] if valid["UA"] == valid["UA"] else 0.0
    if ua > best["ua"] or not len(setup.valid_set):  # no validation set: the last epoch is "best"
        best = {"ua": valid["UA"], "epoch": epoch, "weights": weights(model)}
    if epoch > config.epochs - config.average_last:
        average = {"sum": accumulate(average["sum"], model), "count": average["count"] + 1}
    seconds = time.monotonic() - tick
    append_log(setup.log_path, [epoch, f"{train_loss:.5f}", f"{valid_loss:.5f}", f"{valid['UA']:.4f}",
                                f"{valid['WA']:.4f}", f"{config.lr_at(epoch):.3g}", f"{seconds:.2f}"],
               REGRESSION_LOG_COLUMNS if setup.regression is not None else LOG_COLUMNS)
    save_state(setup.state_path, {"model": model.state_dict(), "optimiser": optimiser.state_dict(),
                                  "epoch": epoch, "best_ua": best["ua"], "best_epoch": best["epoch"],
                                  "best_weights": best["weights"], "average_sum": average["sum"],
                                  "average_count": average["count"]}, setup.fingerprint, finished=False)
    first, second = score_names(setup)
    setup.log(f"fold {setup.fold.index} epoch {epoch}: train loss {train_loss:.3f}, valid {first} {valid['UA']:.3f} "
              f"{second} {valid['WA']:.3f} (best {best['ua']:.3f} @ {best['epoch']}), {seconds:.1f} s")
    return best, average


def sgd_fold(setup: FoldSetup, state: dict | None) -> FoldResult:
    """Train a torch model on one fold: the epoch loop with validation, per-epoch state and the final checkpoints.

    Parameters
    ----------
    setup : FoldSetup
    state : dict or None
        The saved state to resume from.

    Returns
    -------
    FoldResult
    """
    config = setup.train_config
    main = distributed.world().is_main
    model, trained = _build(setup)
    opt = optimiser(model, config)
    loss_fn = regression.regression_loss(config) if setup.regression is not None \
        else loss_function(config, class_counts(setup))
    start_epoch, best, average = _resume(setup, model, opt, state)
    begin, epoch = time.monotonic(), start_epoch - 1
    for epoch in range(start_epoch, config.epochs + 1):
        if config.patience and best["epoch"] > 0 and epoch - best["epoch"] > config.patience:
            epoch -= 1
            break
        tick = time.monotonic()
        train_loss = train_epoch(setup, trained, opt, loss_fn, epoch)
        if not main:  # rank 0 validates and writes; the others only need its early-stopping decision
            best["epoch"] = distributed.broadcast(None)
            continue
        best, average = _record_epoch(setup, model, opt, epoch, train_loss, loss_fn, best, average, tick)
        distributed.broadcast(best["epoch"])
    selected = float("nan")
    if main:
        selected = write_checkpoints(setup, model, best, average, epoch)
        save_state(setup.state_path, {"epoch": epoch, "best_ua": best["ua"], "best_epoch": best["epoch"]},
                   setup.fingerprint, finished=True)
    best_epoch, selected = distributed.broadcast((best["epoch"], selected))
    return FoldResult(setup.fold, setup.out_dir, best_epoch, selected, epoch, time.monotonic() - begin, False,
                      score_name=score_names(setup)[0])


def score_names(setup: FoldSetup) -> tuple[str, str]:
    """What the fold's two validation scores are: ``UA``, ``WA``; or ``CCC``, ``RMSE`` for a regression fold."""
    return regression.SCORE_NAMES if setup.regression is not None else ("UA", "WA")
