"""Everything the main job and the documented commands import is a base dependency.

The README's main command runs after `pip install -e .` with no extra; a module that only an extra
installs made it end in a traceback after twenty minutes of work. This test reads the imports of the
package and of the documented scripts and maps each third-party module to the distribution that
provides it in this environment, so a new import of an extra-only package fails here, in seconds.
"""

from __future__ import annotations

import ast
import importlib.metadata
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The README's documented commands (benchmarks have their own extras).
DOCUMENTED_SCRIPTS = ("train", "make_records", "export", "sample", "evaluate", "turing_test")
#: Imports that are optional by design, with the extra that provides them.
OPTIONAL = {"SimpleITK": "mha", "jax": "jax", "apache_beam": "beam"}


def _pyproject() -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported_modules(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), filename=path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _sources() -> list[str]:
    files = [os.path.join(ROOT, "scripts", f"{s}.py") for s in DOCUMENTED_SCRIPTS]
    for folder, _, names in os.walk(os.path.join(ROOT, "kgan")):
        files.extend(os.path.join(folder, n) for n in names if n.endswith(".py"))
    return files


def test_every_third_party_import_is_a_base_dependency():
    base = {_name(r) for r in _pyproject()["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    missing = []
    for path in _sources():
        for module in sorted(_imported_modules(path)):
            if module in sys.stdlib_module_names or module in ("kgan", "__future__", "tomli"):
                continue
            if module in OPTIONAL:
                continue
            dists = {_name(d) for d in providers.get(module, [])}
            if not dists:
                missing.append(
                    f"{os.path.relpath(path, ROOT)} imports {module!r}, "
                    f"which no installed distribution provides"
                )
            elif not dists & base:
                missing.append(
                    f"{os.path.relpath(path, ROOT)} imports {module!r} from "
                    f"{sorted(dists)}, not a base dependency"
                )
    assert not missing, "\n".join(missing)


def test_optional_imports_are_declared_in_their_extras():
    extras = {
        k: {_name(r) for r in v}
        for k, v in _pyproject()["project"]["optional-dependencies"].items()
    }
    for module, extra in OPTIONAL.items():
        assert _name(module) in extras.get(extra, set()), (
            f"{module} missing from the {extra!r} extra"
        )


def test_serving_api_moves_in_lock_step_with_tensorflow():
    deps = {_name(r): r for r in _pyproject()["project"]["dependencies"]}
    spec = lambda r: r[len(_name(r)) :].split(";")[0].strip()  # noqa: E731
    assert spec(deps["tensorflow-serving-api"]) == spec(deps["tensorflow"])
    assert spec(deps["tensorflow"]).startswith("~=")


def test_the_scanner_sees_an_import_that_only_an_extra_provides(tmp_path):
    # The test above would pass vacuously if the scanner missed imports; check it on a file.
    source = tmp_path / "m.py"
    source.write_text("import os\nfrom SimpleITK import ReadImage\nimport numpy.linalg as la\n")
    assert _imported_modules(str(source)) == {"os", "SimpleITK", "numpy"}


def test_shipped_cpu_recipes_exist_for_every_gan():
    from kgan import config, names

    for gan in names.GANS:
        recipe = config.resolve(None, config.cpu_recipe(gan))
        assert recipe.gan == gan and recipe.train.jit_compile == "auto"


@pytest.mark.parametrize("name", ["began-cpu", "wgan"])
def test_recipes_resolve_by_name(name):
    from kgan import config

    assert config.resolve(None, name).name == name


def test_the_vocabulary_and_the_slicing_workers_import_no_tensorflow():
    # kgan.names exists so that modules which must stay light (recipes, the dataset build's worker
    # processes, the JAX benchmark) can share the names; a TensorFlow import there would undo it.
    import subprocess

    code = (
        "import sys; import kgan.names, kgan.config, kgan.slice_tasks; "
        "heavy = sorted(m for m in ('tensorflow', 'keras') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == ""
