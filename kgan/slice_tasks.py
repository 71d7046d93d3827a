"""One case in, its slices out: the unit of work of the parallel dataset build.

`kgan.records` sends these tasks to worker processes. They live apart from `kgan.records` so that
the workers import numpy, scipy and nibabel only, never TensorFlow; and apart from `kgan.slicing`,
which `kgan.phantom` builds on, so that no import runs in a circle (slicing <- phantom <- tasks).
"""

from __future__ import annotations

from kgan import phantom, slicing
from kgan import volumes as vol


def task_id(task: tuple) -> str:
    """The case id of a build task (see `run_task`)."""
    kind, payload, _ = task
    if kind == "phantom":
        return phantom.case_id(payload[1], payload[2])
    return payload.case_id


def run_task(task: tuple) -> tuple:
    """Decodes and slices one case: the unit of work of the parallel dataset build.

    Args:
      task: ("brats", volumes.Case, SliceConfig) or
        ("phantom", (cohort_root, index, seed), SliceConfig); a phantom
        patient is generated and written first unless already on disk.

    Returns:
      (case_id, [Slice] or None, (path, problem) or None).
    """
    kind, payload, config = task
    try:
        if kind == "phantom":
            root, index, seed = payload
            case = vol.find_cases(phantom.write_patient(root, index, seed))[0]
        else:
            case = payload
        return task_id(task), slicing.slice_case(vol.read_case(case), config), None
    except vol.VolumeError as err:
        return task_id(task), None, (err.path, err.problem)
