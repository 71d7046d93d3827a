"""Export to a TF Serving SavedModel: signatures, determinism, warm-up, metadata, bad requests.

No model server can be installed here, so the export is checked the ways TF Serving would use
it: `saved_model_cli`, replaying the warm-up PredictRequests against the loaded SavedModel, and
the REST request bodies from docs/serving.md converted to tensors with TF Serving's JSON rules.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from kgan import export, names, schema, serving
from kgan.serving import METADATA_FILE, PNG_OUTPUT, WARMUP_FILE, latent_vectors

REPO = Path(__file__).resolve().parents[1]
LATENT, SIZE = 8, 16


def make_generator(conditional: bool, latent_dim: int = LATENT, size: int = SIZE, seed: int = 0):
    """A tiny functional generator with the contract's I/O (built-in layers only)."""
    import keras

    keras.utils.set_random_seed(seed)
    z = keras.Input((latent_dim,), name="z")
    if conditional:
        modality = keras.Input((), dtype="int32", name="modality")
        tumour = keras.Input((), dtype="int32", name="tumour")
        h = keras.layers.Concatenate()(
            [
                z,
                keras.layers.Embedding(len(names.MODALITIES), 4)(modality),
                keras.layers.Embedding(2, 4)(tumour),
            ]
        )
        inputs = [z, modality, tumour]
    else:
        h, inputs = z, z
    h = keras.layers.Dense((size // 4) ** 2 * 8)(h)
    h = keras.layers.Reshape((size // 4, size // 4, 8))(h)
    h = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same")(h)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    out = keras.layers.Conv2DTranspose(1, 4, strides=2, padding="same", activation="tanh")(h)
    return keras.Model(inputs, out, name="generator")


METADATA = {
    "gan": "dcgan",
    "modalities": ["t1", "flair"],
    "plane": "sagittal",
    "dataset": {"source": "phantom_slices/sagittal_16"},
}


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    """(generator, version dir, loaded SavedModel) for a conditional generator on t1+flair."""
    generator = make_generator(True)
    base = tmp_path_factory.mktemp("exports") / "cond"
    version = export.export_generator(generator, str(base), metadata=METADATA, max_count=16)
    return generator, version, tf.saved_model.load(version)


@pytest.fixture(scope="module")
def unconditional(tmp_path_factory):
    generator = make_generator(False, seed=1)
    base = tmp_path_factory.mktemp("exports") / "uncond"
    version = export.export_generator(generator, str(base), metadata={"gan": "wgan"})
    return generator, version, tf.saved_model.load(version)


def _z(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LATENT)).astype(np.float32)


# ------------------------------------------------------------------------------------------


def test_reloaded_export_gives_the_in_memory_generators_images(conditional, unconditional):
    generator, _, loaded = unconditional
    z = _z(5)
    served = loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()
    np.testing.assert_allclose(served, generator(z, training=False).numpy(), atol=1e-6)
    assert served.dtype == np.float32 and served.shape == (5, SIZE, SIZE, 1)

    generator, _, loaded = conditional
    m = np.array([0, 3, 0, 3, 3], np.int32)
    t = np.array([0, 0, 1, 1, 0], np.int32)
    served = loaded.signatures["serving_default"](
        z=tf.constant(z), modality=tf.constant(m), tumour=tf.constant(t)
    )["images"].numpy()
    np.testing.assert_allclose(served, generator([z, m, t], training=False).numpy(), atol=1e-6)
    assert -1.0 <= served.min() and served.max() <= 1.0
    # The condition matters: another tumour flag gives other images for the same z.
    other = loaded.signatures["serving_default"](
        z=tf.constant(z), modality=tf.constant(m), tumour=tf.constant(1 - t)
    )["images"].numpy()
    assert np.abs(other - served).max() > 1e-4


def test_sample_is_deterministic_per_seed_and_pngs_hold_the_images(conditional):
    generator, _, loaded = conditional
    sample = loaded.signatures["sample"]
    args = dict(count=tf.constant(4), modality=tf.constant(3), tumour=tf.constant(1))
    a = sample(seed=tf.constant(11, tf.int64), **args)
    b = sample(seed=tf.constant(11, tf.int64), **args)
    c = sample(seed=tf.constant(12, tf.int64), **args)
    np.testing.assert_array_equal(a["images"].numpy(), b["images"].numpy())
    assert a[PNG_OUTPUT].numpy().tolist() == b[PNG_OUTPUT].numpy().tolist()
    assert np.abs(a["images"].numpy() - c["images"].numpy()).max() > 1e-3
    # The latents are the documented stateless Philox stream [seed, 0].
    z = tf.random.stateless_normal([4, LATENT], seed=[11, 0], alg="philox").numpy()
    np.testing.assert_array_equal(z, latent_vectors(11, 4, LATENT).numpy())
    expected = generator([z, np.full(4, 3, np.int32), np.ones(4, np.int32)], training=False)
    np.testing.assert_allclose(a["images"].numpy(), expected.numpy(), atol=1e-6)
    # Each PNG decodes to the image mapped to uint8 exactly as the record schema does.
    pngs = a[PNG_OUTPUT].numpy()
    assert pngs.shape == (4,)
    for png, image in zip(pngs, a["images"].numpy()):
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        decoded = tf.io.decode_png(png).numpy()
        np.testing.assert_array_equal(decoded, schema.to_uint8(image))


def test_versions_count_up_and_no_temporary_directory_is_left(tmp_path):
    generator = make_generator(False)
    base = tmp_path / "gen"
    first = export.export_generator(generator, str(base), metadata={"gan": "dcgan"})
    second = export.export_generator(generator, str(base), metadata={"gan": "dcgan"})
    assert (Path(first).name, Path(second).name) == ("1", "2")
    (base / "7").mkdir()  # a version copied in by hand: the next export goes above it
    assert export.next_version(str(base)) == 8
    assert sorted(os.listdir(base)) == ["1", "2", "7"]
    assert (Path(second) / "saved_model.pb").is_file()
    assert (Path(second) / "assets.extra" / WARMUP_FILE).is_file()


def test_saved_model_cli_lists_both_signatures_with_named_inputs(conditional):
    _, version, _ = conditional
    out = subprocess.run(
        ["saved_model_cli", "show", "--dir", version, "--all"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    ).stdout
    blocks = dict(re.findall(r"signature_def\['(\w+)'\]:(.*?)(?=signature_def\[|\Z)", out, re.S))
    assert {"serving_default", "sample"} <= set(blocks)

    def tensors(block, kind):
        part = block.split(f"contains the following {kind}(s):")[1]
        if kind == "input":
            part = part.split("contains the following output")[0]
        found = re.findall(r"\w+\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: (\([^)]*\))", part)
        return {name: (dtype, shape) for name, dtype, shape in found}

    assert tensors(blocks["serving_default"], "input") == {
        "z": ("DT_FLOAT", f"(-1, {LATENT})"),
        "modality": ("DT_INT32", "(-1)"),
        "tumour": ("DT_INT32", "(-1)"),
    }
    assert tensors(blocks["serving_default"], "output") == {
        "images": ("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 1)")
    }
    assert tensors(blocks["sample"], "input") == {
        "seed": ("DT_INT64", "()"),
        "count": ("DT_INT32", "()"),
        "modality": ("DT_INT32", "()"),
        "tumour": ("DT_INT32", "()"),
    }
    assert tensors(blocks["sample"], "output") == {
        "images": ("DT_FLOAT", f"(-1, {SIZE}, {SIZE}, 1)"),
        PNG_OUTPUT: ("DT_STRING", "(-1)"),
    }
    assert "tensorflow/serving/predict" in blocks["sample"]


def _replay_warmup(version, loaded):
    from tensorflow_serving.apis import prediction_log_pb2

    seen = []
    path = os.path.join(version, "assets.extra", WARMUP_FILE)
    for record in tf.data.TFRecordDataset(path):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = signature(**inputs)
        n = inputs["z"].shape[0] if "z" in inputs else int(inputs["count"])
        assert outputs["images"].shape == (n, SIZE, SIZE, 1)
        seen.append((request.model_spec.name, request.model_spec.signature_name, n))
    return seen


def test_warmup_requests_replay_against_the_saved_model(conditional, unconditional):
    _, version, loaded = conditional
    assert _replay_warmup(version, loaded) == [
        ("cond", "serving_default", 1),
        ("cond", "serving_default", 8),
        ("cond", "sample", 1),
    ]
    _, version, loaded = unconditional
    assert [s for _, s, _ in _replay_warmup(version, loaded)] == [
        "serving_default",
        "serving_default",
        "sample",
    ]


def test_warmup_requests_run_in_a_session_as_tf_serving_runs_them(conditional):
    """TF Serving feeds a SignatureDef's tensors by name in a Session, not via tf.function."""
    from tensorflow_serving.apis import prediction_log_pb2

    generator, version, _ = conditional
    path = os.path.join(version, "assets.extra", WARMUP_FILE)
    logs = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(path)
    ]
    results = []
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], version)
        for log in logs:
            request = log.predict_log.request
            signature = meta.signature_def[request.model_spec.signature_name]
            assert signature.method_name == "tensorflow/serving/predict"
            feed = {signature.inputs[k].name: tf.make_ndarray(v) for k, v in request.inputs.items()}
            fetch = {k: v.name for k, v in signature.outputs.items()}
            results.append((request, session.run(fetch, feed)))
        bad = meta.signature_def["sample"]
        with pytest.raises(tf.errors.InvalidArgumentError, match="count must be at most 16"):
            session.run(
                bad.outputs["images"].name,
                {
                    bad.inputs["seed"].name: 0,
                    bad.inputs["count"].name: 17,
                    bad.inputs["modality"].name: 0,
                    bad.inputs["tumour"].name: 0,
                },
            )
    assert len(results) == 3
    for request, outputs in results:  # compared outside the graph: Keras runs eagerly
        if "z" in request.inputs:
            inputs = [tf.make_ndarray(request.inputs[k]) for k in ("z", "modality", "tumour")]
            np.testing.assert_allclose(
                outputs["images"], generator(inputs, training=False).numpy(), atol=1e-6
            )
        else:
            assert len(outputs[PNG_OUTPUT]) == tf.make_ndarray(request.inputs["count"])


def test_warmup_requests_stay_within_a_small_max_count(tmp_path):
    """A warm-up request the model refuses would stop TF Serving from loading it."""
    version = export.export_generator(
        make_generator(True), str(tmp_path / "one"), metadata={"modalities": ["t2"]}, max_count=1
    )
    loaded = tf.saved_model.load(version)
    assert _replay_warmup(version, loaded) == [("one", "serving_default", 1), ("one", "sample", 1)]


def test_metadata_describes_the_generator(conditional, unconditional):
    _, version, _ = conditional
    with open(os.path.join(version, "assets.extra", METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["synthetic"] is True
    assert (meta["gan"], meta["image_size"], meta["latent_dim"], meta["conditional"]) == (
        "dcgan",
        SIZE,
        LATENT,
        True,
    )
    assert meta["modalities"] == ["t1", "flair"]
    assert meta["modality_index"] == {"t1": 0, "t1ce": 1, "t2": 2, "flair": 3}
    assert meta["dataset"] == {"source": "phantom_slices/sagittal_16"}
    assert meta["value_range"] == [-1.0, 1.0] and meta["dtype"] == "float32"
    assert meta["max_count"] == 16 and meta["plane"] == "sagittal"
    import kgan

    assert meta["kgan_version"] == kgan.__version__
    assert meta["tensorflow_version"] == tf.__version__
    assert set(meta["signatures"]["sample"]["outputs"]) == {"images", PNG_OUTPUT}
    _, version, _ = unconditional
    with open(os.path.join(version, "assets.extra", METADATA_FILE)) as f:
        meta = json.load(f)
    assert meta["conditional"] is False and meta["modalities"] == list(names.MODALITIES)
    assert meta["max_count"] == export.DEFAULT_MAX_COUNT


def test_bad_requests_fail_with_clear_errors(conditional, unconditional):
    _, _, loaded = conditional
    serve, sample = loaded.signatures["serving_default"], loaded.signatures["sample"]
    ok = dict(z=tf.constant(_z(2)), modality=tf.constant([0, 3]), tumour=tf.constant([0, 1]))
    InvalidArgument = tf.errors.InvalidArgumentError

    with pytest.raises(InvalidArgument, match="expected to be a float tensor"):
        serve(**{**ok, "z": tf.constant(_z(2), tf.float64)})
    with pytest.raises(InvalidArgument, match="expected to be a int32 tensor"):
        serve(**{**ok, "modality": tf.constant([0, 3], tf.int64)})
    with pytest.raises(InvalidArgument, match=rf"z must have shape \[N, {LATENT}\]"):
        serve(**{**ok, "z": tf.zeros([2, LATENT + 1])})
    with pytest.raises(InvalidArgument, match="one entry per latent vector"):
        serve(**{**ok, "modality": tf.constant([0, 3, 0])})
    with pytest.raises(InvalidArgument, match=r"modality must be one of 0 \(t1\), 3 \(flair\)"):
        serve(**{**ok, "modality": tf.constant([0, 1])})  # t1ce: not trained on it
    with pytest.raises(InvalidArgument, match="modality must be one of"):
        serve(**{**ok, "modality": tf.constant([0, 9])})  # no such modality at all
    with pytest.raises(InvalidArgument, match="tumour must be 0"):
        serve(**{**ok, "tumour": tf.constant([0, 2])})
    with pytest.raises(InvalidArgument, match="z contains NaN or Inf"):
        serve(**{**ok, "z": tf.constant(np.where(np.eye(2, LATENT), np.nan, 0).astype(np.float32))})
    with pytest.raises(InvalidArgument, match="at most 16 latent vectors"):
        serve(
            z=tf.zeros([17, LATENT]),
            modality=tf.zeros([17], tf.int32),
            tumour=tf.zeros([17], tf.int32),
        )

    args = dict(seed=tf.constant(0, tf.int64), modality=tf.constant(0), tumour=tf.constant(0))
    with pytest.raises(InvalidArgument, match="count must be at most 16"):
        sample(count=tf.constant(17), **args)
    with pytest.raises(InvalidArgument, match="count must be at least 1"):
        sample(count=tf.constant(-3), **args)
    with pytest.raises(InvalidArgument, match="modality must be one of"):
        sample(count=tf.constant(2), **{**args, "modality": tf.constant(-1)})
    with pytest.raises(InvalidArgument, match="expected to be a int64 tensor"):
        sample(count=tf.constant(2), **{**args, "seed": tf.constant(0, tf.int32)})
    # The server keeps working after refusing requests.
    assert serve(**ok)["images"].shape == (2, SIZE, SIZE, 1)

    _, _, loaded = unconditional
    with pytest.raises(InvalidArgument, match="count must be at most 1024"):
        loaded.signatures["sample"](seed=tf.constant(0, tf.int64), count=tf.constant(5000))
    with pytest.raises(InvalidArgument, match=rf"z must have shape \[N, {LATENT}\]"):
        loaded.signatures["serving_default"](z=tf.zeros([3, 2]))


def test_export_refuses_generators_that_break_the_contract(tmp_path):
    import keras

    z = keras.Input((LATENT,))
    rgb = keras.Model(z, keras.layers.Reshape((4, 4, 3))(keras.layers.Dense(48)(z)))
    with pytest.raises(export.ExportError, match=r"output must be \[N, S, S, 1\]"):
        export.export_generator(rgb, str(tmp_path / "x"), metadata={})
    with pytest.raises(
        export.ExportError, match="latent_dim=100 but the generator has latent_dim=8"
    ):
        export.export_generator(
            make_generator(False), str(tmp_path / "x"), metadata={"latent_dim": 100}
        )
    with pytest.raises(export.ExportError, match="unknown modalities"):
        export.export_generator(
            make_generator(False), str(tmp_path / "x"), metadata={"modalities": ["pd"]}
        )
    z, m, t = (
        keras.Input((LATENT,), name="z"),
        keras.Input((), dtype="int32", name="modality"),
        keras.Input((), dtype="int32", name="tumour"),
    )
    h = keras.layers.Concatenate()(
        [z, keras.layers.Embedding(4, 2)(m), keras.layers.Embedding(2, 2)(t)]
    )
    swapped = keras.Model([m, z, t], keras.layers.Reshape((4, 4, 1))(keras.layers.Dense(16)(h)))
    with pytest.raises(export.ExportError, match=r"ordered \['modality', 'z', 'tumour'\]"):
        export.export_generator(swapped, str(tmp_path / "x"), metadata={})
    assert not (tmp_path / "x").exists() or serving.existing_versions(str(tmp_path / "x")) == []


def _write_run(run_dir: Path, generator, config: dict) -> None:
    run_dir.mkdir(parents=True)
    generator.save(run_dir / "generator.keras")
    (run_dir / "config.json").write_text(json.dumps(config))


def test_export_run_reads_config_and_generator(tmp_path):
    generator = make_generator(True, seed=3)
    data_dir = tmp_path / "records" / "phantom_slices" / "x" / "1.0.0"
    data_dir.mkdir(parents=True)
    (data_dir / "dataset_info.json").write_text(
        json.dumps({"name": "phantom_slices", "version": "1.0.0", "configName": "x", "splits": []})
    )
    (data_dir / "kgan_build_summary.json").write_text(
        json.dumps(
            {"cases": {"train": ["P2", "P1"], "test": ["P3"]}, "slices": {"train": {"t2": 96}}}
        )
    )
    # The nested layout kgan.config.save_json writes.
    config = {
        "gan": "wgan",
        "name": "tiny",
        "model": {"image_size": SIZE, "latent_dim": LATENT, "conditional": True},
        "data": {
            "source": "phantom",
            "plane": "coronal",
            "modalities": ["t2"],
            "split": "train",
            "patients": 4,
        },
        "train": {"seed": 5},
        "resolved": {"dataset_dir": str(data_dir), "train_slices": 96, "device": "cpu"},
    }
    _write_run(tmp_path / "runs" / "tiny", generator, config)
    version = export.export_run(str(tmp_path / "runs" / "tiny"), str(tmp_path / "exports" / "tiny"))
    assert Path(version).name == "1"
    meta = json.loads((Path(version) / "assets.extra" / METADATA_FILE).read_text())
    assert (meta["gan"], meta["plane"], meta["modalities"], meta["seed"]) == (
        "wgan",
        "coronal",
        ["t2"],
        5,
    )
    import hashlib

    assert meta["dataset"] == {
        "source": "phantom",
        "split": "train",
        "patients": 4,
        "dataset_dir": str(data_dir),
        "train_slices": 96,
        "tfds": {"name": "phantom_slices", "version": "1.0.0", "config": "x"},
        "split_cases": 2,
        "split_cases_sha256": hashlib.sha256(b"P1\nP2").hexdigest(),
        "split_slices": {"t2": 96},
    }
    assert meta["recipe"] == config and meta["run"].endswith("tiny")
    loaded = tf.saved_model.load(version)
    z = _z(3, seed=4)
    m, t = np.full(3, 2, np.int32), np.array([1, 0, 1], np.int32)
    np.testing.assert_allclose(
        loaded.signatures["serving_default"](z=z, modality=m, tumour=t)["images"].numpy(),
        generator([z, m, t], training=False).numpy(),
        atol=1e-6,
    )


def test_export_run_names_the_missing_or_broken_file(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with pytest.raises(export.ExportError, match=r"config\.json is missing"):
        export.export_run(str(run), str(tmp_path / "out"))
    (run / "config.json").write_text("{not json")
    (run / "generator.keras").write_bytes(b"not a zip")
    with pytest.raises(export.ExportError, match=r"config\.json is not valid JSON"):
        export.export_run(str(run), str(tmp_path / "out"))
    (run / "config.json").write_text("{}")
    with pytest.raises(export.ExportError, match=r"generator\.keras could not be loaded"):
        export.export_run(str(run), str(tmp_path / "out"))


def test_export_script_writes_a_version(tmp_path, capsys):
    from conftest import load_script

    _write_run(tmp_path / "run", make_generator(False), {"gan": "began", "latent_dim": LATENT})
    script = load_script("export")
    script.main(
        [
            "--run",
            str(tmp_path / "run"),
            "--out",
            str(tmp_path / "exports" / "b"),
            "--max-count",
            "32",
        ]
    )
    version = capsys.readouterr().out.strip()
    assert version == str(tmp_path / "exports" / "b" / "1")
    meta = json.loads((Path(version) / "assets.extra" / METADATA_FILE).read_text())
    assert (meta["gan"], meta["max_count"]) == ("began", 32)


# ------------------------------------------------------------------------------------------
# REST: the request bodies documented in docs/serving.md, read with TF Serving's JSON rules.

_NP = {tf.float32: np.float32, tf.int32: np.int32, tf.int64: np.int64}


def _json_tensor(value, spec: tf.TensorSpec) -> np.ndarray:
    """One JSON value to a tensor as TF Serving does: ints only for int dtypes, exact shape."""
    flat = np.asarray(value, dtype=object).reshape(-1)
    if spec.dtype.is_integer:
        assert all(isinstance(v, int) and not isinstance(v, bool) for v in flat), (spec, value)
    else:
        assert all(isinstance(v, (int, float)) for v in flat), (spec, value)
    array = np.asarray(value, dtype=_NP[spec.dtype])
    assert spec.shape.is_compatible_with(array.shape), (spec, array.shape)
    return array


def rest_body_to_inputs(body: dict, signature) -> dict:
    """A REST predict body ("instances" rows or "inputs" columns) to the signature's inputs."""
    specs = signature.structured_input_signature[1]
    assert set(body) <= {"signature_name", "instances", "inputs"}
    if "inputs" in body:
        columns = body["inputs"]
        if not isinstance(columns, dict):
            assert len(specs) == 1
            columns = {next(iter(specs)): columns}
        assert set(columns) == set(specs), (set(columns), set(specs))
        return {k: _json_tensor(v, specs[k]) for k, v in columns.items()}
    rows = body["instances"]
    if not isinstance(rows[0], dict):
        assert len(specs) == 1
        rows = [{next(iter(specs)): r} for r in rows]
    assert all(set(r) == set(specs) for r in rows)
    return {k: _json_tensor([r[k] for r in rows], specs[k]) for k in specs}


def rest_response(outputs: dict, row_format: bool) -> str:
    """Encodes outputs as TF Serving's REST API does; only *_bytes strings become base64."""

    def encode(name, value):
        if value.dtype == object:
            if name.endswith("_bytes"):
                return [{"b64": base64.b64encode(v).decode()} for v in value]
            return [v.decode("utf-8") for v in value]  # what TF Serving would emit raw
        return value.tolist()

    columns = {k: encode(k, v.numpy()) for k, v in outputs.items()}
    if row_format:
        n = len(next(iter(columns.values())))
        return json.dumps(
            {"predictions": [{k: v[i] for k, v in columns.items()} for i in range(n)]}
        )
    return json.dumps({"outputs": columns})


def _doc_bodies():
    text = (REPO / "docs" / "serving.md").read_text()
    found = re.findall(r"<!-- rest-example: (\w+) -->\s*```json\n(.*?)```", text, re.S)
    assert len(found) >= 4, "docs/serving.md lost its REST examples"
    return [(kind, json.loads(body)) for kind, body in found]


def test_rest_bodies_in_the_docs_fit_the_signatures(conditional, unconditional):
    models = {"conditional": conditional[2], "unconditional": unconditional[2]}
    seen = set()
    for kind, body in _doc_bodies():
        name = body.get("signature_name", "serving_default")
        signature = models[kind].signatures[name]
        inputs = rest_body_to_inputs(body, signature)
        outputs = signature(**{k: tf.constant(v) for k, v in inputs.items()})
        response = json.loads(rest_response(outputs, row_format="instances" in body))
        if name == "sample":
            png = base64.b64decode(response["outputs"][PNG_OUTPUT][0]["b64"])
            assert png.startswith(b"\x89PNG")
        seen.add((kind, name, "instances" in body))
    assert {
        ("conditional", "serving_default", True),
        ("conditional", "sample", False),
        ("unconditional", "serving_default", True),
        ("unconditional", "sample", False),
    } <= seen


def test_string_outputs_are_named_for_rest_base64(conditional):
    """TF Serving REST writes a string output raw unless its name ends in "_bytes"."""
    _, _, loaded = conditional
    for name, signature in loaded.signatures.items():
        for key, spec in signature.structured_outputs.items():
            if spec.dtype == tf.string:
                assert key.endswith("_bytes"), (name, key)
    out = loaded.signatures["sample"](
        seed=tf.constant(1, tf.int64),
        count=tf.constant(1),
        modality=tf.constant(0),
        tumour=tf.constant(0),
    )
    with pytest.raises(UnicodeDecodeError):  # why: raw PNG bytes are not valid JSON text
        rest_response({"png": out[PNG_OUTPUT]}, row_format=False)


# ------------------------------------------------------------------------------------------
# Real kgan generators (kgan.gans.build_gan): their layers must survive .keras -> SavedModel.


@pytest.mark.parametrize("gan,conditional", [("dcgan", False), ("dcgan", True), ("began", True)])
def test_real_kgan_generators_export_and_match(tmp_path, gan, conditional):
    from kgan.gans import build_gan

    model = build_gan(
        gan,
        image_size=SIZE,
        latent_dim=LATENT,
        conditional=conditional,
        width=4,
        bottleneck=4,
        seed=1,
    )
    config = {
        "gan": gan,
        "model": {"image_size": SIZE, "latent_dim": LATENT, "conditional": conditional},
        "data": {"source": "phantom", "plane": "sagittal", "modalities": list(names.MODALITIES)},
    }
    _write_run(tmp_path / "run", model.generator, config)
    version = export.export_run(str(tmp_path / "run"), str(tmp_path / "exports" / gan))
    loaded = tf.saved_model.load(version)
    z = _z(4, seed=2)
    if conditional:
        m, t = np.array([0, 1, 2, 3], np.int32), np.array([1, 0, 1, 0], np.int32)
        served = loaded.signatures["serving_default"](z=z, modality=m, tumour=t)["images"]
        expected = model.generator([z, m, t], training=False)
    else:
        served = loaded.signatures["serving_default"](z=z)["images"]
        expected = model.generator(z, training=False)
    np.testing.assert_allclose(served.numpy(), expected.numpy(), atol=1e-5)
    assert served.shape == (4, SIZE, SIZE, 1)
    assert _replay_warmup(version, loaded)


def test_export_script_in_a_fresh_process_needs_no_kgan_model_code(tmp_path):
    """generator.keras of a real BEGAN loads with plain Keras (kgan.networks never imported)."""
    from kgan.gans import build_gan

    model = build_gan("began", image_size=SIZE, latent_dim=LATENT, width=4, bottleneck=4, seed=2)
    _write_run(tmp_path / "run", model.generator, {"gan": "began"})
    run, out = str(tmp_path / "run"), str(tmp_path / "exports" / "b")
    probe = (
        f"import runpy, sys; sys.argv = ['export.py', '--run', {run!r}, '--out', {out!r}]; "
        f"runpy.run_path({str(REPO / 'scripts' / 'export.py')!r}, run_name='__main__'); "
        "assert not any(m.startswith(('kgan.networks', 'kgan.gans')) for m in sys.modules), "
        "'kgan model code was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith(os.path.join("exports", "b", "1"))


# ------------------------------------------------------------------------------------------
# gRPC: the client code from docs/serving.md against an in-process PredictionService that runs
# the SavedModel signatures (a stand-in for TF Serving, which cannot be installed here).


def test_grpc_client_code_in_the_docs_runs(tmp_path):
    from concurrent import futures

    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    models = {}
    for name, conditional in (("dcgan_cond_axial_128", True), ("wgan_sagittal_64", False)):
        version = export.export_generator(
            make_generator(conditional, latent_dim=100), str(tmp_path / name), metadata={}
        )
        models[name] = tf.saved_model.load(version)

    class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            signature = models[request.model_spec.name].signatures[
                request.model_spec.signature_name or "serving_default"
            ]
            inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
            outputs = signature(**inputs)
            response = predict_pb2.PredictResponse(model_spec=request.model_spec)
            for key in request.output_filter or outputs:
                response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key].numpy()))
            return response

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        text = (REPO / "docs" / "serving.md").read_text().split("## gRPC", 1)[1]
        code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
        assert "localhost:8500" in code
        namespace = {}
        exec(code.replace("localhost:8500", f"localhost:{port}"), namespace)
    finally:
        server.stop(None)
    assert namespace["images"].shape == (8, SIZE, SIZE, 1)
    pngs = list(namespace["pngs"])
    assert len(pngs) == 16 and all(p.startswith(b"\x89PNG") for p in pngs)
    expected = (
        models["wgan_sagittal_64"]
        .signatures["sample"](seed=tf.constant(42, tf.int64), count=tf.constant(16))[PNG_OUTPUT]
        .numpy()
        .tolist()
    )
    assert pngs == expected
