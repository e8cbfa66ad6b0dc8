"""``sertool export``: a checkpoint as an ONNX or TorchScript model."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="model.onnx (ONNX, scored by onnxruntime) or model.pt (TorchScript).")
def export(checkpoint, output):
    """Write CHECKPOINT (or a bundled model: 'default', 'ravdess', 'ravdess-speaker') as an ONNX or TorchScript model.

    The file holds the network and, inside it, sertool.json: feature config,
    labels and normalisation. The export is checked against the checkpoint
    on random inputs before it is kept; `sertool predict model.onnx FILES`
    scores with it. Needs the export extra: pip install 'sertool[export]'.
    """
    start = time.monotonic()
    result = api.export(checkpoint, output=output)
    log(f"export: {result.format} model written to {output}; probabilities within "
        f"{result.max_difference:.1g} of the checkpoint on {len(result.checked_inputs)} random batches "
        f"({time.monotonic() - start:.1f} s)")
