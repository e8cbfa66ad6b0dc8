"""``sertool prepare``: scan a corpus folder into a manifest CSV."""

from __future__ import annotations

import time

import click

from sertool import api
from sertool.cli.app import log, log_warnings
from sertool.cli.options import comma_list, max_failures_option, registry_choice
from sertool.errors import ConfigError


def corpus_layouts() -> list[tuple[str, str]]:
    """``(name, layout)`` of every registered corpus, in registry order: the layout its errors quote."""
    from sertool.corpora import PREPARERS  # numpy: heavy, loaded only when `prepare --help` is shown

    return [(name, corpus.expected) for name, corpus in PREPARERS.items()]


class PrepareCommand(click.Command):
    """``sertool prepare``, whose help lists the layout of every registered corpus (read from the registry)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        with formatter.section("CORPUS layouts (under DIR)"):
            formatter.write_dl(corpus_layouts())


@click.command(cls=PrepareCommand)
@click.argument("corpus", metavar="CORPUS", type=registry_choice("corpus"))
@click.argument("root", metavar="DIR", type=click.Path(file_okay=False, path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Manifest CSV to write.")
@click.option("--label-set", default=None, help="iemocap: 4 (default; happy+excited), 4-noexc, 6, all, or dimensional (every utterance, for --target training).")
@click.option("--subset", default=None, help="iemocap: all (default), improvised or scripted.")
@click.option("--no-labels", is_flag=True, help="folder: list every audio file, unlabelled (for predict).")
@click.option("--speaker-regex", default=None,
              help="folder: regex on the relative path whose first group is the speaker.")
@click.option("--speakers", default=None, help="Keep only these speakers (comma-separated).")
@click.option("--per-speaker", type=click.IntRange(1), default=None,
              help="Keep N evenly spaced utterances per speaker (a quick subset for smoke tests).")
@click.option("--vad-split", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Cut each recording into its speech regions (Silero VAD): one FLAC per region in DIR, one row "
                   "each, with parent_id, start and end columns (pip install 'sertool[vad]').")
@max_failures_option()
@click.pass_context
def prepare(ctx, corpus, root, output, label_set, subset, no_labels, speaker_regex, speakers, per_speaker,
            vad_split, max_failures):
    """Scan a corpus folder and write a manifest CSV (one row per utterance).

    Labels are canonical names (angry, happy, sad, neutral, ...); the corpus's
    own code is kept in the code column. Paths in the CSV are relative to the
    CSV's folder. Unreadable audio files are listed in <output stem>.failures.csv
    and left out; warnings (e.g. a speaker whose files disagree on gender) go to
    <output stem>.warnings.csv.
    """
    start = time.monotonic()
    try:
        result = api.prepare(corpus, root, output=output, label_set=label_set, subset=subset,
                             labels=False if no_labels else None, speaker_regex=speaker_regex,
                             speakers=comma_list(speakers), per_speaker=per_speaker, vad_split=vad_split,
                             max_failures=max_failures)
    except ConfigError as exc:  # options that do not fit the corpus: a usage error
        raise click.UsageError(str(exc)) from None
    report, labels = result.report, result.label_counts()
    scanned = f"; {report.scan.text()}" if report.scan.total else ""
    log(f"prepare {corpus}: {len(result.rows)} utterances, {len(result.speakers)} speakers, {len(labels)} labels "
        f"-> {result.manifest} ({time.monotonic() - start:.1f} s){scanned}")
    log("  " + ", ".join(f"{label or '(none)'} {n}" for label, n in labels.items()))
    if report.skipped:
        log(f"  {report.skipped} files left out on purpose (outside the label set/subset, or excluded by the "
            "corpus module's rules)")
    if report.failed:
        log(f"  {report.failed} unreadable files left out, see {result.failures_path}")
    report.write_warnings(result.manifest.with_name(result.manifest.stem + ".warnings.csv"))
    log_warnings(report)
    ctx.exit(report.exit_code())
