"""The slice datasets' builds on Apache Beam: TFDS's Beam support, for cohorts of thousands.

`kgan.records` builds a dataset with a local process pool by default. With a Beam runner
(`scripts/make_records.py ... --beam-runner DirectRunner`, or DataflowRunner, SparkRunner,
FlinkRunner with their pipeline options passed through) TFDS runs the same builder as a Beam
pipeline instead: every case becomes one element, sliced by `kgan.slice_tasks.run_task` on the
pipeline's workers, and TFDS's Beam writer shuffles by key and writes the shards. The cases,
their split, the slices and their keys are those of the local build, so the records are the
same (tests/test_records_beam.py compares them).

Needs the optional `beam` extra (`pip install 'kgan[beam]'`), imported only here.
"""

from __future__ import annotations

import collections
import glob
import os
from collections.abc import Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from kgan import names, slice_tasks, volumes


def pipeline_options(runner: str, extra: Sequence[str] = ()) -> PipelineOptions:
    """Beam options for a runner name ("DirectRunner", "DataflowRunner", ...) and more flags
    (`--project=...`, `--direct_num_workers=4`, ...) passed through unchanged.

    The workers run kgan's slicing code: the local runners share this interpreter's modules,
    remote runners need kgan installed on their workers (Dataflow: `--setup_file` or a
    container image), which those flags say.
    """
    return PipelineOptions([f"--runner={runner}", *extra])


def _slice_case(task: tuple, source: str, skip_bad: bool):
    """Examples of one case (runs on a Beam worker)."""
    from kgan import records

    case_key, slices, error = slice_tasks.run_task(task)
    if error is not None:
        if not skip_bad:
            raise volumes.VolumeError(*error)
        beam.metrics.Metrics.counter("kgan", "skipped_cases").inc()
        return
    for s in slices or ():
        yield records.example_of(case_key, s, source)


def examples(tasks: list, *, source: str, skip_bad: bool) -> beam.PTransform:
    """The transform TFDS applies for one split: its cases -> (key, example) pairs."""
    return (
        beam.Create(tasks)
        | "Spread cases" >> beam.Reshuffle()
        | "Slice" >> beam.FlatMap(_slice_case, source=source, skip_bad=skip_bad)
    )


def summarise(summary, data_dir: str, name: str, assigned: dict) -> None:
    """Fills a `kgan.records.BuildSummary` from the shards a Beam build wrote.

    The pipeline's workers cannot update the builder's summary, so the cases and per-modality
    counts are read back from the records (labels only); a case assigned to a split with no
    record there was skipped by a worker (a bad case under skip_bad, or no usable slice).
    """
    import tensorflow as tf

    from kgan import schema

    spec = {k: schema.FEATURE_SPEC[k] for k in ("modality", "case_id")}
    summary.cases, summary.slices, summary.skipped = {}, {}, []
    for split, ids in assigned.items():
        files = sorted(glob.glob(os.path.join(data_dir, f"{name}-{split}.tfrecord-*")))
        seen, counts = set(), collections.Counter()
        for batch in tf.data.TFRecordDataset(files).batch(4096):
            parsed = tf.io.parse_example(batch, spec)
            seen.update(c.decode() for c in parsed["case_id"].numpy())
            counts.update(int(m) for m in parsed["modality"].numpy())
        summary.cases[split] = sorted(seen)
        summary.slices[split] = {m: counts.get(i, 0) for i, m in enumerate(names.MODALITIES)}
        summary.skipped += [
            (c, "no record: skipped on a Beam worker (see the pipeline's log)")
            for c in ids
            if c not in seen
        ]
