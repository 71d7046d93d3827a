"""Which real patients the evaluation compares with, and how it splits them.

A floor is only as good as its patients: with the default phantom dataset's
two test patients, every "real vs real" comparison pits one patient against
another, and a classifier tells two patients apart at once (100 %). So:

* against the phantom, evaluation uses its own **evaluation cohort**: new
  phantom patients from a seed no training cohort uses (`EVAL_SEED`, case ids
  ``Phantom_s1000_*``), `EVAL_PATIENTS` of them at the export's plane and
  size, built once under the records home (TFDS writes it atomically; see
  `kgan.records`) and reused by every later evaluation;
* against a real dataset, its held-out splits (validation and test: patients
  the generator never saw) supply the patients, and the report warns when a
  side of a comparison holds fewer than `MIN_PATIENTS_PER_SIDE` patients.

Patients are split into groups by a seeded permutation, never by slice.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from kgan import names, pipeline

#: Phantom cohort seed of the evaluation patients; training cohorts use data.split_seed (0 by
#: default).
EVAL_SEED = 1000
#: Evaluation cohort size: 12 patients per half; builds in about 2 minutes on 2 cores.
EVAL_PATIENTS = 24
#: Fewest patients on each side of a comparison for a floor to sit near chance.
MIN_PATIENTS_PER_SIDE = 10


class EvaluationInputError(ValueError):
    """Bad or missing input, described in one line that says what to run."""


def evaluation_cohort(
    plane: str,
    size: int,
    data_dir: str | None = None,
    patients: int = EVAL_PATIENTS,
    seed: int = EVAL_SEED,
    log=print,
) -> str:
    """The evaluation cohort's dataset directory, built (atomically, once) when missing."""
    from kgan import records  # imported late: building needs TFDS

    home = data_dir or names.DEFAULT_DATA_DIR
    builder = records.make_builder(
        "phantom", plane=plane, size=size, data_dir=home, patients=patients, seed=seed
    )
    path = os.fspath(builder.data_path)
    if not glob.glob(os.path.join(path, "*.tfrecord*")):
        log(
            f"building the evaluation cohort: {patients} new phantom patients (seed {seed}), "
            f"{plane} {size}x{size}, into {path} (once; about 5 s per patient per core)"
        )
    return records.ensure_dataset(
        "phantom", plane=plane, size=size, data_dir=home, patients=patients, seed=seed
    )


def splits_of(data: str, data_dir: str | None = None) -> list[str]:
    """The splits a dataset holds, in the usual order."""
    directory = pipeline.resolve_dataset_dir(data, data_dir)
    present = {
        os.path.basename(f).split(".tfrecord")[0].rsplit("-", 1)[-1]
        for f in glob.glob(os.path.join(directory, "*.tfrecord*"))
    }
    order = ["train", "validation", "test"]
    return [s for s in order if s in present] + sorted(present - set(order))


def load_splits(data: str, splits, modalities, data_dir: str | None = None):
    """Images and labels of several splits, concatenated."""
    xs, ys = [], []
    for split in splits:
        x, y = pipeline.load_arrays(data, split, modalities=modalities, data_dir=data_dir)
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs), {k: np.concatenate([y[k] for y in ys]) for k in ys[0]}


def dataset_from_metadata(
    metadata: dict, data_dir: str | None = None, where: str = "the export"
) -> str:
    """The training dataset an export's metadata names, as a directory or name that exists.

    Raises:
      EvaluationInputError: the metadata names none, or it is not on this machine.
    """
    dataset = metadata.get("dataset") or {}
    candidates = []
    if isinstance(dataset.get("dataset_dir"), str):
        candidates.append(dataset["dataset_dir"])
    tfds_info = dataset.get("tfds") or {}
    name = None
    if tfds_info.get("name") and tfds_info.get("config"):
        name = f"{tfds_info['name']}/{tfds_info['config']}"
        candidates.append(name)
    elif isinstance(dataset.get("source"), str) and dataset["source"] != "phantom":
        name = dataset["source"]
        candidates.append(name)
    for candidate in candidates:
        try:
            pipeline.resolve_dataset_dir(candidate, data_dir)
            return candidate
        except pipeline.DatasetNotFoundError:
            continue
    if not candidates:
        raise EvaluationInputError(f"{where} does not name its training dataset: pass --data")
    hint = _build_hint(metadata, name)
    raise EvaluationInputError(
        f"the training dataset {name or candidates[0]} named by {where} is not on this machine "
        f"(looked in {os.path.abspath(data_dir or names.DEFAULT_DATA_DIR)}): {hint}, or pass --data"
    )


def _build_hint(metadata: dict, name: str | None) -> str:
    dataset = metadata.get("dataset") or {}
    plane, size = metadata.get("plane") or "sagittal", metadata.get("image_size") or 64
    if (name or "").startswith("phantom_slices") or dataset.get("source") == "phantom":
        recipe = metadata.get("recipe") or {}
        data = recipe.get("data") or {}
        extra = ""
        if data.get("patients"):
            extra += f" --patients {data['patients']}"
        if data.get("split_seed"):
            extra += f" --seed {data['split_seed']}"
        return (
            f"build it with `python scripts/make_records.py phantom --plane {plane} "
            f"--size {size}{extra}`"
        )
    return (
        f"build it with `python scripts/make_records.py brats --dir <BraTS folder> "
        f"--plane {plane} --size {size}`"
    )


def patient_groups(case_ids, groups: int, seed: int) -> list[np.ndarray]:
    """Splits the patients into `groups` disjoint groups, even in patients and in slices (seeded).

    Patients are ranked by slice count (ties in a seeded random order) and
    dealt out block by block: each block of `groups` neighbours in that
    ranking gives one patient to every group, in a random order. Groups thus
    differ by at most one patient and by little in slice count, while every
    seed draws another split: a two-sample test whose classes differed in
    size or in slices per patient would not sit at chance.

    Returns:
      One boolean mask over `case_ids` per group.
    """
    case_ids = np.asarray(case_ids)
    patients, counts = np.unique(case_ids, return_counts=True)
    if len(patients) < groups:
        raise EvaluationInputError(
            f"need at least {groups} patients to form {groups} patient groups, have {len(patients)}"
        )
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(patients))
    ranked = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    members = [[] for _ in range(groups)]
    for start in range(0, len(ranked), groups):
        block = ranked[start : start + groups]
        for group, patient in zip(rng.permutation(groups)[: len(block)], block):
            members[group].append(patients[patient])
    return [np.isin(case_ids, m) for m in members]


def dataset_info(data: str, data_dir: str | None = None) -> dict:
    """TFDS name/config/version of a dataset directory, when it has dataset_info.json."""
    try:
        directory = pipeline.resolve_dataset_dir(data, data_dir)
        with open(os.path.join(directory, "dataset_info.json")) as f:
            info = json.load(f)
        return {
            "directory": os.path.abspath(directory),
            "name": info.get("name"),
            "config": info.get("configName"),
            "version": info.get("version"),
        }
    except (OSError, ValueError, pipeline.DatasetNotFoundError):
        return {}
