"""Safe writing: atomic whole-file writes honour the umask, output-folder checks."""
import os
import stat

import pytest

from selfinstruct.data.writers import atomic_write_json, atomic_write_text, write_jsonl


@pytest.fixture
def umask():
    old = os.umask(0o022)
    try:
        yield lambda mask: os.umask(mask)
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_atomic_writes_honour_the_umask_like_open(tmp_path, umask, mask):
    umask(mask)
    with open(tmp_path / "plain.txt", "w") as f:
        f.write("x")
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"a": 1})
    write_jsonl(tmp_path / "c.jsonl", [{"a": 1}])
    want = 0o666 & ~mask
    assert _mode(tmp_path / "plain.txt") == want
    for name in ("a.txt", "b.json", "c.jsonl"):
        assert _mode(tmp_path / name) == want, name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.jsonl", "plain.txt"]


def test_replacing_a_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "stats.json"
    atomic_write_text(path, "old")
    path.chmod(0o640)
    atomic_write_text(path, "new")
    assert path.read_text() == "new" and _mode(path) == 0o640


def test_check_out_dir_one_rule_for_every_command(tmp_path):
    from selfinstruct.data.writers import OutputError, check_out_dir

    assert check_out_dir(tmp_path / "new") == tmp_path / "new"            # created later by the caller
    (tmp_path / "empty").mkdir()
    check_out_dir(tmp_path / "empty")
    run = tmp_path / "run"
    run.mkdir()
    (run / "tasks.jsonl").write_text("")
    (run / "stats.json.1a2b.tmp").write_text("")                          # a crash's leftover
    check_out_dir(run, ours=["tasks.jsonl"], marker="run.json")
    with pytest.raises(OutputError, match="is not empty; choose another --out"):
        check_out_dir(run)
    (run / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match=r"is not empty and holds no generate run \(run.json\)"):
        check_out_dir(run, ours=["tasks.jsonl"], marker="run.json", what="generate run")
    (run / "run.json").write_text("{}")
    check_out_dir(run, ours=["tasks.jsonl"], marker="run.json")           # an earlier run: resume
    with pytest.raises(OutputError, match="is not a folder"):
        check_out_dir(run / "notes.txt")
