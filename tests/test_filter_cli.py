"""`selfinstruct filter` end to end through click's CliRunner."""
import json
import re

from click.testing import CliRunner

from selfinstruct.cli import main

ROWS = [
    {"instruction": "List three fruits that are red.", "input": "", "output": "apple, cherry, strawberry", "id": 1},
    {"instruction": "List three fruits that are red!", "input": "", "output": "raspberry", "id": 2},
    {"instruction": "Name a country in Europe with a king.", "input": "", "output": "Spain", "id": 3},
    {"instruction": "Describe the image below in detail.", "input": "", "output": "A cat.", "id": 4},
    {"instruction": "Translate this sentence into French please.", "input": "Hello", "output": "Bonjour", "id": 5},
    {"instruction": "Translate this sentence into French please.", "input": "Hello", "output": "Salut", "id": 6},
    {"instruction": "Translate this sentence into French please.", "input": "Thanks", "output": "Merci", "id": 7},
]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run(*args):
    return CliRunner().invoke(main, ["filter", *map(str, args)])


def test_filter_writes_kept_and_rejected(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [
        {"instruction": "Name a country in Asia with a king.", "instances": [{"input": "", "output": "Thailand"}]}])
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl"
    r = run(src, "--out", out, "--rejected", rej, "--against", seeds, "--no-progress")
    assert r.exit_code == 0, r.output
    kept, rejected = read_jsonl(out), read_jsonl(rej)
    assert [k["id"] for k in kept] == [1, 5, 7]
    assert all("_line" not in k for k in kept + rejected)
    assert kept[0]["similarity"] == 0.0 and kept[0]["most_similar"] is None     # small input: exact
    assert kept[2]["similarity"] == kept[1]["similarity"]                       # same instruction
    assert [(x["id"], x["reason"]) for x in rejected] == [
        (2, "similar"), (3, "similar"), (4, "blacklist:image"), (6, "exact_duplicate")]
    assert rejected[1]["most_similar"] == "Name a country in Asia with a king."
    assert 0.7 < rejected[1]["similarity"] < 1
    assert "7 rows -> 3 kept, 4 rejected" in r.stderr
    assert "similar" in r.stderr and "pruned" in r.stderr and "1 reference instructions" in r.stderr
    assert r.stdout == ""


def test_filter_options(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    r = run(src, "--out", tmp_path / "a.jsonl", "--no-heuristics", "--threshold", "0.95")
    assert r.exit_code == 0, r.output
    assert [k["id"] for k in read_jsonl(tmp_path / "a.jsonl")] == [1, 3, 4, 5, 7]
    r = run(src, "--out", tmp_path / "b.jsonl", "--blacklist", "country,king", "--exact-above", "0.5")
    assert r.exit_code == 0, r.output
    kept = read_jsonl(tmp_path / "b.jsonl")
    assert [k["id"] for k in kept] == [1, 4, 5, 7] and kept[0]["similarity"] is None
    assert "(country 1)" in r.stderr and "exact above 0.5" in r.stderr


def test_unicode_tokenizer_rejects_chinese_near_duplicate(tmp_path):
    rows = [{"instruction": "请把下面的句子翻译成英文。", "input": "你好", "output": "Hello"},
            {"instruction": "请将下面的句子翻译成英文。", "input": "谢谢", "output": "Thanks"}]
    src = write_jsonl(tmp_path / "zh.jsonl", rows)
    r = run(src, "--out", tmp_path / "rouge.jsonl", "--no-heuristics")
    assert r.exit_code == 0 and len(read_jsonl(tmp_path / "rouge.jsonl")) == 2
    r = run(src, "--out", tmp_path / "uni.jsonl", "--rejected", tmp_path / "uni_rej.jsonl", "--tokenizer", "unicode")
    assert r.exit_code == 0, r.output
    assert len(read_jsonl(tmp_path / "uni.jsonl")) == 1
    assert read_jsonl(tmp_path / "uni_rej.jsonl")[0]["reason"] == "similar"


def test_bad_row_is_one_line_with_its_line_number(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(ROWS[0]) + "\n" + '{"instruction": "x", "output": 3}\n' + "{not json\n")
    out = tmp_path / "k.jsonl"
    r = run(src, "--out", out)
    assert r.exit_code == 2
    assert r.stderr == f"error: {src}:2: field 'output' must be a string, got int\n"
    assert not out.exists()
    r = run(src, "--out", out, "--skip-invalid", "--rejected", tmp_path / "rej.jsonl")
    assert r.exit_code == 0, r.output
    assert len(read_jsonl(out)) == 1
    assert re.search(r"skipped \(invalid rows\) +2\n", r.stderr)
    assert f"skipped: {src}:2: field 'output'" in r.stderr and f"skipped: {src}:3: invalid JSON" in r.stderr
    assert "Traceback" not in r.output


def test_refuses_to_overwrite(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out = tmp_path / "k.jsonl"
    out.write_text("precious\n")
    r = run(src, "--out", out)
    assert r.exit_code == 2 and "already exists" in r.stderr and len(r.stderr.splitlines()) == 1
    assert out.read_text() == "precious\n"
    rej = tmp_path / "r.jsonl"
    rej.write_text("also precious\n")
    r = run(src, "--out", tmp_path / "new.jsonl", "--rejected", rej)
    assert r.exit_code == 2 and not (tmp_path / "new.jsonl").exists()     # checked before any work
    r = run(src, "--out", tmp_path / "same.jsonl", "--rejected", tmp_path / "same.jsonl")
    assert r.exit_code == 2 and "different" in r.stderr
    r = run(tmp_path / "missing.jsonl", "--out", tmp_path / "x.jsonl")
    assert r.exit_code == 2 and "missing.jsonl: no such file" in r.stderr


def test_include_seeds_puts_every_seed_instance_first_and_filters_it_alike(tmp_path):
    """The paper's fine-tuning data includes its seed tasks (prepare_for_finetuning --include_seed_tasks)."""
    seeds = write_jsonl(tmp_path / "seeds.jsonl", [
        {"instruction": "Name a country in Asia with a king.", "instances": [{"input": "", "output": "Thailand"}]},
        {"instruction": "Sort these numbers from small to large.",
         "instances": [{"input": "3, 1, 2", "output": "1, 2, 3"}, {"input": "9, 7", "output": "7, 9"}]},
        {"instruction": "Describe the image of a sunset.", "instances": [{"input": "", "output": "Red sky."}]}])
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out, rej = tmp_path / "kept.jsonl", tmp_path / "rejected.jsonl"
    r = run(src, "--out", out, "--rejected", rej, "--include-seeds", seeds, "--no-progress")
    assert r.exit_code == 0, r.output
    kept, rejected = read_jsonl(out), read_jsonl(rej)
    assert [(k["instruction"][:13], k["input"], k.get("seed")) for k in kept[:3]] == [
        ("Name a countr", "", True), ("Sort these nu", "3, 1, 2", True), ("Sort these nu", "9, 7", True)]
    assert [k["id"] for k in kept[3:]] == [1, 5, 7]          # the generated row 3 is now similar to a seed
    assert {(x.get("id"), x["reason"]) for x in rejected} >= {(None, "blacklist:image"), (3, "similar")}
    assert "11 rows -> 6 kept" in r.stderr                 # 4 seed instances + 7 rows
    packaged = tmp_path / "packaged.jsonl"
    assert run(src, "--out", packaged, "--include-seeds", "packaged", "--no-progress").exit_code == 0
    assert sum(bool(k.get("seed")) for k in read_jsonl(packaged)) >= 170


def test_a_full_disk_is_one_line_and_exit_2(tmp_path, monkeypatch):
    import errno

    from selfinstruct.data import writers
    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers, "write_jsonl", full)
    r = run(write_jsonl(tmp_path / "in.jsonl", ROWS), "--out", tmp_path / "kept.jsonl", "--no-progress")
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "no space left on device" in r.stderr


def test_gz_outputs_are_gzip_and_read_back(tmp_path):
    import gzip

    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    out, rej = tmp_path / "kept.jsonl.gz", tmp_path / "rejected.jsonl.gz"
    r = run(src, "--out", out, "--rejected", rej, "--no-progress")
    assert r.exit_code == 0, r.output
    kept = [json.loads(line) for line in gzip.decompress(out.read_bytes()).decode().splitlines()]
    assert [k["id"] for k in kept] == [1, 3, 5, 7] and gzip.decompress(rej.read_bytes())
    again = run(out, "--out", tmp_path / "again.jsonl", "--no-progress")  # filter reads its own output
    assert again.exit_code == 0, again.output
    assert [k["id"] for k in read_jsonl(tmp_path / "again.jsonl")] == [1, 3, 5, 7]


def test_out_dash_writes_the_kept_rows_to_stdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = write_jsonl(tmp_path / "in.jsonl", ROWS)
    r = run(src, "--out", "-", "--no-progress")
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["id"] for line in r.stdout.splitlines()] == [1, 3, 5, 7]
    assert "7 rows -> 4 kept" in r.stderr and not (tmp_path / "-").exists()


def test_filter_reads_the_sources_train_reads(tmp_path):
    """A generate folder, an `export --format hf` folder, and `--against packaged` (the packaged seeds)."""
    from fake_teacher import run as generate

    from selfinstruct.data.export import export
    from selfinstruct.data.seeds import load_seeds

    generate(tmp_path / "run", seed=1, rounds=2, delay=0)
    export(tmp_path / "run", "hf", tmp_path / "hf")
    n = len(read_jsonl(tmp_path / "run" / "data.jsonl"))
    for source in (tmp_path / "run", tmp_path / "hf"):
        r = run(source, "--out", tmp_path / f"{source.name}.jsonl", "--no-heuristics", "--no-progress")
        assert r.exit_code == 0, r.output
        assert f"{n} rows ->" in r.stderr
    seed = load_seeds(None)[0]["instruction"]
    src = write_jsonl(tmp_path / "in.jsonl", [{"instruction": seed, "input": "", "output": "x"}] + ROWS[:1])
    r = run(src, "--out", tmp_path / "k.jsonl", "--rejected", tmp_path / "r.jsonl", "--against", "packaged",
            "--no-progress")
    assert r.exit_code == 0, r.output
    assert [x["reason"] for x in read_jsonl(tmp_path / "r.jsonl")] == ["similar"]
    assert "175 reference instructions" in r.stderr


def test_help_lists_every_source():
    def help_of(*cmd):
        return " ".join(CliRunner().invoke(main, [*cmd, "--help"]).output.split())
    assert "gguf:FILE.gguf" in help_of("generate")
    train = help_of("train")
    for needle in ("ShareGPT", "{prompt, completion}", "`generate` folder", "`export --format hf` folder",
                   "Parquet"):
        assert needle in train, needle
    for cmd in ("filter", "eval", "export"):
        assert "`export --format hf` folder" in help_of(cmd) and "Parquet" in help_of(cmd), cmd
    assert "'packaged' for the packaged 175 seed tasks" in help_of("filter")
