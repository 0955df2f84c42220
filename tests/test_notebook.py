"""The quickstart notebook runs top to bottom on the venv's own Python, with the tiny model.

A kernelspec pointing at this interpreter is written to a temporary Jupyter path, so the test never
picks up some other `python3` kernel installed on the machine; MUSEDRAFT_MODEL points compose() at
the checkpoint trained in this session.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[1] / "notebooks" / "quickstart.ipynb"
KERNEL = "musedraft-test-venv"


@pytest.fixture
def venv_kernel(tmp_path, monkeypatch) -> str:
    spec_dir = tmp_path / "jupyter" / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "musedraft test venv", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    return KERNEL


def _outputs(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if mime in o.get("data", {})]


def test_quickstart_notebook_runs_top_to_bottom(tmp_path, venv_kernel, tiny_checkpoint, monkeypatch):
    monkeypatch.setenv("MUSEDRAFT_MODEL", str(tiny_checkpoint))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit the notebook without outputs"
    NotebookClient(nb, kernel_name=venv_kernel, timeout=600, resources={"metadata": {"path": str(tmp_path)}}).execute()

    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"model: {tiny_checkpoint}" in text  # the kernel saw MUSEDRAFT_MODEL
    players = [h for h in _outputs(nb, "text/html") if "<audio" in h]
    assert len(players) == 1 and "data:audio/x-wav;base64," in players[0]
    wav = base64.b64decode(players[0].split("base64,", 1)[1].split('"', 1)[0])
    assert wav[:4] == b"RIFF" and len(wav) > 44_100  # a real render, not an empty file
    pngs = _outputs(nb, "image/png")
    assert len(pngs) == 1 and base64.b64decode(pngs[0])[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "quickstart_out"
    assert {p.name for p in out.iterdir() if p.is_file()} == {
        "draft.mid", "draft.musicxml", "draft.png", "draft.wav", "draft.ogg", "draft.json"}
    assert (out / "continued" / "draft.flac").stat().st_size > 0
    assert "edits:" in text and "loop: 0.0 s to" in text and "define audio.draft" in text


EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.mark.parametrize("script, args, expected", [
    ("continue_a_primer.py", ["--bars", "4", "--no-audio", "--out", "cont"], ["cont/draft.mid", "cont/draft.json"]),
    ("repair_my_midi.py", ["-o", "fixed.mid"], ["fixed.mid", "fixed.json"]),
    ("batch_generate.py", ["--scenes", "daily,sad", "--seeds", "2", "--bars", "4", "--no-audio", "--out", "batch"],
     ["batch/summary.csv", "batch/daily/seed-1/draft.mid", "batch/sad/seed-0/draft.musicxml"]),
])
def test_examples_run(tmp_path, tiny_checkpoint, script, args, expected):
    env = {**os.environ, "MUSEDRAFT_MODEL": str(tiny_checkpoint)}
    proc = subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rel in expected:
        assert (tmp_path / rel).stat().st_size > 0, rel
    if script == "repair_my_midi.py":  # the built-in example has findings and the repair clears them
        report = json.loads((tmp_path / "fixed.json").read_text())
        assert report["findings_before"] and report["edits"] and not report["findings_after"]
