"""The run folder: one reader/writer for what train writes and evaluate, fuse and bench read.

Layout::

    RUN_DIR/run.json                 manifest, store, protocol, folds, model, labels (and members of a fused run)
    RUN_DIR/fold-<i>/split.csv       id, speaker, label, role (train / valid / test)
    RUN_DIR/fold-<i>/config.json     model, feature, train configs and the fold's speakers
    RUN_DIR/fold-<i>/checkpoint.pt   the selected model (see ``train --selection``)
    RUN_DIR/fold-<i>/checkpoint-<selection>.pt   the alternatives (best, average)
    RUN_DIR/fold-<i>/train_log.csv   one row per epoch (or per hyperparameter value for classic models)

Every reader here checks what it reads: a truncated or malformed file is a :class:`DamagedRunFile` naming
the file and the command that rewrites it (:func:`rewrite_hint`); a run whose ``run.json`` counts more
folds than have a checkpoint is a :class:`SertoolError` naming the missing folds (:func:`finished_folds`).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from sertool.io.atomic import atomic_write
from sertool.errors import SertoolError

ROLES = ("train", "valid", "test")
RUN_FILE = "run.json"
SPLIT_FILE = "split.csv"
CONFIG_FILE = "config.json"
#: the last finished epoch of a fold (weights, optimiser, best and averaged weights), for resuming
STATE_FILE = "state.pt"
LOG_FILE = "train_log.csv"
#: columns of a torch model's ``train_log.csv`` (one row per epoch)
LOG_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_UA", "valid_WA", "lr", "seconds")
#: the same for a regression fold (``train --target``): mean CCC and mean RMSE over its targets
REGRESSION_LOG_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_CCC", "valid_RMSE", "lr", "seconds")
#: columns every ``split.csv`` has
SPLIT_COLUMNS = ("id", "speaker", "label", "role")
#: a fold folder's name
FOLD_NAME = re.compile(r"fold-(\d+)")
#: run.json keys that hold text, and the type each other key read back must have
_RUN_TYPES = {"manifest": str, "store": str, "utterance_store": (str, type(None)), "model": str,
              "protocol": (str, type(None)), "folds": (int, type(None)), "labels": list, "members": list,
              "folds_requested": list, "targets": list}


class DamagedRunFile(SertoolError):
    """A file of a run folder is truncated, malformed or of the wrong shape."""


def fold_dir(run_dir, index: int) -> Path:
    """``RUN_DIR/fold-<index>``."""
    return Path(run_dir) / f"fold-{index}"


def rewrite_hint(run_dir, info: dict | None = None) -> str:
    """How to rewrite a run folder's files: rerun the ``train`` (or ``fuse``) command that made it.

    Parameters
    ----------
    run_dir
        The run folder.
    info : dict, optional
        Its ``run.json`` when readable (a fused run is rewritten by ``fuse``).

    Returns
    -------
    str
        A sentence naming the command.
    """
    if info and info.get("members"):
        return f"rerun `sertool fuse RUN... -o {run_dir}` with the same runs"
    return (f"rerun the `sertool train MANIFEST STORE ... -o {run_dir}` that made it (same options: it resumes, "
            "training only what is missing or damaged)")


def damaged(path, problem: str, fix: str) -> DamagedRunFile:
    """``DamagedRunFile``: "<path> is damaged (<problem>); <fix>"."""
    return DamagedRunFile(f"{path} is damaged ({problem}); {fix}")


def atomic_json(path: Path, data) -> None:
    """Write ``data`` as JSON through a temp file and a rename."""
    with atomic_write(path) as fh:
        fh.write(json.dumps(data, indent=2, sort_keys=True, default=str))


def write_split(path: Path, fold, by_id: dict) -> None:
    """``split.csv`` of ``fold`` (a :class:`~sertool.training.splits.Fold`); ``by_id``: id -> Utterance."""
    with atomic_write(path) as fh:
        w = csv.writer(fh)
        w.writerow(list(SPLIT_COLUMNS))
        for role, ids in zip(ROLES, (fold.train, fold.valid, fold.test)):
            for i in ids:
                w.writerow([i, by_id[i].speaker, by_id[i].label, role])


def read_csv_rows(path, columns, *, what: str, fix: str) -> list[dict]:
    """The rows of a CSV of a run folder, each with every one of ``columns`` filled.

    Parameters
    ----------
    path
        The CSV.
    columns
        Columns every row must have (the header may have more).
    what
        Its kind, for the message (``split.csv``, ``metrics.csv``).
    fix
        The sentence naming the command that rewrites the file (e.g. :func:`rewrite_hint`).

    Returns
    -------
    list of dict
        Column -> text.

    Raises
    ------
    DamagedRunFile
        No header with ``columns``, a row with a cell too few or too many (a truncated or joined line),
        or bytes that are not UTF-8 text.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise damaged(path, f"no {', '.join(missing)} column in its header", fix)
            rows = []
            for row in reader:
                if None in row or any(row.get(c) is None for c in reader.fieldnames):
                    count = "more" if None in row else "fewer"
                    raise damaged(path, f"line {reader.line_num} has {count} cells than the header's "
                                        f"{len(reader.fieldnames)}", fix)
                rows.append(row)
            return rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise damaged(path, f"not a {what} CSV: {str(exc).splitlines()[0][:80]}", fix) from None


def read_split_rows(path, run_dir=None) -> list[dict]:
    """The rows (id, speaker, label, role) of a fold's ``split.csv``; :class:`DamagedRunFile` for a damaged one.

    The role counts are checked against the fold's ``config.json`` when it is readable, so a file cut
    at a line boundary is caught too.
    """
    path = Path(path)
    run_dir = run_dir if run_dir is not None else path.parent.parent
    fix = rewrite_hint(run_dir, _info_if_readable(run_dir))
    if not path.is_file():
        raise SertoolError(f"{path}: not found; {fix}")
    rows = read_csv_rows(path, SPLIT_COLUMNS, what=SPLIT_FILE, fix=fix)
    bad = next((k for k, r in enumerate(rows, start=2) if r["role"] not in ROLES or not r["id"]), None)
    if bad is not None:
        raise damaged(path, f"line {bad}: role {rows[bad - 2]['role']!r} is not one of {', '.join(ROLES)}", fix)
    expected = _role_counts(path.parent / CONFIG_FILE)
    found = {role: sum(r["role"] == role for r in rows) for role in ROLES}
    if expected and found != expected:
        raise damaged(path, f"{found['train']}/{found['valid']}/{found['test']} train/valid/test rows where "
                            f"{CONFIG_FILE} counts {expected['train']}/{expected['valid']}/{expected['test']}", fix)
    return rows


def _info_if_readable(run_dir) -> dict | None:
    """run.json of ``run_dir`` for naming the fix in a message; None when it is damaged."""
    try:
        return read_run_info(run_dir)
    except DamagedRunFile:
        return None


def _role_counts(config_path: Path) -> dict | None:
    """{role: utterance count} recorded in a fold's ``config.json``; None when it is absent or unreadable."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not all(isinstance(config.get(r), int) for r in ROLES):
        return None
    return {role: config[role] for role in ROLES}


def read_split(path) -> dict[str, list[str]]:
    """role (train / valid / test) -> utterance ids, from a fold's ``split.csv`` (:func:`read_split_rows`)."""
    roles: dict[str, list[str]] = {role: [] for role in ROLES}
    for row in read_split_rows(path):
        roles[row["role"]].append(row["id"])
    return roles


def read_run_info(run_dir) -> dict:
    """``run.json`` of ``run_dir`` ({} when there is none).

    Raises
    ------
    DamagedRunFile
        A file that is not a JSON object, or one whose known keys hold values of the wrong type.
    """
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise damaged(path, f"not JSON: {str(exc).splitlines()[0][:80]}", rewrite_hint(run_dir)) from None
    if not isinstance(info, dict):
        raise damaged(path, f"a JSON {type(info).__name__}, not an object", rewrite_hint(run_dir))
    wrong = [k for k, kind in _RUN_TYPES.items() if k in info and not isinstance(info[k], kind)]
    if isinstance(info.get("folds"), bool) or (isinstance(info.get("folds"), int) and info["folds"] < 1):
        wrong.append("folds")
    if isinstance(info.get("folds_requested"), list) and not all(
            isinstance(i, int) and not isinstance(i, bool) for i in info["folds_requested"]):
        wrong.append("folds_requested")
    if isinstance(info.get("members"), list) and not all(isinstance(m, dict) and isinstance(m.get("store"), str)
                                                         for m in info["members"]):
        wrong.append("members")
    if wrong:
        raise damaged(path, f"key(s) {', '.join(sorted(set(wrong)))} hold values of the wrong type",
                      rewrite_hint(run_dir, info))
    return info


def read_train_log(path) -> list[dict]:
    """The rows of a fold's ``train_log.csv`` ([] when there is none), every cell a number.

    Raises
    ------
    DamagedRunFile
        A truncated or non-numeric file.
    """
    path = Path(path)
    if not path.exists():
        return []
    fix = rewrite_hint(path.parent.parent, _info_if_readable(path.parent.parent))
    rows = read_csv_rows(path, (), what=LOG_FILE, fix=fix)
    for line, row in enumerate(rows, start=2):
        try:
            [float(v) for v in row.values()]
        except (TypeError, ValueError):
            raise damaged(path, f"line {line} is not all numbers", fix) from None
    return rows


def fold_index(path) -> int | None:
    """The index of a fold folder (``fold-3`` -> 3); None for any other name."""
    match = FOLD_NAME.fullmatch(Path(path).name)
    return int(match.group(1)) if match else None


def fold_dirs(run_dir, checkpoint: str = "checkpoint.pt") -> list[Path]:
    """Fold folders of ``run_dir`` holding ``checkpoint``, in fold order."""
    run_dir = Path(run_dir)
    dirs = sorted((d for d in run_dir.glob("fold-*") if fold_index(d) is not None and (d / checkpoint).is_file()),
                  key=fold_index)
    if not dirs:
        raise SertoolError(f"{run_dir}: no fold-*/{checkpoint}; train first with `sertool train ... -o {run_dir}`")
    return dirs


def expected_folds(run_dir, info: dict) -> list[int]:
    """The fold indices a run has: ``0 .. folds-1`` of its run.json, else those of its ``fold-*`` folders (0 up)."""
    if info.get("folds"):
        return list(range(info["folds"]))
    present = [i for i in map(fold_index, Path(run_dir).glob("fold-*")) if i is not None]
    return list(range(max(present) + 1)) if present else []


def finished_folds(run_dir, checkpoint: str = "checkpoint.pt", *, info: dict | None = None,
                   allow_missing: bool = False, log=lambda m: None) -> tuple[list[Path], int]:
    """The fold folders holding ``checkpoint``, checked against the folds the run has.

    A fold ``train`` was asked for (run.json's ``folds_requested``; every fold of a run.json without it)
    that has no ``checkpoint`` is missing: an error unless ``allow_missing``. Folds never asked for
    (``train --fold``) are logged as not trained. Either way the caller learns how many folds the run has.

    Parameters
    ----------
    run_dir
        The run folder.
    checkpoint
        The checkpoint file each fold needs (``checkpoint.pt``, ``checkpoint-best.pt`` ...).
    info : dict, optional
        Its run.json (read when not given).
    allow_missing : bool
        Log the missing folds instead of raising.
    log
        Called with the lines naming folds not scored.

    Returns
    -------
    list of Path
        The finished folds' folders, in fold order.
    int
        How many folds the run has (its run.json's ``folds``, else from its folders).

    Raises
    ------
    SertoolError
        No fold holds ``checkpoint``; or (unless ``allow_missing``) a fold asked for lacks it, naming them.
    """
    info = read_run_info(run_dir) if info is None else info
    finished = fold_dirs(run_dir, checkpoint)
    every = expected_folds(run_dir, info)
    total = max(len(every), len(finished))
    have = {fold_index(d) for d in finished}
    requested = set(info.get("folds_requested", every))
    missing = [f"fold-{i}" for i in every if i in requested and i not in have]
    untrained = [f"fold-{i}" for i in every if i not in requested and i not in have]
    if missing:
        text = f"{run_dir}: {len(missing)} of its {total} folds have no {checkpoint} ({', '.join(missing)})"
        if not allow_missing:
            raise SertoolError(f"{text}; train them: {rewrite_hint(run_dir, info)}; or pass --allow-missing-folds "
                               f"to score the {len(finished)} of {total} folds there are")
        log(f"warning: {text}: left out (--allow-missing-folds)")
    if untrained:
        log(f"warning: {run_dir}: {', '.join(untrained)} never trained (train --fold): left out")
    return finished, total


def checkpoint_name(selection: str | None) -> str:
    """File name of a fold's checkpoint: ``checkpoint.pt`` (selected) or ``checkpoint-<selection>.pt``."""
    return "checkpoint.pt" if not selection else f"checkpoint-{selection}.pt"
