"""Progress display: a bar on terminals, about ten plain lines in logs, one summary line."""

import io

from kgan import progress


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_plain_lines_every_tenth_with_rate_and_eta(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    stream = io.StringIO()
    bar = progress.Progress(200, "build", "case", stream=stream, terminal=False)
    for _ in range(200):
        clock.now += 0.5  # 2 cases per second
        bar.update()
    bar.close("kgan: built 200 cases")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11 and lines[-1] == "kgan: built 200 cases"
    assert lines[0] == "build: 20/200 cases (10 %), 2 case/s, ETA 1 min 30 s"
    assert lines[4] == "build: 100/200 cases (50 %), 2 case/s, ETA 50 s"
    assert lines[9] == "build: 200/200 cases (100 %), 2 case/s"


def test_fast_work_is_not_flooded_and_terminal_gets_a_bar(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    stream = io.StringIO()
    bar = progress.Progress(1000, "png", "slice", stream=stream, terminal=False)
    for _ in range(1000):
        clock.now += 0.001  # one second in all: at most a line a second, and the last one
        bar.update()
    assert stream.getvalue().splitlines() == ["png: 1000/1000 slices (100 %), 1,000 slice/s"]
    tty = io.StringIO()
    with progress.Progress(3, "png", "slice", stream=tty, terminal=True) as live:
        live.update(3)
    assert "\r" in tty.getvalue() and "0/3 [" in tty.getvalue()  # a tqdm bar, redrawn in place
    silent = progress.Silent(5)
    silent.update(5)
    silent.close("never printed")
    assert silent.count == 5


def test_format_seconds():
    assert [progress.format_seconds(s) for s in (3.14, 42, 185, 3725)] == [
        "3.1 s",
        "42 s",
        "3 min 05 s",
        "1 h 02 min",
    ]
