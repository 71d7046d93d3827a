"""Slice datasets as TFRecord shards, written by TFDS builders.

Two `tfds.core.GeneratorBasedBuilder`s share one generator:

* ``brats_slices``: BraTS volumes the user downloaded (manual download; any
  of the layouts `kgan.volumes` reads), from ``manual_dir``;
* ``phantom_slices``: the built-in phantom cohort (`kgan.phantom`), generated
  on the fly into ``<data_dir>/phantom_volumes/`` and reused by every config.

Configs are plane x size, named ``<plane>_<size>`` (e.g. ``sagittal_64``);
non-default options (pad/stretch, cohort size, split seed) add suffixes such
as ``sagittal_64_stretch`` or ``sagittal_64_n50_seed1``. Datasets live under
``records/<builder>/<config>/<version>/`` by default.

Patients are split into train/validation/test (80/10/10 %) by a seeded
permutation of their sorted ids: deterministic, and a patient never spans
splits. Decoding and slicing run in worker processes (every core by
default); the builder's generator only serialises. TFDS writes into an
``incomplete.*`` folder and renames it when every split is done, so an
interrupted build leaves nothing that looks finished; the next build removes
the leftovers (under a lock) and starts again, reusing the phantom volumes
already written.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import copy
import dataclasses
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from kgan import atomic, names, phantom, sizes, slice_tasks, slicing, volumes
from kgan import progress as progress_lib

VERSION = "1.0.0"
SPLITS = ("train", "validation", "test")
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
#: Default phantom cohort: builds in about two minutes on a 2-core CPU.
DEFAULT_PATIENTS = 20
SUMMARY_FILE = "kgan_build_summary.json"
_SOURCES = ("phantom", "brats")
_RELEASE_NOTES = {VERSION: "First release: kgan.schema slice records."}
#: The phantom dataset's version follows the phantom generator's, so a changed
#: generator never reuses slices built from an older cohort.
PHANTOM_DATASET_VERSION = f"{phantom.PHANTOM_VERSION}.0.0"
_PHANTOM_NOTES = {PHANTOM_DATASET_VERSION: f"Phantom generator v{phantom.PHANTOM_VERSION}."}
_BUILDER_NAMES = {"phantom": "phantom_slices", "brats": "brats_slices"}


@dataclasses.dataclass(eq=False)
class SliceBuilderConfig(tfds.core.BuilderConfig):
    """One dataset variant: plane x size (+ resize mode, cohort size, split seed)."""

    plane: str = "sagittal"
    size: int = 64
    resize: str = "pad"
    patients: int = DEFAULT_PATIENTS
    seed: int = 0

    @classmethod
    def make(
        cls,
        plane="sagittal",
        size=64,
        resize="pad",
        patients=None,
        seed=0,
        phantom_cohort: bool = True,
    ) -> SliceBuilderConfig:
        """A config with its canonical name; default options give ``<plane>_<size>``.

        Raises:
          ValueError: a size training would refuse (`kgan.sizes`), before anything is built.
        """
        size = sizes.check_image_size(size)
        slicing.SliceConfig(plane=plane, size=int(size), resize=resize)  # validates
        patients = DEFAULT_PATIENTS if patients is None else int(patients)
        if patients < 1:
            raise ValueError(f"patients must be >= 1, got {patients}")
        name = f"{plane}_{int(size)}"
        if resize != "pad":
            name += f"_{resize}"
        if phantom_cohort and patients != DEFAULT_PATIENTS:
            name += f"_n{patients}"
        if int(seed) != 0:
            name += f"_seed{int(seed)}"
        version, notes = (
            (PHANTOM_DATASET_VERSION, _PHANTOM_NOTES)
            if phantom_cohort
            else (VERSION, _RELEASE_NOTES)
        )
        return cls(
            name=name,
            version=version,
            release_notes=dict(notes),
            plane=plane,
            size=int(size),
            resize=resize,
            patients=patients,
            seed=int(seed),
            description=f"{plane} slices resized to {size}x{size} ({resize})",
        )

    @property
    def slice_config(self) -> slicing.SliceConfig:
        return slicing.SliceConfig(plane=self.plane, size=self.size, resize=self.resize)


def _standard_configs(phantom_cohort: bool) -> list:
    return [
        SliceBuilderConfig.make(p, s, phantom_cohort=phantom_cohort)
        for p in names.PLANES
        for s in slicing.SIZES
    ]


def split_cases(
    case_ids: Sequence[str], seed: int = 0, fractions: Sequence[float] = SPLIT_FRACTIONS
) -> dict:
    """Assigns whole patients to splits, deterministically.

    The sorted ids are permuted by a generator seeded with `seed`; the first
    round(n * f_train) go to train, then validation, then test. With three or
    more patients every split gets at least one.

    Returns:
      {"train": [...], "validation": [...], "test": [...]} (sorted ids; some
      may be empty for tiny cohorts).
    """
    ids = sorted(set(case_ids))
    if len(ids) != len(case_ids):
        raise ValueError("duplicate case ids")
    n = len(ids)
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(n * fractions[1]))
    n_test = int(round(n * fractions[2]))
    if n >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    n_test = min(n_test, max(n - 1, 0))
    n_val = min(n_val, max(n - 1 - n_test, 0))
    n_train = n - n_val - n_test
    picked = [ids[i] for i in order]
    return {
        "train": sorted(picked[:n_train]),
        "validation": sorted(picked[n_train : n_train + n_val]),
        "test": sorted(picked[n_train + n_val :]),
    }


@dataclasses.dataclass
class BuildSummary:
    """What a build produced (also saved as ``kgan_build_summary.json`` beside the shards)."""

    dataset_dir: str
    name: str
    cases: dict = dataclasses.field(default_factory=dict)  # split -> [case ids]
    slices: dict = dataclasses.field(default_factory=dict)  # split -> {modality: n}
    skipped: list = dataclasses.field(default_factory=list)  # [(case id, reason)]
    built: bool = True
    seconds: float = 0.0
    workers: int = 1
    #: The Apache Beam runner that built it ("" for the local process pool).
    runner: str = ""

    @property
    def total_slices(self) -> int:
        return sum(sum(v.values()) for v in self.slices.values())

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> BuildSummary:
        fields = {f.name for f in dataclasses.fields(cls)}
        out = cls(**{k: v for k, v in data.items() if k in fields})
        out.skipped = [tuple(s) for s in out.skipped]
        return out

    def __str__(self) -> str:
        how = f"on Apache Beam ({self.runner})" if self.runner else f"with {self.workers} worker(s)"
        lines = [
            f"dataset {self.name}: {'built' if self.built else 'already built'}"
            + (f" in {self.seconds:.1f} s {how}" if self.built else ""),
            f"  directory: {self.dataset_dir}",
        ]
        for split in SPLITS:
            if split not in self.cases:
                continue
            per_mod = self.slices.get(split, {})
            mods = ", ".join(f"{m} {per_mod.get(m, 0)}" for m in names.MODALITIES)
            lines.append(
                f"  {split:<10} {len(self.cases[split]):>4} cases "
                f"{sum(per_mod.values()):>7} slices ({mods})"
            )
        if self.cases and any(not self.cases.get(s) for s in SPLITS):
            empty = [s for s in SPLITS if not self.cases.get(s)]
            lines.append(
                f"  note: no case in {', '.join(empty)} (a split needs 3 or more usable "
                "patients; use these slices for training only)"
            )
        if self.skipped:
            lines.append(f"  skipped {len(self.skipped)} case(s):")
            lines += [f"    {cid}: {why}" for cid, why in self.skipped]
        else:
            lines.append("  skipped: none")
        return "\n".join(lines)


# ---------------------------------------------------------------------------
# Worker processes (they run kgan.slice_tasks.run_task, which imports no TensorFlow)


def _worker_pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """A pool of fresh worker processes with the slicing code preloaded.

    Not "fork": the parent runs TensorFlow's thread pools, which fork would
    copy mid-flight. A fork server starts once, imports numpy/scipy/nibabel
    and kgan's slicing modules (no TensorFlow), and forks each worker from
    that clean state, so a worker costs milliseconds rather than the second
    or two of a spawned interpreter's imports.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["kgan.slicing", "kgan.phantom", "kgan.volumes"])
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


class TaskRunner:
    """Runs `slice_tasks.run_task` over every split's tasks in one process pool.

    Tasks are submitted in split order (train, validation, test) with at most
    `2 * workers` in flight, so workers never idle between splits and at most
    that many finished cases wait in memory. TFDS consumes the split
    generators one after the other; `results(split)` yields that split's
    cases as they finish. With one worker everything runs inline; if the
    pool breaks (a worker killed, e.g. out of memory, or a calling script
    without an ``if __name__ == "__main__":`` guard) the rest runs inline.
    """

    def __init__(self, tasks_by_split: dict, workers: int):
        self._tasks = {s: list(tasks_by_split.get(s, ())) for s in SPLITS}
        self._queue = collections.deque((s, t) for s in SPLITS for t in self._tasks[s])
        self._pending: dict = {}  # future -> (split, task)
        self._done = {s: [] for s in SPLITS}
        self._window = 2 * workers
        n = len(self._queue)
        self._pool = _worker_pool(min(workers, n)) if workers > 1 and n > 1 else None

    def _fill(self) -> None:
        while self._pool is not None and self._queue and len(self._pending) < self._window:
            split, task = self._queue.popleft()
            self._pending[self._pool.submit(slice_tasks.run_task, task)] = (split, task)

    def _wait(self) -> None:
        finished, _ = concurrent.futures.wait(
            list(self._pending), return_when=concurrent.futures.FIRST_COMPLETED
        )
        for future in finished:
            split, task = self._pending.pop(future)
            try:
                self._done[split].append(future.result())
            except concurrent.futures.process.BrokenProcessPool:
                self._queue.appendleft((split, task))
                self._go_inline()
                return

    def _go_inline(self) -> None:
        warnings.warn(
            "dataset build: worker processes failed; finishing in this process "
            "(start builds under `if __name__ == '__main__':`)",
            RuntimeWarning,
            stacklevel=2,
        )
        lost = list(self._pending.values())
        self._pending.clear()
        self._queue.extendleft(reversed(lost))
        self.close(keep_queue=True)

    def results(self, split: str) -> Iterable[tuple]:
        try:
            remaining = len(self._tasks[split])
            while remaining:
                self._fill()
                if self._done[split]:
                    remaining -= 1
                    yield self._done[split].pop(0)
                elif self._pool is not None:
                    self._wait()
                else:  # inline: run this split's next queued task here
                    index = next(i for i, (s, _) in enumerate(self._queue) if s == split)
                    _, task = self._queue[index]
                    del self._queue[index]
                    self._done[split].append(slice_tasks.run_task(task))
            if not self._queue and not self._pending:
                self.close()
        except BaseException:
            self.close()
            raise

    def close(self, keep_queue: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=not keep_queue, cancel_futures=True)
            self._pool = None
        if not keep_queue:
            self._queue.clear()
            self._pending.clear()


# ---------------------------------------------------------------------------
# TFDS builders

#: What the BraTS data terms ask users of the data to cite (the benchmark papers).
BRATS_CITATION = """\
@article{menze2015brats,
  author  = {Menze, Bjoern H. and Jakab, Andras and Bauer, Stefan and Kalpathy-Cramer, Jayashree
             and Farahani, Keyvan and Kirby, Justin and others},
  title   = {The Multimodal Brain Tumor Image Segmentation Benchmark ({BRATS})},
  journal = {IEEE Transactions on Medical Imaging},
  volume  = {34},
  number  = {10},
  pages   = {1993--2024},
  year    = {2015},
  doi     = {10.1109/TMI.2014.2377694},
}
@article{bakas2017advancing,
  author  = {Bakas, Spyridon and Akbari, Hamed and Sotiras, Aristeidis and Bilello, Michel
             and Rozycki, Martin and Kirby, Justin S. and Freymann, John B. and Farahani, Keyvan
             and Davatzikos, Christos},
  title   = {Advancing The Cancer Genome Atlas glioma {MRI} collections with expert segmentation
             labels and radiomic features},
  journal = {Scientific Data},
  volume  = {4},
  pages   = {170117},
  year    = {2017},
  doi     = {10.1038/sdata.2017.117},
}
@article{baid2021brats,
  author  = {Baid, Ujjwal and others},
  title   = {The {RSNA-ASNR-MICCAI} {BraTS} 2021 Benchmark on Brain Tumor Segmentation and
             Radiogenomic Classification},
  journal = {arXiv preprint arXiv:2107.02314},
  year    = {2021},
  eprint  = {2107.02314},
  archivePrefix = {arXiv},
}
"""

#: The phantom's anatomy is the MNI ICBM 2009a template (as shipped by nilearn); its terms ask
#: for this citation.
MNI152_CITATION = """\
@article{fonov2011unbiased,
  author  = {Fonov, Vladimir and Evans, Alan C. and Botteron, Kelly and Almli, C. Robert
             and McKinstry, Robert C. and Collins, D. Louis},
  title   = {Unbiased average age-appropriate atlases for pediatric studies},
  journal = {NeuroImage},
  volume  = {54},
  number  = {1},
  pages   = {313--327},
  year    = {2011},
  doi     = {10.1016/j.neuroimage.2010.07.033},
}
"""

_BRATS_DESCRIPTION = """\
2-D slices of multi-modal glioma MRI (T1, T1ce, T2, FLAIR) from the BraTS challenge volumes
the user downloaded, one `tf.train.Example` per slice in kgan's schema (kgan/schema.py): raw
uint8 pixels, modality, plane, slice index, case id, tumour fraction, grade, source. Splits are
by patient (80/10/10 %, seeded). Not for clinical use.
"""

_PHANTOM_DESCRIPTION = """\
kgan's built-in phantom cohort as 2-D slices: seeded synthetic glioma patients generated by
kgan (kgan/phantom.py) from the MNI152 2009a template that nilearn ships (random affine and
smooth deformation, a tumour with necrosis, enhancing rim and oedema, four contrasts, bias
field and noise), written on the BraTS grid and sliced exactly like BraTS. No patient data and
no download. Same schema and splits as brats_slices.
"""


class _SliceBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared features, split logic and parallel generation of the slice datasets."""

    VERSION = tfds.core.Version(VERSION)
    RELEASE_NOTES = dict(_RELEASE_NOTES)
    SOURCE = ""
    HOMEPAGE = ""
    CITATION = ""
    DESCRIPTION = ""

    def __init__(
        self,
        *,
        workers: int | None = None,
        skip_bad: bool = False,
        progress: Callable[[str, str | None], None] | None = None,
        **kwargs,
    ):
        self._workers = max(1, int(workers or os.cpu_count() or 1))
        self._skip_bad = skip_bad
        self._progress = progress
        #: Set for a build on Apache Beam (a DownloadConfig with beam options): the cases are
        #: sliced by the pipeline's workers instead of this process's pool.
        self._on_beam = False
        super().__init__(**kwargs)
        self.summary = BuildSummary(
            dataset_dir="", name=f"{self.name}/{self.builder_config.name}", workers=self._workers
        )

    def _info(self) -> tfds.core.DatasetInfo:
        size = self.builder_config.size
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(
                        shape=(size, size, 1), dtype=np.uint8, encoding=tfds.features.Encoding.BYTES
                    ),
                    "modality": tfds.features.ClassLabel(names=list(names.MODALITIES)),
                    "plane": tfds.features.ClassLabel(names=list(names.PLANES)),
                    "slice_index": tfds.features.Scalar(dtype=np.int64),
                    "case_id": tfds.features.Text(),
                    "tumour_fraction": tfds.features.Scalar(dtype=np.float32),
                    "grade": tfds.features.ClassLabel(names=list(names.GRADES)),
                    "source": tfds.features.Text(),
                    "synthetic": tfds.features.Scalar(dtype=np.int64),
                }
            ),
            supervised_keys=None,
            description=self.DESCRIPTION,
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    # TFDS prints "Downloading and preparing dataset Unknown size ..." and "... downloaded and
    # prepared" to stdout; these datasets download nothing, and build_dataset says what it does.
    def _log_download_bytes(self) -> None:
        pass

    def _log_download_done(self) -> None:
        pass

    def _tasks(self, dl_manager) -> list:
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        tasks = self._tasks(dl_manager)
        self.summary.skipped = []
        screened = []
        for task in tasks:  # header-only checks: broken cases never take a place in a split
            if task[0] == "brats":
                try:
                    volumes.check_case(task[1])
                except volumes.VolumeError as err:
                    if not self._skip_bad:
                        raise
                    self.summary.skipped.append((task[1].case_id, str(err)))
                    if self._progress is not None:
                        self._progress(task[1].case_id, str(err))
                    continue
            screened.append(task)
        if not screened:
            raise volumes.VolumeError(
                str(getattr(dl_manager, "_manual_dir", "") or self.name),
                f"no usable case ({len(tasks)} skipped)",
            )
        by_id = {slice_tasks.task_id(t): t for t in screened}
        splits = split_cases(list(by_id), seed=self.builder_config.seed)
        splits = {s: ids for s, ids in splits.items() if ids}
        self._assigned = splits
        if self._on_beam:
            from kgan import records_beam

            return {
                s: records_beam.examples(
                    [by_id[c] for c in ids], source=self.SOURCE, skip_bad=self._skip_bad
                )
                for s, ids in splits.items()
            }
        self._runner = TaskRunner(
            {s: [by_id[c] for c in ids] for s, ids in splits.items()}, self._workers
        )
        self.summary.cases = {s: [] for s in SPLITS}
        self.summary.slices = {s: {m: 0 for m in names.MODALITIES} for s in SPLITS}
        return {s: self._generate_examples(s) for s in splits}

    def _generate_examples(self, split):
        yielded = 0
        for cid, slices, error in self._runner.results(split):
            if error is not None:
                if not self._skip_bad:
                    raise volumes.VolumeError(*error)
                self.summary.skipped.append((cid, f"{error[0]}: {error[1]}"))
            elif not slices:
                self.summary.skipped.append((cid, "no slice in the range has enough brain"))
            else:
                self.summary.cases[split].append(cid)
                yielded += len(slices)
                for s in slices:
                    self.summary.slices[split][s.modality] += 1
                    yield example_of(cid, s, self.SOURCE)
            if self._progress is not None:
                self._progress(cid, None if error is None else f"{error[0]}: {error[1]}")
        if not yielded:  # TFDS would fail with a bare "No examples were yielded"
            raise volumes.VolumeError(
                self.name,
                f"the {split} split has no usable slice: every case in it was skipped "
                f"({', '.join(c for c, _ in self.summary.skipped)}); fix or remove them",
            )

    def _download_and_prepare(self, dl_manager, download_config):
        self._on_beam = download_config is not None and (
            download_config.beam_runner is not None or download_config.beam_options is not None
        )
        try:
            super()._download_and_prepare(dl_manager, download_config)
        finally:
            if getattr(self, "_runner", None) is not None:
                self._runner.close()
        if self._on_beam:  # the pipeline's workers sliced the cases: count what they wrote
            from kgan import records_beam

            records_beam.summarise(
                self.summary, os.fspath(self.data_dir), self.name, self._assigned
            )
        # Still inside TFDS's incomplete folder: the summary appears with the shards.
        for split in self.summary.cases:
            self.summary.cases[split].sort()
        self.summary.dataset_dir = os.fspath(self.data_path)
        atomic.write_json(
            os.path.join(os.fspath(self.data_dir), SUMMARY_FILE), self.summary.to_json()
        )


def example_of(case_key: str, s: slicing.Slice, source: str = "") -> tuple[str, dict]:
    """(key, features) of one slice of case `case_key`, as the local and the Beam build yield it.

    TFDS orders a split's records by a hash of the key, so the same keys give the same shards.
    """
    return f"{case_key}/{s.modality}/{s.slice_index}", {
        "image": s.image[..., None],
        "modality": s.modality,
        "plane": s.plane,
        "slice_index": s.slice_index,
        "case_id": s.case_id,
        "tumour_fraction": np.float32(s.tumour_fraction),
        "grade": s.grade,
        "source": source or s.source,
        "synthetic": 0,
    }


class BratsSlices(_SliceBuilder):
    """BraTS 2015-2023 volumes (downloaded by the user) as labelled 2-D slices."""

    BUILDER_CONFIGS = _standard_configs(phantom_cohort=False)
    HOMEPAGE = "https://www.med.upenn.edu/cbica/brats/"
    CITATION = BRATS_CITATION
    DESCRIPTION = _BRATS_DESCRIPTION
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    BraTS cannot be downloaded automatically (registration and a data-use
    agreement are required; see https://www.synapse.org/brats or the
    challenge pages of earlier years). Unpack the training data anywhere and
    pass that folder as manual_dir (scripts/make_records.py brats --dir PATH).
    Accepted layouts, found at any depth:
      BraTS 2017-2021: <case>/<case>_{t1,t1ce,t2,flair}.nii.gz [+ <case>_seg.nii.gz]
      BraTS 2023+:     <case>/<case>-{t1n,t1c,t2w,t2f}.nii.gz [+ <case>-seg.nii.gz]
      BraTS 2015/2016: HGG|LGG/<case>/VSD.Brain.XX.O.MR_{T1,T1c,T2,Flair}.<id>/*.mha
                       (+ VSD.Brain_*more.XX.O.OT.<id>/*.mha; needs pip install 'kgan[mha]')
    """

    def _tasks(self, dl_manager) -> list:
        cases = volumes.find_cases(os.fspath(dl_manager.manual_dir))
        return [("brats", c, self.builder_config.slice_config) for c in cases]


class PhantomSlices(_SliceBuilder):
    """The built-in phantom cohort (kgan.phantom) as labelled 2-D slices."""

    BUILDER_CONFIGS = _standard_configs(phantom_cohort=True)
    VERSION = tfds.core.Version(PHANTOM_DATASET_VERSION)
    RELEASE_NOTES = dict(_PHANTOM_NOTES)
    SOURCE = "phantom"
    #: Where the phantom's anatomy comes from (kgan itself has no web page).
    HOMEPAGE = "https://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009"
    CITATION = MNI152_CITATION
    DESCRIPTION = _PHANTOM_DESCRIPTION

    def _tasks(self, dl_manager) -> list:
        cfg = self.builder_config
        root = phantom.cohort_dir(os.fspath(self.data_dir_root), cfg.seed)
        os.makedirs(root, exist_ok=True)
        return [("phantom", (root, i, cfg.seed), cfg.slice_config) for i in range(cfg.patients)]


# ---------------------------------------------------------------------------
# Entry points


class _DropCustomConfigNotice(logging.Filter):
    """Drops TFDS's "Using custom data configuration: SliceBuilderConfig(...)" warning.

    Non-default options (``sagittal_64_n50``) are custom configs by design, and the warning
    prints the whole dataclass; the config's name already appears in kgan's own lines.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Using custom data configuration")


@contextlib.contextmanager
def _tfds_quiet():
    """TFDS's own progress bars off during a kgan build, then back to what they were.

    `tfds.display_progress_bar` is process-wide; kgan shows one bar of its own and must not
    change what the user's other TFDS calls show (TFDS offers no getter, hence the read of its
    module flag).
    """
    from tensorflow_datasets.core.utils import tqdm_utils

    was = bool(getattr(tqdm_utils, "_active", True))
    tfds.display_progress_bar(False)
    try:
        yield
    finally:
        tfds.display_progress_bar(was)


@contextlib.contextmanager
def _build_lock(config_dir: str):
    """Serialises builds of one config; removes leftovers of interrupted builds."""
    os.makedirs(config_dir, exist_ok=True)
    with open(os.path.join(config_dir, ".kgan-build.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            for entry in os.listdir(config_dir):
                if entry.startswith("incomplete."):  # TFDS's temporary folder, from a dead build
                    shutil.rmtree(os.path.join(config_dir, entry), ignore_errors=True)
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def make_builder(
    source: str = "phantom",
    *,
    plane: str = "sagittal",
    size: int = 64,
    data_dir: str = names.DEFAULT_DATA_DIR,
    patients: int | None = None,
    seed: int = 0,
    resize: str = "pad",
    workers: int | None = None,
    skip_bad: bool = False,
    progress=None,
) -> _SliceBuilder:
    """The TFDS builder of a slice dataset (not built yet)."""
    if source not in _SOURCES:
        raise ValueError(f"unknown source {source!r}; choose from {_SOURCES}")
    if source == "brats" and patients is not None:
        raise ValueError("patients applies to the phantom cohort only")
    config = SliceBuilderConfig.make(
        plane, size, resize, patients, seed, phantom_cohort=source == "phantom"
    )
    cls = PhantomSlices if source == "phantom" else BratsSlices
    if any(c.name == config.name for c in cls.BUILDER_CONFIGS):
        config = config.name  # TFDS wants the registered instance for standard names
    notice = _DropCustomConfigNotice()
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(notice)
    try:
        return cls(
            data_dir=data_dir, config=config, workers=workers, skip_bad=skip_bad, progress=progress
        )
    finally:
        absl_logger.removeFilter(notice)


def build_dataset(
    source: str = "phantom",
    *,
    plane: str = "sagittal",
    size: int = 64,
    data_dir: str = names.DEFAULT_DATA_DIR,
    patients: int | None = None,
    seed: int = 0,
    resize: str = "pad",
    workers: int | None = None,
    manual_dir: str | None = None,
    skip_bad: bool = False,
    progress=None,
    beam_runner: str | None = None,
    beam_options: Sequence[str] = (),
) -> BuildSummary:
    """Builds a slice dataset if it is not there yet, and says what it holds.

    Args:
      source: "phantom" (generated) or "brats" (needs `manual_dir`).
      plane, size, resize: slicing options (`kgan.slicing.SliceConfig`).
      data_dir: the dataset home (TFDS data_dir).
      patients: phantom cohort size (default `DEFAULT_PATIENTS`).
      seed: split seed (and phantom cohort seed).
      workers: processes for decoding and slicing; all cores when None.
      manual_dir: the folder holding the BraTS cases.
      skip_bad: record unusable cases in the summary and go on, instead of failing.
      progress: None shows one progress bar over the cases on stderr (rate, ETA; plain lines
        every 10 % when stderr is not a terminal), then a one-line summary; False prints
        nothing; a callable is called as progress(case_id, error_or_None) after each case
        instead, and the library prints nothing (not called on Beam: the cases are sliced by
        the pipeline's workers).
      beam_runner: build on Apache Beam with this runner ("DirectRunner", "DataflowRunner",
        ...) instead of the local process pool (`kgan.records_beam`; the `beam` extra).
      beam_options: more Beam pipeline flags, passed through ("--direct_num_workers=4").

    Returns:
      The `BuildSummary` (read back from the dataset when it already existed).

    Raises:
      volumes.VolumeError: a bad case (unless skip_bad) or an unusable manual_dir.
    """
    builder = make_builder(
        source,
        plane=plane,
        size=size,
        data_dir=data_dir,
        patients=patients,
        seed=seed,
        resize=resize,
        workers=workers,
        skip_bad=skip_bad,
        progress=progress if callable(progress) else None,
    )
    version_dir = os.fspath(builder.data_path)
    summary_path = os.path.join(version_dir, SUMMARY_FILE)
    if beam_options and not beam_runner:
        raise ValueError("beam_options need a beam_runner (e.g. DirectRunner)")
    if not os.path.isdir(version_dir):
        cases = builder.builder_config.patients
        if source == "brats":
            if manual_dir is None:
                raise ValueError(
                    "building brats_slices needs manual_dir (the folder with the BraTS cases)"
                )
            cases = len(volumes.find_cases(manual_dir))  # fail early, before TFDS creates folders
        start = time.perf_counter()
        name = f"{builder.name}/{builder.builder_config.name}"
        bar = None
        announce = progress is None
        download = {}
        if beam_runner:
            from kgan import records_beam  # the optional `beam` extra

            download["beam_options"] = records_beam.pipeline_options(beam_runner, beam_options)
        if announce:  # say why the first call takes a while, then show how it goes
            what = (
                f"{cases} phantom patients"
                if source == "phantom"
                else f"{cases} BraTS cases from {manual_dir}"
            )
            how = (
                f"on Apache Beam ({beam_runner})"
                if beam_runner
                else f"with {builder._workers} worker(s)"
            )
            print(
                f"kgan: building {name} from {what} into {version_dir} {how}",
                file=sys.stderr,
                flush=True,
            )
            if not beam_runner:  # on Beam the pipeline's workers slice the cases
                bar = progress_lib.Progress(cases, name, "case")

                def progress(case_id, error):
                    bar.update(1)
                    if error:
                        bar.write(f"kgan: skipped {case_id}: {error}")

                builder._progress = progress
        try:
            with _build_lock(os.path.dirname(version_dir)), _tfds_quiet():
                if not os.path.isdir(version_dir):  # another process may have finished meanwhile
                    config = tfds.download.DownloadConfig(
                        manual_dir=manual_dir, try_download_gcs=False, **download
                    )
                    builder.download_and_prepare(download_config=config)
                    summary = builder.summary
                    summary.seconds = time.perf_counter() - start
                    summary.runner = beam_runner or ""
                    summary.dataset_dir = version_dir
                    atomic.write_json(summary_path, summary.to_json())
                    if announce:
                        line = (
                            f"kgan: built {name}: {summary.total_slices} slices from "
                            f"{sum(len(c) for c in summary.cases.values())} cases in "
                            f"{progress_lib.format_seconds(summary.seconds)} -> {version_dir}"
                        )
                        if bar is not None:
                            bar.close(line)
                        else:
                            print(line, file=sys.stderr, flush=True)
                    return summary
        finally:
            if bar is not None:
                bar.close()
    if os.path.isfile(summary_path):
        with open(summary_path) as f:
            summary = BuildSummary.from_json(json.load(f))
    else:
        summary = BuildSummary(
            dataset_dir=version_dir, name=f"{builder.name}/{builder.builder_config.name}"
        )
    summary.built = False
    summary.dataset_dir = version_dir
    return summary


def ensure_dataset(
    source: str = "phantom",
    *,
    plane: str = "sagittal",
    size: int = 64,
    data_dir: str = names.DEFAULT_DATA_DIR,
    patients: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    manual_dir: str | None = None,
    resize: str = "pad",
    skip_bad: bool = False,
) -> str:
    """Returns the dataset's directory (TFDS version folder with the shards), building it first if
    absent.

    `kgan.pipeline.load_slices(<returned dir>)` and
    `tfds.builder("phantom_slices/sagittal_64", data_dir=data_dir)` both read it.
    """
    return build_dataset(
        source,
        plane=plane,
        size=size,
        data_dir=data_dir,
        patients=patients,
        seed=seed,
        workers=workers,
        manual_dir=manual_dir,
        resize=resize,
        skip_bad=skip_bad,
    ).dataset_dir


# ---------------------------------------------------------------------------
# Looking at the slices (tfds.as_dataframe, tfds.show_examples)


def as_images(ds: tf.data.Dataset, size: int | None = None) -> tf.data.Dataset:
    """The same examples with ``image`` as a uint8 [S, S, 1] tensor, for display.

    Takes what `tfds.load` gives (the image already decoded: passed through) or parsed shards
    whose ``image`` is the schema's raw bytes (`tf.io.parse_single_example` with
    `kgan.schema.FEATURE_SPEC`). Training never needs it: `kgan.pipeline` decodes whole
    batches in one call.

    Args:
      ds: unbatched examples (dicts with an ``image`` key).
      size: the slice side, to give the tensor a static shape; inferred when None.
    """

    def view(example):
        image = example["image"]
        if image.dtype == tf.string:
            pixels = tf.io.decode_raw(image, tf.uint8)
            if size is None:
                side = tf.cast(tf.round(tf.sqrt(tf.cast(tf.size(pixels), tf.float32))), tf.int32)
                image = tf.reshape(pixels, tf.stack([side, side, 1]))
            else:
                image = tf.reshape(pixels, [int(size), int(size), 1])
        return {**example, "image": image}

    return ds.map(view)


def display_info(info: tfds.core.DatasetInfo) -> tfds.core.DatasetInfo:
    """A copy of a slice dataset's info whose ``image`` is a `tfds.features.Image`.

    The stored feature is a raw-bytes `Tensor` (fast batched decoding, see the module
    docstring), which TFDS cannot draw. With this copy ``tfds.as_dataframe(ds.take(8),
    display_info(info))`` shows thumbnails and ``tfds.show_examples(ds, display_info(info))``
    a grid, labelled with the modality; the dataset on disk is unchanged.
    """
    image = info.features["image"]
    shown = copy.copy(info)
    features = {key: info.features[key] for key in info.features.keys()}
    features["image"] = tfds.features.Image(shape=tuple(image.shape), dtype=np.uint8)
    shown._features = tfds.features.FeaturesDict(features)  # DatasetInfo has no public setter
    return shown
