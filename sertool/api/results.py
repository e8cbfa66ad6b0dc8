"""Result types of the API calls whose library functions return plain values.

The other calls return the library's own dataclasses (:class:`~sertool.corpora.PrepareResult`,
:class:`~sertool.extraction.pipeline.ExtractResult`, :class:`~sertool.io.report.RunReport`,
:class:`~sertool.training.trainer.FoldResult`, :class:`~sertool.scoring.evaluate.EvaluationResult`,
:class:`~sertool.scoring.fuse.FusionResult`, :class:`~sertool.inference.predict.Predictions`,
:class:`~sertool.inference.stream.StreamResult`); :mod:`sertool` exports them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sertool.configs import to_toml_table


@dataclass
class TrainSetup:
    """The configs a training run would use (:func:`sertool.train_setup`).

    Attributes
    ----------
    model, recipe
        The model name and its recipe (``default`` or ``paper``).
    level, features
        The features the model expects: ``frame`` or ``utterance`` level, and its usual preset.
    model_settings
        The model overrides given (TOML ``[model]`` table, then ``model_settings``).
    model_config, train_config
        The built model config and :class:`~sertool.training.config.TrainConfig`.
    """

    model: str
    recipe: str
    level: str
    features: str
    model_settings: dict[str, Any]
    model_config: Any
    train_config: Any

    def to_toml(self) -> str:
        """A comment line, then ``[model]`` and ``[train]`` tables (a ``--config`` file for ``train``)."""
        lines = [f"# {self.model}: {self.level}-level features, expects --features {self.features}; "
                 f"recipe {self.recipe}"]
        for title, config in (("model", self.model_config), ("train", self.train_config)):
            lines.append(f"[{title}]\n{to_toml_table(config)}")
        return "\n".join(lines) + "\n"


@dataclass
class ExportResult:
    """An exported model (:func:`sertool.export`).

    Attributes
    ----------
    format
        ``onnx`` or ``torchscript``.
    path
        The file written.
    max_difference
        Largest absolute probability difference to the checkpoint over the check inputs.
    checked_inputs
        Shapes of the random check batches, each ``[batch, frames, features]`` (or ``[batch, features]``).
    """

    format: str
    path: Path
    max_difference: float
    checked_inputs: list[list[int]]


@dataclass
class Comparison:
    """Evaluated runs side by side (:func:`sertool.compare`); iterates over ``rows``.

    Attributes
    ----------
    rows
        One dict per run, keyed by :data:`sertool.scoring.compare.COLUMNS`.
    table
        The rows as a Markdown table.
    output
        Where the table was written (``.md``: Markdown, else CSV), or None.
    """

    rows: list[dict]
    table: str
    output: Path | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __getitem__(self, index: int) -> dict:
        return self.rows[index]


@dataclass
class StoreDescription:
    """A feature store's summary (:func:`sertool.store_describe`): ``text`` is what ``sertool store describe`` prints.

    Attributes
    ----------
    path
        The store file.
    text
        Config, entry count and the first entries' shapes, one line each.
    """

    path: Path
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class MergeResult:
    """Stores merged into one (:func:`sertool.store_merge`).

    Attributes
    ----------
    output
        The store written or added to.
    entries
        Entries copied.
    stores
        The stores read.
    """

    output: Path
    entries: int
    stores: list[Path]
