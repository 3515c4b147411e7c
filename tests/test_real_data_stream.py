"""benchmarks/real_data.py runs asc-auto commands for hours: when the script stops, so do they."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from asc_auto.procs import pid_alive

# A command that says one line real_data echoes, then runs on (as a search would).
_LONG = ("import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); "
         "print('trial 0 finished', flush=True); time.sleep(120)")
# One that stops by itself when interrupted: a Ctrl-C reaches the whole process group.
_QUICK = ("import os, sys; open(sys.argv[1], 'w').write(str(os.getpid())); "
          "print('trial 0 finished', flush=True)")


def _interrupt_on_first_line(real_data, monkeypatch: pytest.MonkeyPatch) -> None:
    def said(line: str) -> bool:
        raise KeyboardInterrupt  # the script stopped while the command ran

    monkeypatch.setattr(real_data, "said", said)


def test_the_script_stopping_stops_its_command(load_benchmark, monkeypatch, tmp_path: Path
                                                ) -> None:
    real_data = load_benchmark("real_data")
    _interrupt_on_first_line(real_data, monkeypatch)
    pid_file = tmp_path / "pid"
    started = time.time()
    with pytest.raises(KeyboardInterrupt):
        real_data.stream([sys.executable, "-c", _LONG, str(pid_file)], grace=0.5)
    assert time.time() - started < 60  # not the command's 120 s
    assert not pid_alive(int(pid_file.read_text()))  # terminated and reaped


def test_a_command_that_stops_by_itself_is_waited_for(load_benchmark, monkeypatch,
                                                      tmp_path: Path) -> None:
    real_data = load_benchmark("real_data")
    _interrupt_on_first_line(real_data, monkeypatch)
    pid_file = tmp_path / "pid"
    with pytest.raises(KeyboardInterrupt):
        real_data.stream([sys.executable, "-c", _QUICK, str(pid_file)], grace=60)
    assert not pid_alive(int(pid_file.read_text()))


def test_a_command_s_code_and_last_lines_come_back(load_benchmark, capsys) -> None:
    real_data = load_benchmark("real_data")
    code, tail = real_data.stream([sys.executable, "-c",
                                   "import sys; print('trial 3 finished'); print('other');"
                                   " sys.exit(2)"])
    assert code == 2
    assert tail.splitlines() == ["trial 3 finished", "other"]
    assert capsys.readouterr().out == "  trial 3 finished\n"  # only what `said` picks
