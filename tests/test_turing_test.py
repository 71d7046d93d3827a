"""The Visual Turing Test kit: the paper's numbers, a blinded page, scoring, a real browser run."""

import base64
import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from test_evaluate import toy_generator, write_toy_dataset

from kgan.evaluation import turing_test
from kgan.evaluation.confusion import TuringTable


def test_paper_table_reproduces_han_et_al():
    """18, 32, 15, 35 -> accuracy 53%, sensitivity 36%, specificity 70%, LR+ 1.20, LR- 0.91."""
    t = TuringTable(
        real_as_real=18, real_as_synthetic=32, synthetic_as_real=15, synthetic_as_synthetic=35
    )
    assert t.total == 100 and t.correct == 53
    assert t.accuracy == pytest.approx(0.53)
    assert t.sensitivity == pytest.approx(0.36)
    assert t.specificity == pytest.approx(0.70)
    assert round(t.positive_likelihood_ratio, 2) == 1.20  # 0.36 / 0.30
    assert round(t.negative_likelihood_ratio, 2) == 0.91  # 0.64 / 0.70
    assert t.prevalence == pytest.approx(0.5)
    # exact two-sided binomial: 2 * sum_{k>=53} C(100, k) / 2^100
    assert t.binomial_p() == pytest.approx(0.6173, abs=1e-4)
    assert t.binomial_p("greater") == pytest.approx(0.3086, abs=1e-4)
    md = t.markdown()
    assert (
        "| ground truth real | 18 | 32 |" in md and "53.00%" in md and "1.20" in md and "0.91" in md
    )


def test_table_from_labels_and_degenerate_rater():
    truth = np.array([1, 1, 1, 0, 0, 0], bool)
    chosen = np.array([1, 0, 0, 0, 0, 0], bool)  # calls nearly everything synthetic
    t = TuringTable.from_labels(truth, chosen)
    assert (t.real_as_real, t.real_as_synthetic, t.synthetic_as_real, t.synthetic_as_synthetic) == (
        1,
        2,
        0,
        3,
    )
    assert t.specificity == 1.0 and t.positive_likelihood_ratio == float("inf")
    assert json.dumps(t.to_dict())  # JSON-safe even with an infinite ratio
    perfect = TuringTable(50, 0, 0, 50)
    assert perfect.binomial_p() < 1e-20


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    base = tmp_path_factory.mktemp("vtt")
    data = write_toy_dataset(base / "data", patients=(2, 3), slices=4, size=32)
    out = base / "page"
    page, key = turing_test.build(
        toy_generator(True, 32),
        data,
        str(out),
        real=6,
        synthetic=5,
        seed=11,
        display_size=200,
        log=lambda *_: None,
    )
    return out, page, key


def _payload(page_path):
    text = open(page_path, encoding="utf-8").read()
    start = text.index('<script id="payload" type="application/json">') + len(
        '<script id="payload" type="application/json">'
    )
    return text, json.loads(text[start : text.index("</script>", start)])


def test_page_is_blinded_self_contained_and_shuffled(kit):
    out, page, key_path = kit
    key = json.load(open(key_path))
    assert os.path.dirname(page) == str(out) and not key_path.startswith(str(out) + os.sep)
    assert sorted(os.listdir(out)) == ["turing_test.html"]  # nothing else to hand the rater
    text, payload = _payload(page)
    items = payload["items"]
    assert len(items) == 11 and key["n_real"] == 6 and key["n_synthetic"] == 5
    assert all(set(item) == {"id", "modality", "src"} for item in items)  # no truth field
    assert all(item["src"].startswith("data:image/png;base64,") for item in items)
    assert "http://" not in text and "https://" not in text and 'src="http' not in text
    for info in key["items"].values():  # provenance stays in the key only
        assert info.get("case_id", "zz-none") not in text
    truths = [key["items"][item["id"]]["truth"] for item in items]
    assert set(truths) == {"real", "synthetic"} and truths != sorted(
        truths
    )  # shuffled, not grouped
    # modality written under each slice, the same for both kinds
    assert {item["modality"] for item in items} <= {
        "T1",
        "T1ce (contrast-enhanced T1)",
        "T2",
        "FLAIR",
    }
    png = base64.b64decode(items[0]["src"].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_same_page_and_key_inside_folder_refused(kit, tmp_path):
    out, page, key_path = kit
    data = os.path.join(os.path.dirname(str(out)), "data")
    page2, key2 = turing_test.build(
        toy_generator(True, 32),
        data,
        str(tmp_path / "again"),
        real=6,
        synthetic=5,
        seed=11,
        display_size=200,
        log=lambda *_: None,
    )
    assert _payload(page2)[1] == _payload(page)[1]
    assert json.load(open(key2))["items"] == json.load(open(key_path))["items"]
    with pytest.raises(ValueError, match="inside the page's folder"):
        turing_test.build(
            toy_generator(True, 32),
            data,
            str(tmp_path / "x"),
            real=2,
            synthetic=2,
            key_path=str(tmp_path / "x" / "key.json"),
            log=lambda *_: None,
        )


def _answers(key, choose, test_id=None, skip=()):
    return {
        "format": turing_test.ANSWERS_FORMAT,
        "version": 1,
        "test_id": test_id or key["test_id"],
        "rater": "t",
        "answers": {i: choose(i, info) for i, info in key["items"].items() if i not in skip},
    }


def test_score_counts_and_cli(kit, tmp_path, capsys):
    _, _, key_path = kit
    key = json.load(open(key_path))
    ids = sorted(key["items"])
    # everyone called "real", except one skipped: real row all "real", synthetic row all "real"
    answers = _answers(key, lambda i, info: "real", skip={ids[0]})
    path = tmp_path / "a.json"
    path.write_text(json.dumps(answers))
    result = turing_test.score(str(path), key_path)
    t = result["table"]
    n_real_answered = sum(key["items"][i]["truth"] == "real" for i in ids[1:])
    assert (t.real_as_real, t.real_as_synthetic) == (n_real_answered, 0)
    assert (t.synthetic_as_real, t.synthetic_as_synthetic) == (10 - n_real_answered, 0)
    assert result["unanswered"] == [ids[0]]
    from conftest import load_script

    cli = load_script("turing_test")
    assert cli.main(["score", str(path), key_path]) == 0
    printed = capsys.readouterr().out
    assert "selected as real" in printed and "sensitivity" in printed and "unanswered" in printed
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(_answers(key, lambda i, info: "real", test_id="deadbeef")))
    with pytest.raises(ValueError, match="key of test"):
        turing_test.score(str(wrong), key_path)
    assert cli.main(["score", str(wrong), key_path]) == 2


# ---------------------------------------------------------------- headless Chromium
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class _DevTools:
    """A minimal Chrome DevTools Protocol client over a raw WebSocket (stdlib only)."""

    def __init__(self, url: str):
        host_port, path = url[len("ws://") :].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += self.sock.recv(4096)
        assert b" 101 " in reply.split(b"\r\n", 1)[0], reply
        self.buffer = reply.split(b"\r\n\r\n", 1)[1]
        self.next_id = 0

    def _recv_exact(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("DevTools connection closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def _recv_message(self):
        payload = b""
        while True:
            b0, b1 = self._recv_exact(2)
            length = b1 & 0x7F
            if length == 126:
                length = struct.unpack(">H", self._recv_exact(2))[0]
            elif length == 127:
                length = struct.unpack(">Q", self._recv_exact(8))[0]
            data = self._recv_exact(length)
            if b0 & 0x0F == 8:
                raise ConnectionError("DevTools closed the WebSocket")
            payload += data
            if b0 & 0x80:
                return json.loads(payload)

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        elif len(data) < 65536:
            header += bytes([0x80 | 126]) + struct.pack(">H", len(data))
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", len(data))
        self.sock.sendall(header + mask + bytes(b ^ mask[k % 4] for k, b in enumerate(data)))
        while True:
            reply = self._recv_message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})


@contextlib.contextmanager
def _chromium():
    profile = tempfile.mkdtemp(prefix="kgan-chromium-")
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"chromium did not start its DevTools endpoint (exit {proc.poll()})")
            time.sleep(0.2)
        port, path = open(port_file).read().split()[:2]
        yield _DevTools(f"ws://127.0.0.1:{port}{path}")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def _serve(directory):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _evaluate(cdp, session, expression):
    result = cdp.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": True},
        session,
    )
    if "exceptionDetails" in result:
        raise AssertionError(f"{expression}: {result['exceptionDetails']}")
    return result["result"].get("value")


def _wait(cdp, session, expression, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _evaluate(cdp, session, expression):
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {expression}")


@pytest.mark.browser
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_page_in_headless_chromium_answer_reload_export_score(kit, tmp_path):
    out, page, key_path = kit
    key = json.load(open(key_path))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    ids = sorted(key["items"])
    # a rater who calls every T1 slice real and everything else synthetic, skipping the last slice
    plan = {i: ("real" if key["items"][i]["modality"] == "t1" else "synthetic") for i in ids[:-1]}
    with _serve(out) as base, _chromium() as cdp:
        assert urllib.request.urlopen(f"{base}/turing_test.html").status == 200
        with pytest.raises(
            urllib.error.URLError
        ):  # the key is not reachable from the page's folder
            urllib.request.urlopen(f"{base}/../{os.path.basename(key_path)}")
        cdp.call(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        cdp.call("Page.navigate", {"url": f"{base}/turing_test.html"}, session)
        _wait(
            cdp,
            session,
            "document.readyState === 'complete' && document.querySelectorAll('.card').length > 0",
        )
        assert _evaluate(cdp, session, "document.querySelectorAll('.card').length") == len(ids)
        widths = _evaluate(
            cdp, session, "[...document.images].map(i => i.getBoundingClientRect().width)"
        )
        assert widths and all(w == 200 for w in widths)  # shown large, at the requested size
        assert _evaluate(
            cdp, session, "[...document.images].every(i => i.complete && i.naturalWidth === 32)"
        )
        for item_id, answer in list(plan.items())[:4]:
            _evaluate(cdp, session, f"document.getElementById('{item_id}-{answer}').click()")
        # answers survive a reload (kept in localStorage)
        cdp.call("Page.reload", {}, session)
        _wait(
            cdp,
            session,
            "document.readyState === 'complete' && document.querySelectorAll('.card').length > 0",
        )
        assert (
            _evaluate(cdp, session, "document.querySelectorAll('input[type=radio]:checked').length")
            == 4
        )
        for item_id, answer in list(plan.items())[4:]:
            _evaluate(cdp, session, f"document.getElementById('{item_id}-{answer}').click()")
        _evaluate(
            cdp,
            session,
            "(() => { const r = document.getElementById('rater'); r.value = 'Dr Test';"
            " r.dispatchEvent(new Event('input')); })()",
        )
        assert (
            _evaluate(cdp, session, "document.getElementById('progress').textContent")
            == f"{len(plan)} of {len(ids)} answered"
        )
        _evaluate(cdp, session, "document.getElementById('export').click()")
        exported = downloads / f"answers-{key['test_id']}.json"
        deadline = time.time() + 20
        while not exported.exists() and time.time() < deadline:
            time.sleep(0.2)
        assert exported.exists(), f"no download in {os.listdir(downloads)}"
    answers = json.loads(exported.read_text())
    assert answers["rater"] == "Dr Test" and answers["answers"] == plan
    result = turing_test.score(str(exported), key_path)
    truth = {i: key["items"][i]["truth"] for i in plan}
    t = result["table"]
    assert t.real_as_real == sum(truth[i] == "real" and plan[i] == "real" for i in plan)
    assert t.synthetic_as_synthetic == sum(
        truth[i] == "synthetic" and plan[i] == "synthetic" for i in plan
    )
    assert t.total == len(plan) and result["unanswered"] == [ids[-1]]


def test_unconditional_multimodality_samples_get_a_modality_from_the_encoder(kit, tmp_path):
    """Labelling only the real slices would give the answer away: synthetic ones get the encoder's
    labels."""
    out, _, _ = kit
    data = os.path.join(os.path.dirname(str(out)), "data")
    encoder_path = tmp_path / "enc.keras"
    page, key_path = turing_test.build(
        toy_generator(False, 32),
        data,
        str(tmp_path / "u"),
        real=3,
        synthetic=3,
        seed=2,
        encoder_path=str(encoder_path),
        log=lambda *_: None,
    )
    assert encoder_path.exists()
    key = json.load(open(key_path))
    items = _payload(page)[1]["items"]
    labels = {"T1", "T1ce (contrast-enhanced T1)", "T2", "FLAIR"}
    assert all(item["modality"] in labels for item in items)
    assert all(info["modality"] in ("t1", "t1ce", "t2", "flair") for info in key["items"].values())


def test_build_script_on_an_exported_savedmodel(tmp_path, capsys):

    from test_evaluate import _tiny_keras_generator

    from kgan import export

    data = write_toy_dataset(tmp_path / "data", patients=(1, 2), slices=3)
    version = export.export_generator(
        _tiny_keras_generator(True),
        str(tmp_path / "exports" / "tiny"),
        metadata={"gan": "dcgan", "modalities": ["t2", "flair"]},
    )
    from conftest import load_script

    cli = load_script("turing_test")
    out = tmp_path / "round1"
    assert (
        cli.main(
            [
                "build",
                "--model",
                version,
                "--data",
                data,
                "--out",
                str(out),
                "--real",
                "4",
                "--synthetic",
                "4",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    key = json.load(open(str(out) + ".key.json"))
    assert key["n_real"] == key["n_synthetic"] == 4
    assert {info["modality"] for info in key["items"].values()} <= {"t2", "flair"}
    assert "turing_test.html" in capsys.readouterr().out
