"""The human Visual Turing Test kit: a blinded web page, a separate key, and scoring.

Han et al. asked a physician to sort 50 real and 50 synthetic slices; the
physician asked for bigger images and the modality with each slice. `build`
writes one self-contained HTML page (images embedded as PNG data URIs, shown
large, the modality under each, order shuffled with a seed) with a
real/synthetic choice per slice. Answers stay in the browser (localStorage,
so a reload loses nothing) and are exported as a JSON file. The page holds
no answer key: the key is written to a separate file outside the page's
folder, so the folder can be handed to a rater as it is. `score` reads the
exported answers and the key and gives the paper's table.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import os

import numpy as np

from kgan import atomic, imaging, names, pipeline, schema
from kgan.evaluation.confusion import REAL, SYNTHETIC, TuringTable
from kgan.evaluation.sources import SyntheticSource

ANSWERS_FORMAT = "kgan-visual-turing-test-answers"
KEY_FORMAT = "kgan-visual-turing-test-key"
PAGE_NAME = "turing_test.html"


def default_key_path(out_dir: str) -> str:
    """The key lives beside the page's folder, not in it: DIR -> DIR.key.json."""
    return os.path.normpath(out_dir) + ".key.json"


def _png_data_uri(image: np.ndarray) -> str:
    pixels = schema.to_uint8(np.asarray(image).reshape(image.shape[0], image.shape[1]))
    encoded = imaging.png_bytes(pixels, optimize=True)
    return "data:image/png;base64," + base64.b64encode(encoded).decode("ascii")


def _modality_label(index: int) -> str:
    modality = names.MODALITIES[int(index)]
    label = names.MODALITY_DISPLAY_NAMES[modality]
    return f"{label} (contrast-enhanced T1)" if modality == "t1ce" else label


def build(
    source: SyntheticSource,
    data: str,
    out_dir: str,
    *,
    real: int = 50,
    synthetic: int = 50,
    seed: int = 0,
    data_dir: str | None = None,
    key_path: str | None = None,
    display_size: int = 384,
    encoder_path: str | None = None,
    title: str = "Visual Turing Test: real or synthetic brain MRI?",
    splits=("test",),
    train_data: str | None = None,
    log=print,
) -> tuple[str, str]:
    """Writes the blinded page and its key.

    Real slices are drawn (seeded) from the test split: held-out patients the
    generator never saw. Synthetic slices follow the real slices' modality
    (and, for conditional generators, tumour) mix. An unconditional generator
    trained on several modalities does not say which modality it drew, so its
    slices are labelled by kgan's evaluation encoder (trained or reused as in
    `scripts/evaluate.py`): a page that labels only real slices would give
    the answer away.

    Args:
      source: the generator.
      data: the slice dataset.
      out_dir: folder for the page (created).
      real, synthetic: how many of each.
      seed: seeds the choice of real slices, the synthetic draw and the order.
      data_dir: dataset home for names.
      key_path: the key file (default `DIR.key.json`, beside the folder); must not be inside it.
      display_size: width and height in CSS pixels of each slice.
      encoder_path: evaluation encoder for labelling unconditional samples.
      title: the page's heading.
      splits: the splits of `data` whose patients supply the real slices
        (all splits for the evaluation cohort, whose patients are all new).
      train_data: the generator's training dataset, whose train split trains
        the encoder (default: `data`).
      log: progress printer.

    Returns:
      (page path, key path).
    """
    if real < 0 or synthetic < 0 or real + synthetic == 0:
        raise ValueError(f"need some slices: real={real}, synthetic={synthetic}")
    key_path = os.path.abspath(key_path or default_key_path(out_dir))
    out_abs = os.path.abspath(out_dir)
    if os.path.commonpath([key_path, out_abs]) == out_abs:
        raise ValueError(
            f"the key {key_path} would sit inside the page's folder {out_abs}: "
            "raters would receive it; choose a path outside"
        )
    covered = [m for m in source.modalities if m in names.MODALITIES]
    from kgan.evaluation import cohort

    test_x, test_y = cohort.load_splits(data, list(splits), covered, data_dir)
    rng = np.random.default_rng(seed)
    if real > len(test_x):
        raise ValueError(
            f"asked for {real} real slices but split(s) {', '.join(splits)} of {data} "
            f"hold {len(test_x)}"
        )
    real_idx = np.sort(rng.choice(len(test_x), real, replace=False))
    mix = rng.choice(len(test_x), max(synthetic, 1), replace=True)[:synthetic]
    log(f"drawing {synthetic} synthetic slices (seed {seed})")
    if source.conditional:
        syn_mod = test_y["modality"][mix].astype(np.int32)
        syn_tum = test_y["tumour"][mix].astype(np.int32)
        syn_x = (
            source.draw(synthetic, seed, modality=syn_mod, tumour=syn_tum)
            if synthetic
            else test_x[:0]
        )
    else:
        syn_tum = None
        syn_x = source.draw(synthetic, seed) if synthetic else test_x[:0]
        if len(covered) == 1:
            syn_mod = np.full(synthetic, names.MODALITIES.index(covered[0]))
        else:
            from kgan.evaluation import encoder as encoder_lib
            from kgan.evaluation import report

            train_data = train_data or data

            def train():
                return pipeline.load_arrays(
                    train_data, "train", modalities=covered, data_dir=data_dir
                )

            enc = encoder_lib.load_or_train(
                encoder_path
                or report.default_encoder_path(train_data, test_x.shape[1], data_dir=data_dir),
                train,
                dataset=train_data,
                seed=0,
                log=log,
            )
            syn_mod = enc.modality(syn_x) if synthetic else np.zeros([0], np.int64)
    if synthetic and syn_x.shape[1:] != test_x.shape[1:]:
        raise ValueError(
            f"generator makes {syn_x.shape[1:]} slices but {data} holds {test_x.shape[1:]}"
        )

    entries = []
    for i in real_idx:
        entries.append(
            (
                {
                    "truth": REAL,
                    "modality": names.MODALITIES[int(test_y["modality"][i])],
                    "case_id": str(test_y["case_id"][i]),
                    "slice_index": int(test_y["slice_index"][i]),
                    "tumour": int(test_y["tumour"][i]),
                },
                test_x[i],
                int(test_y["modality"][i]),
            )
        )
    for k in range(synthetic):
        info = {
            "truth": SYNTHETIC,
            "modality": names.MODALITIES[int(syn_mod[k])],
            "generator": source.name,
            "seed": seed,
            "sample_index": k,
        }
        if syn_tum is not None:
            info["tumour_condition"] = int(syn_tum[k])
        entries.append((info, syn_x[k], int(syn_mod[k])))
    order = rng.permutation(len(entries))
    items, key_items = [], {}
    digest = hashlib.sha256(f"{seed}:{data}:{source.name}".encode())
    for position, e in enumerate(order):
        info, image, modality = entries[e]
        item_id = f"s{position + 1:03d}"
        uri = _png_data_uri(image)
        digest.update(uri.encode("ascii"))
        items.append({"id": item_id, "modality": _modality_label(modality), "src": uri})
        key_items[item_id] = info
    test_id = digest.hexdigest()[:16]
    page = render_page(items, test_id=test_id, title=title, display_size=display_size)
    os.makedirs(out_abs, exist_ok=True)
    page_path = os.path.join(out_abs, PAGE_NAME)
    atomic.write_text(page_path, page)
    key = {
        "format": KEY_FORMAT,
        "version": 1,
        "test_id": test_id,
        "seed": seed,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": source.name,
        "data": data,
        "page": page_path,
        "n_real": int(real),
        "n_synthetic": int(synthetic),
        "items": key_items,
    }
    atomic.write_text(key_path, json.dumps(key, indent=2))
    log(f"page: {page_path} ({len(items)} slices, test id {test_id}); key: {key_path}")
    return page_path, key_path


def render_page(items: list[dict], *, test_id: str, title: str, display_size: int = 384) -> str:
    """The self-contained HTML page: no external resources, no answer key."""
    payload = json.dumps({"testId": test_id, "items": items, "format": ANSWERS_FORMAT})
    payload = payload.replace("</", "<\\/")  # never close the script element early
    return (
        _PAGE.replace("__TITLE__", html.escape(title))
        .replace("__SIZE__", str(int(display_size)))
        .replace("__PAYLOAD__", payload)
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>__TITLE__</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 0; background: #111; color: #eee; }
 header { position: sticky; top: 0; background: #222; padding: 10px 16px; z-index: 2;
          display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
 header h1 { font-size: 18px; margin: 0 12px 0 0; }
 main { display: flex; flex-wrap: wrap; gap: 18px; padding: 16px; }
 .card { background: #000; border: 2px solid #333; padding: 8px; }
 .card.done { border-color: #3a7; }
 .card img { width: __SIZE__px; height: __SIZE__px; display: block; image-rendering: auto; }
 body.pixels .card img { image-rendering: pixelated; }
 .meta { display: flex; justify-content: space-between; margin: 6px 2px; font-size: 15px; }
 .modality { font-weight: bold; font-size: 17px; }
 .choices label { margin-right: 14px; font-size: 16px; cursor: pointer; }
 button, input[type=text] { font-size: 15px; }
 p.help { margin: 8px 16px; color: #bbb; }
</style>
</head>
<body>
<header>
 <h1>__TITLE__</h1>
 <label>Rater <input type="text" id="rater" placeholder="your name or code"></label>
 <span id="progress">0 answered</span>
 <button id="export">Export answers (JSON)</button>
 <label><input type="checkbox" id="pixels"> show pixels</label>
 <button id="clear">Clear answers</button>
</header>
<p class="help">For each slice choose <b>real</b> (from a patient) or <b>synthetic</b> (made by a
generator). The modality is written under each slice. Answers are saved in this browser as you go;
when done, press <i>Export answers</i> and send the downloaded file.</p>
<main id="grid"></main>
<script id="payload" type="application/json">__PAYLOAD__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("payload").textContent);
  var storeKey = "kgan-vtt:" + data.testId;
  var state = { rater: "", answers: {} };
  try { state = Object.assign(state, JSON.parse(localStorage.getItem(storeKey) || "{}")); } catch (e) {}
  function save() {
    state.updated = new Date().toISOString();
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) {}
    var n = Object.keys(state.answers).length;
    document.getElementById("progress").textContent = n + " of " + data.items.length + " answered";
  }
  var grid = document.getElementById("grid");
  data.items.forEach(function (item) {
    var card = document.createElement("div");
    card.className = "card"; card.id = "card-" + item.id;
    var img = document.createElement("img");
    img.src = item.src; img.alt = "slice " + item.id;
    var meta = document.createElement("div"); meta.className = "meta";
    var mod = document.createElement("span"); mod.className = "modality"; mod.textContent = item.modality;
    var num = document.createElement("span"); num.textContent = item.id;
    meta.appendChild(mod); meta.appendChild(num);
    var choices = document.createElement("div"); choices.className = "choices";
    ["real", "synthetic"].forEach(function (value) {
      var label = document.createElement("label");
      var input = document.createElement("input");
      input.type = "radio"; input.name = item.id; input.value = value;
      input.id = item.id + "-" + value;
      if (state.answers[item.id] === value) { input.checked = true; card.classList.add("done"); }
      input.addEventListener("change", function () {
        state.answers[item.id] = value; card.classList.add("done"); save();
      });
      label.appendChild(input); label.appendChild(document.createTextNode(" " + value));
      choices.appendChild(label);
    });
    card.appendChild(img); card.appendChild(meta); card.appendChild(choices);
    grid.appendChild(card);
  });
  var rater = document.getElementById("rater");
  rater.value = state.rater || "";
  rater.addEventListener("input", function () { state.rater = rater.value; save(); });
  document.getElementById("pixels").addEventListener("change", function (e) {
    document.body.classList.toggle("pixels", e.target.checked);
  });
  document.getElementById("clear").addEventListener("click", function () {
    if (!window.confirm("Clear all answers on this page?")) return;
    state.answers = {}; save();
    document.querySelectorAll("input[type=radio]").forEach(function (i) { i.checked = false; });
    document.querySelectorAll(".card").forEach(function (c) { c.classList.remove("done"); });
  });
  function exportJson() {
    return JSON.stringify({ format: data.format, version: 1, test_id: data.testId,
      rater: state.rater || "", exported: new Date().toISOString(),
      n_items: data.items.length, answers: state.answers }, null, 2);
  }
  window.kganExportJson = exportJson;
  document.getElementById("export").addEventListener("click", function () {
    var blob = new Blob([exportJson()], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "answers-" + data.testId + ".json";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  });
  save();
})();
</script>
</body>
</html>
"""  # noqa: E501 (the page keeps its own lines)


def read_json(path: str, what: str) -> dict:
    """Loads a JSON file with an error that names the file and what it should be."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what} file not found: {path}") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); expected the {what}") from e


def score(answers_path: str, key_path: str) -> dict:
    """Scores exported answers against the key.

    Returns:
      {"table": TuringTable, "unanswered": [...ids], "rater": ..., "test_id": ...,
       "per_modality": {modality: TuringTable}}.

    Raises:
      ValueError: when the files are of the wrong kind, belong to different
        tests, or the answers name slices the key does not hold.
    """
    answers = read_json(answers_path, "answers")
    key = read_json(key_path, "answer key")
    if answers.get("format") != ANSWERS_FORMAT:
        raise ValueError(
            f"{answers_path} is not a kgan answers file (format {answers.get('format')!r})"
        )
    if key.get("format") != KEY_FORMAT:
        raise ValueError(f"{key_path} is not a kgan answer key (format {key.get('format')!r})")
    if answers.get("test_id") != key.get("test_id"):
        raise ValueError(
            f"{answers_path} answers test {answers.get('test_id')!r} but {key_path} "
            f"is the key of test {key.get('test_id')!r}"
        )
    given = answers.get("answers") or {}
    unknown = sorted(set(given) - set(key["items"]))
    if unknown:
        raise ValueError(f"{answers_path} answers slices the key does not have: {unknown[:5]}")
    bad = {k: v for k, v in given.items() if v not in (REAL, SYNTHETIC)}
    if bad:
        raise ValueError(f"{answers_path}: answers must be 'real' or 'synthetic', got {bad}")
    answered = sorted(given)
    truth = np.array([key["items"][i]["truth"] == REAL for i in answered], bool)
    chosen = np.array([given[i] == REAL for i in answered], bool)
    per_modality = {}
    modalities = np.array([key["items"][i]["modality"] for i in answered])
    for m in sorted(set(modalities)):
        sel = modalities == m
        per_modality[m] = TuringTable.from_labels(truth[sel], chosen[sel])
    return {
        "table": TuringTable.from_labels(truth, chosen),
        "unanswered": sorted(set(key["items"]) - set(given)),
        "rater": answers.get("rater", ""),
        "test_id": key["test_id"],
        "per_modality": per_modality,
    }


def score_text(result: dict) -> str:
    """The printed report of `score`: the paper's table, then per modality."""
    lines = [
        f"Visual Turing Test {result['test_id']}, rater: {result['rater'] or '(unnamed)'}",
        "",
        result["table"].markdown(),
        "",
    ]
    if result["unanswered"]:
        lines += [
            f"unanswered (left out of the table): {len(result['unanswered'])} "
            f"({', '.join(result['unanswered'][:10])}"
            f"{' …' if len(result['unanswered']) > 10 else ''})",
            "",
        ]
    if len(result["per_modality"]) > 1:
        lines += [
            "per modality:",
            "",
            "| modality | real→real | real→synthetic | synthetic→real | "
            "synthetic→synthetic | accuracy | sensitivity | specificity |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for m, t in result["per_modality"].items():
            lines.append(
                f"| {m} | {t.real_as_real} | {t.real_as_synthetic} | {t.synthetic_as_real} | "
                f"{t.synthetic_as_synthetic} | {t.accuracy:.2f} | {t.sensitivity:.2f} | "
                f"{t.specificity:.2f} |"
            )
    return "\n".join(lines)
