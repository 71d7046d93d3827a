"""The TFDS builders on Apache Beam (DirectRunner) write the records of the local build.

Skipped when Apache Beam is not installed (the optional `beam` extra). A three-patient phantom
cohort at 16x16 is built twice into one data directory, with the local process pool and with
`scripts/make_records.py ... --beam-runner DirectRunner`; the phantom volumes written by the
first build are reused by the second, so the comparison costs little more than slicing.
"""

from __future__ import annotations

import glob
import json
import os
import shutil

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

pytest.importorskip(
    "apache_beam", reason="Apache Beam is the optional `beam` extra (pip install 'kgan[beam]')"
)

import tensorflow as tf

from kgan import records
from kgan.commands import records as records_command

NAME = "phantom_slices"


def split_records(dataset_dir: str) -> dict:
    """{split: [serialised records in shard order]} of a built dataset."""
    out = {}
    for split in records.SPLITS:
        files = sorted(glob.glob(os.path.join(dataset_dir, f"{NAME}-{split}.tfrecord-*")))
        out[split] = [r.numpy() for r in tf.data.TFRecordDataset(files)]
    return out


@pytest.mark.slow
def test_beam_build_writes_the_records_of_the_local_build(tmp_path):
    data_dir = str(tmp_path / "records")
    local = records.build_dataset(
        "phantom", size=16, data_dir=data_dir, patients=3, workers=1, progress=False
    )
    local_records = split_records(local.dataset_dir)
    shutil.move(local.dataset_dir, str(tmp_path / "local"))  # keeps the phantom volumes

    code = records_command.main(
        [
            "phantom",
            "--size",
            "16",
            "--patients",
            "3",
            "--data-dir",
            data_dir,
            "--beam-runner",
            "DirectRunner",
            "--",
            "--direct_num_workers=1",
        ]
    )
    assert code == 0
    beam_dir = local.dataset_dir
    beam_records = split_records(beam_dir)

    for split in records.SPLITS:
        assert local_records[split], split
        # The same serialised examples, in the same split and in the same order (TFDS orders
        # by the key's hash, and both builds use the same keys).
        assert beam_records[split] == local_records[split], split
    with open(os.path.join(beam_dir, records.SUMMARY_FILE)) as f:
        beam = records.BuildSummary.from_json(json.load(f))
    assert beam.runner == "DirectRunner"
    assert beam.cases == local.cases and beam.slices == local.slices and not beam.skipped
    # TFDS reads the Beam-built dataset like any other.
    builder = records.make_builder("phantom", size=16, data_dir=data_dir, patients=3)
    assert builder.info.splits["train"].num_examples == len(local_records["train"])


def test_pipeline_options_without_a_runner_are_refused(capsys):
    with pytest.raises(SystemExit):
        records_command.main(["phantom", "--size", "16", "--", "--direct_num_workers=2"])
    assert "need --beam-runner" in capsys.readouterr().err
