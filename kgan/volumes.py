"""Reading multi-modal brain MRI volumes (BraTS layouts) into one canonical frame.

Every volume leaves this module as float32 in the RAS+ voxel frame (axis 0
runs left to right, axis 1 posterior to anterior, axis 2 inferior to
superior), so "sagittal slice 80" names the same anatomy whether the file was
stored in LPS (most BraTS NIfTI files and every MetaImage) or RAS. All the
ways real files differ (dtype, negative values, a trailing singleton fourth
axis, label conventions) are normalised here and nowhere else.

Layouts found by `find_cases`:

* BraTS 2017-2021: ``<case>/<case>_{t1,t1ce,t2,flair}.nii[.gz]`` and an
  optional ``<case>_seg``;
* BraTS 2023+: ``<case>/<case>-{t1n,t1c,t2w,t2f}.nii[.gz]`` and ``-seg``;
* BraTS 2015/2016: ``HGG|LGG/<case>/VSD.Brain.XX.O.MR_{T1,T1c,T2,Flair}.<id>/*.mha``
  and ``VSD.Brain*.XX.O.OT.<id>/*.mha`` (needs SimpleITK, the ``kgan[mha]`` extra).

A grade (HGG/LGG) is taken from any enclosing folder with that name.

This module (like `kgan.slicing` and `kgan.phantom`) does not import
TensorFlow, so the worker processes that decode volumes start quickly.
"""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import zlib
from collections.abc import Iterable

import numpy as np

from kgan import names

_NII = r"\.nii(?:\.gz)?"
_RE_2021 = re.compile(rf"^(?P<case>.+)_(?P<mod>t1|t1ce|t2|flair|seg){_NII}$", re.IGNORECASE)
_RE_2023 = re.compile(rf"^(?P<case>.+)-(?P<mod>t1n|t1c|t2w|t2f|seg){_NII}$", re.IGNORECASE)
_MAP_2023 = {"t1n": "t1", "t1c": "t1ce", "t2w": "t2", "t2f": "flair", "seg": "seg"}
_RE_VSD = re.compile(
    r"^VSD\.Brain[^.]*\.XX\.O\.(?P<kind>MR_T1c|MR_T1|MR_T2|MR_Flair|OT)\.\d+$", re.IGNORECASE
)
_MAP_VSD = {"mr_t1": "t1", "mr_t1c": "t1ce", "mr_t2": "t2", "mr_flair": "flair", "ot": "seg"}

#: Label sets accepted in segmentations (0 is background everywhere).
#: 2017-2021: 1 necrotic/non-enhancing core, 2 oedema, 4 enhancing;
#: 2023+: 1, 2, 3 (3 enhancing); 2015/2016: 1 necrosis, 2 oedema,
#: 3 non-enhancing, 4 enhancing. Any non-zero label is tumour.
VALID_LABELS = frozenset({0, 1, 2, 3, 4})


class VolumeError(ValueError):
    """A volume or case that cannot be used, with the file and the problem."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # keeps (path, problem) across worker processes
        return (type(self), (self.path, self.problem))


@dataclasses.dataclass(frozen=True)
class Case:
    """One patient as found on disk (nothing read yet).

    Attributes:
      case_id: the patient identifier (file prefix or folder name).
      directory: the folder holding the case.
      files: modality name -> path; a missing modality is simply absent
        (reported by `read_case`, so `--skip-bad` can record it).
      seg: path of the label map, or None.
      grade: "HGG", "LGG" or "unknown".
      layout: "brats2021", "brats2023" or "brats2015".
    """

    case_id: str
    directory: str
    files: dict
    seg: str | None = None
    grade: str = "unknown"
    layout: str = "brats2021"


@dataclasses.dataclass
class CaseVolumes:
    """A case read into memory: canonical RAS float32 arrays on one grid."""

    case: Case
    images: dict  # modality -> float32 [X, Y, Z]
    seg: np.ndarray | None  # uint8 [X, Y, Z] labels as stored, or None
    affine: np.ndarray  # 4x4 RAS affine of the canonical grid

    @property
    def shape(self) -> tuple:
        return next(iter(self.images.values())).shape

    def tumour_mask(self) -> np.ndarray | None:
        """The whole-tumour mask (every label set maps to seg > 0)."""
        return None if self.seg is None else tumour_mask(self.seg)


def tumour_mask(seg: np.ndarray) -> np.ndarray:
    """Whole tumour of a BraTS label map in any convention ({1,2,4}, {1,2,3}, {1,2,3,4})."""
    return np.asarray(seg) > 0


def _grade_from_path(path: str) -> str:
    """HGG/LGG from the nearest enclosing folder named so (BraTS 2015-2018 layouts)."""
    for part in reversed(os.path.abspath(path).split(os.sep)):
        if part.upper() in ("HGG", "LGG"):
            return part.upper()
    return "unknown"


def find_cases(directory: str) -> list[Case]:
    """Walks a directory and returns every BraTS case it holds, sorted by id.

    Raises:
      VolumeError: the directory is missing, unreadable, or holds no case in
        a known layout.
    """
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise VolumeError(directory, "not a directory (give the folder that holds the BraTS cases)")
    if not os.access(directory, os.R_OK | os.X_OK):
        raise VolumeError(directory, "directory is not readable (check its permissions)")
    cases: dict[str, Case] = {}
    errors: list[str] = []

    def onerror(err: OSError) -> None:
        errors.append(f"{err.filename}: {err.strerror}")

    seen: set = set()
    for dirpath, dirnames, filenames in os.walk(directory, onerror=onerror, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:  # a symlink loop, or a folder linked twice
            dirnames[:] = []
            continue
        seen.add(real)
        # Hidden folders hold half-written data (e.g. a phantom patient's temporary folder).
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found: dict[tuple, dict] = {}
        for name in sorted(filenames):
            for regex, layout, mapping in (
                (_RE_2023, "brats2023", _MAP_2023),
                (_RE_2021, "brats2021", None),
            ):
                m = regex.match(name)
                if m:
                    mod = m.group("mod").lower()
                    mod = mapping[mod] if mapping else mod
                    found.setdefault((m.group("case"), layout), {})[mod] = os.path.join(
                        dirpath, name
                    )
                    break
        for (case_id, layout), files in found.items():
            seg = files.pop("seg", None)
            if not files:
                continue
            _add_case(cases, Case(case_id, dirpath, files, seg, _grade_from_path(dirpath), layout))
        vsd = {}
        for sub in dirnames:
            m = _RE_VSD.match(sub)
            if m:
                vsd[_MAP_VSD[m.group("kind").lower()]] = os.path.join(dirpath, sub)
        if vsd:
            files = {}
            for mod, sub in vsd.items():
                mhas = sorted(
                    f for f in _listdir(sub, errors) if f.lower().endswith((".mha", ".mhd"))
                )
                files[mod] = (
                    os.path.join(sub, mhas[0]) if mhas else os.path.join(sub, "<no .mha file>")
                )
            seg = files.pop("seg", None)
            case_id = os.path.basename(dirpath)
            _add_case(
                cases, Case(case_id, dirpath, files, seg, _grade_from_path(dirpath), "brats2015")
            )
            dirnames[:] = [d for d in dirnames if d not in vsd.values() and not _RE_VSD.match(d)]
    if errors and not cases:
        raise VolumeError(directory, "could not read: " + "; ".join(errors[:3]))
    if not cases:
        raise VolumeError(
            directory,
            "no BraTS cases found (expected <case>/<case>_t1.nii.gz ..., <case>/<case>-t1n.nii.gz "
            "..., or HGG|LGG/<case>/VSD.Brain.XX.O.MR_T1.<id>/*.mha)",
        )
    return [cases[k] for k in sorted(cases)]


def _listdir(path: str, errors: list) -> list:
    try:
        return os.listdir(path)
    except OSError as err:
        errors.append(f"{path}: {err.strerror}")
        return []


def _add_case(cases: dict, case: Case) -> None:
    key = case.case_id
    if key in cases:  # same id in two folders (e.g. HGG and LGG): keep both, distinctly
        key = f"{case.case_id}@{os.path.basename(case.directory)}"
        case = dataclasses.replace(case, case_id=f"{case.case_id}_{len(cases)}")
    cases[key] = case


# ---------------------------------------------------------------------------
# Reading one volume


def _reorient_to_ras(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flips/permutes voxel axes so the array is RAS+, and updates the affine."""
    import nibabel.orientations as nio

    ornt = nio.io_orientation(affine)
    target = nio.axcodes2ornt(("R", "A", "S"))
    transform = nio.ornt_transform(ornt, target)
    out = nio.apply_orientation(data, transform)
    new_affine = affine @ nio.inv_ornt_aff(transform, data.shape)
    return np.ascontiguousarray(out), new_affine


def _read_nifti(path: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError

    try:
        image = nib.load(path)
    except ImageFileError as err:
        raise VolumeError(path, f"not a NIfTI file ({err})") from None
    except (EOFError, OSError, zlib.error, gzip.BadGzipFile) as err:
        raise VolumeError(
            path, f"corrupt or truncated file ({type(err).__name__}: {err})"
        ) from None
    except Exception as err:  # nibabel raises many types on malformed headers
        raise VolumeError(path, f"unreadable NIfTI header ({type(err).__name__}: {err})") from None
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        raise VolumeError(path, f"not a NIfTI file (read as {type(image).__name__})")
    try:
        data = np.asarray(image.dataobj)
    except (EOFError, OSError, zlib.error, ValueError) as err:
        raise VolumeError(
            path, f"corrupt or truncated voxel data ({type(err).__name__}: {err})"
        ) from None
    return data, np.asarray(image.affine, dtype=np.float64)


def _read_metaimage(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        import SimpleITK as sitk
    except ImportError:
        raise VolumeError(
            path, "reading MetaImage (.mha) files needs SimpleITK: pip install 'kgan[mha]'"
        ) from None
    if not os.path.isfile(path):
        raise VolumeError(path, "missing MetaImage file")
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise VolumeError(path, f"unreadable MetaImage ({first[-1] if first else err})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise VolumeError(
            path, f"{image.GetNumberOfComponentsPerPixel()} components per voxel, expected 1"
        )
    dim = image.GetDimension()
    data = sitk.GetArrayFromImage(image)  # axes reversed: (z, y, x)
    data = np.transpose(data, tuple(range(data.ndim))[::-1])
    if dim != 3:
        return data, np.eye(4)  # rejected by the shape check with the right message
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    affine = np.eye(4)
    affine[:3, :3] = direction * spacing[None, :]
    affine[:3, 3] = origin
    # ITK's physical frame is LPS+; NIfTI/nibabel's is RAS+: negate x and y.
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    return data, affine


def read_volume(path: str, *, label: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Reads one NIfTI or MetaImage volume into the canonical RAS frame.

    Args:
      path: a .nii, .nii.gz, .mha or .mhd file.
      label: True for a segmentation (kept as uint8 labels, checked against
        `VALID_LABELS`); False for an intensity image (float32, must be
        finite and not all zero).

    Returns:
      (array [X, Y, Z] float32 or uint8, 4x4 RAS affine).

    Raises:
      VolumeError: naming the file and what is wrong with it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise VolumeError(path, "file does not exist")
    lower = path.lower()
    if lower.endswith((".mha", ".mhd")):
        data, affine = _read_metaimage(path)
    else:
        data, affine = _read_nifti(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise VolumeError(
            path, f"expected a 3-D volume, got {data.ndim}-D with shape {tuple(data.shape)}"
        )
    if min(data.shape) < 2:
        raise VolumeError(path, f"degenerate volume shape {tuple(data.shape)}")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise VolumeError(path, "invalid (singular or non-finite) voxel-to-world affine")
    if np.iscomplexobj(data) or data.dtype.kind not in "biuf":
        raise VolumeError(path, f"unsupported voxel type {data.dtype}")
    if label:
        if data.dtype.kind == "f":
            if not np.all(np.isfinite(data)):
                raise VolumeError(path, "label map holds NaN or Inf")
            if np.any(data != np.round(data)):
                raise VolumeError(path, "label map holds non-integer values")
        values = set(np.unique(data).astype(np.int64).tolist())
        if not values <= VALID_LABELS:
            raise VolumeError(
                path,
                f"unexpected labels {sorted(values - VALID_LABELS)} "
                f"(BraTS uses {{1,2,4}}, {{1,2,3}} or {{1,2,3,4}})",
            )
        data = data.astype(np.uint8)
    else:
        data = data.astype(np.float32, copy=False)
        bad = ~np.isfinite(data)
        if bad.any():
            raise VolumeError(path, f"{int(bad.sum())} NaN/Inf voxels")
        if not np.any(data):
            raise VolumeError(path, "all voxels are zero (empty volume)")
    return _reorient_to_ras(data, affine)


def read_case(case: Case, modalities: Iterable[str] = names.MODALITIES) -> CaseVolumes:
    """Reads a case's modalities (and label map) and checks they share one grid.

    Raises:
      VolumeError: a missing modality, a bad file, or modalities on different grids.
    """
    modalities = tuple(modalities)
    missing = [m for m in modalities if m not in case.files]
    if missing:
        raise VolumeError(
            case.directory,
            f"case {case.case_id}: missing modality {', '.join(missing)} "
            f"(found {', '.join(sorted(case.files)) or 'none'})",
        )
    images, affine, ref = {}, None, None
    for mod in modalities:
        data, aff = read_volume(case.files[mod])
        if affine is None:
            affine, ref = aff, mod
        else:
            _check_same_grid(
                case.files[mod], data.shape, aff, images[ref].shape, affine, case.files[ref]
            )
        images[mod] = data
    seg = None
    if case.seg is not None:
        seg, aff = read_volume(case.seg, label=True)
        _check_same_grid(case.seg, seg.shape, aff, images[ref].shape, affine, case.files[ref])
    return CaseVolumes(case=case, images=images, seg=seg, affine=affine)


def _header(path: str) -> tuple[tuple, np.ndarray]:
    """Shape and RAS affine from a file's header only (no voxel data read)."""
    if not os.path.exists(path):
        raise VolumeError(path, "file does not exist")
    if path.lower().endswith((".mha", ".mhd")):
        try:
            import SimpleITK as sitk
        except ImportError:
            raise VolumeError(
                path, "reading MetaImage (.mha) files needs SimpleITK: pip install 'kgan[mha]'"
            ) from None
        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            lines = str(err).strip().splitlines()
            raise VolumeError(
                path, f"unreadable MetaImage ({lines[-1] if lines else err})"
            ) from None
        shape = tuple(reader.GetSize())
        if len(shape) != 3:
            raise VolumeError(path, f"expected a 3-D volume, got {len(shape)}-D with shape {shape}")
        affine = np.eye(4)
        affine[:3, :3] = np.asarray(reader.GetDirection()).reshape(3, 3) * np.asarray(
            reader.GetSpacing()
        )
        affine[:3, 3] = reader.GetOrigin()
        affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine
    else:
        import nibabel as nib

        try:
            image = nib.load(path)
            shape, affine = tuple(image.shape), np.asarray(image.affine, np.float64)
        except Exception as err:  # nibabel raises many types on malformed files
            raise VolumeError(
                path, f"not a readable NIfTI file ({type(err).__name__}: {err})"
            ) from None
        if len(shape) == 4 and shape[3] == 1:
            shape = shape[:3]
        if len(shape) != 3:
            raise VolumeError(path, f"expected a 3-D volume, got {len(shape)}-D with shape {shape}")
    import nibabel.orientations as nio

    transform = nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(("R", "A", "S")))
    new_shape = tuple(int(shape[int(a)]) for a in np.argsort(transform[:, 0]))
    return new_shape, affine @ nio.inv_ornt_aff(transform, shape)


def check_case(case: Case, modalities: Iterable[str] = names.MODALITIES) -> None:
    """Cheap checks from file headers only: every modality present, readable, 3-D, on one grid.

    Used before a build to drop (or fail on) broken cases before patients
    are split; problems in the voxel data (truncation, NaN, all zero) are
    still found by `read_case`.

    Raises:
      VolumeError: naming the file and the problem.
    """
    modalities = tuple(modalities)
    missing = [m for m in modalities if m not in case.files]
    if missing:
        raise VolumeError(
            case.directory,
            f"case {case.case_id}: missing modality {', '.join(missing)} "
            f"(found {', '.join(sorted(case.files)) or 'none'})",
        )
    paths = [case.files[m] for m in modalities] + ([case.seg] if case.seg else [])
    ref = None
    for path in paths:
        shape, affine = _header(path)
        if ref is None:
            ref = (shape, affine, path)
        else:
            _check_same_grid(path, shape, affine, ref[0], ref[1], ref[2])


def _check_same_grid(path, shape, affine, ref_shape, ref_affine, ref_path) -> None:
    if tuple(shape) != tuple(ref_shape):
        raise VolumeError(
            path,
            f"on a different grid from {os.path.basename(ref_path)}: "
            f"shape {tuple(shape)} vs {tuple(ref_shape)}",
        )
    scale = max(1.0, float(np.abs(ref_affine[:3, :3]).max()))
    if not np.allclose(affine, ref_affine, atol=1e-3 * scale):
        raise VolumeError(
            path,
            f"on a different grid from {os.path.basename(ref_path)}: voxel-to-world affines differ",
        )
