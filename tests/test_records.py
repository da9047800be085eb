import json

import pytest

from selfinstruct.data.records import InputError, read_any, read_examples, read_tasks
from selfinstruct.data.writers import (
    JsonlWriter, OutputError, check_writable, read_jsonl_lenient, repair_jsonl, write_jsonl,
)


def write(tmp_path, name, text, mode="w"):
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_reads_alpaca_json_array_and_jsonl(tmp_path):
    rows = [{"instruction": "Say hi.", "input": "", "output": "hi"},
            {"instruction": "Add.", "output": "3", "input": "1+2"}]
    a = write(tmp_path, "a.json", json.dumps(rows, indent=2))
    b = write(tmp_path, "b.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    for p in (a, b):
        got = read_examples(p)
        assert [(r["instruction"], r["input"], r["output"]) for r in got] == [
            ("Say hi.", "", "hi"), ("Add.", "1+2", "3")]


def test_json_array_rows_carry_their_line(tmp_path):
    p = write(tmp_path, "a.json", '[\n {"instruction": "x y", "output": "1"},\n\n {"instruction": "z", "output": 2}\n]')
    with pytest.raises(InputError) as e:
        read_examples(p)
    assert str(e.value) == f"{p}:4: field 'output' must be a string, got int"


def test_tasks_flatten_to_one_row_per_instance(shared_data):
    rows = read_examples(shared_data / "self_instruct_seed_tasks.jsonl")
    tasks = read_tasks(shared_data / "self_instruct_seed_tasks.jsonl")
    assert len(tasks) == 175
    assert len(rows) == sum(len(t["instances"]) for t in tasks)
    assert all(set(r) >= {"instruction", "input", "output", "_line"} for r in rows)
    assert "instances" not in rows[0]


def test_alpaca_rows_group_into_tasks(tmp_path):
    p = write(tmp_path, "a.jsonl", '{"instruction":"A b c d","input":"1","output":"2"}\n'
                                   '{"instruction":"A b c d","input":"3","output":"4"}\n')
    (task,) = read_tasks(p)
    assert task["instances"] == [{"input": "1", "output": "2"}, {"input": "3", "output": "4"}]


@pytest.mark.parametrize("text,line,msg", [
    ('{"instruction":"a","output":"b"}\n{"instruction": \n', 2, "invalid JSON"),
    ('{"instruction":"a","output":"b"}\n[1, 2]\n', 2, "expected a JSON object, got list"),
    ('{"instruction":"a"}\n', 1, "missing field 'output'"),
    ('{"instruction":"  ","output":"x"}\n', 1, "field 'instruction' is empty"),
    ('\n\n{"instruction":"a","output":"b","input":5}\n', 3, "field 'input' must be a string, got int"),
    ('{"instruction":"a","instances":[]}\n', 1, "field 'instances' must be a non-empty list"),
])
def test_bad_rows_name_file_and_line(tmp_path, text, line, msg):
    p = write(tmp_path, "bad.jsonl", text)
    with pytest.raises(InputError) as e:
        read_examples(p)
    assert str(e.value).startswith(f"{p}:{line}: ")
    assert msg in str(e.value)
    assert "\n" not in str(e.value)


def test_empty_directory_and_non_utf8(tmp_path):
    with pytest.raises(InputError, match="empty"):
        read_examples(write(tmp_path, "e.jsonl", "  \n"))
    with pytest.raises(InputError, match="is a directory"):
        read_examples(tmp_path)
    with pytest.raises(InputError) as e:
        read_examples(write(tmp_path, "x.jsonl", b'{"instruction":"a","output":"b"}\n{"x": "\xff"}\n'))
    assert str(e.value).endswith(":2: not valid UTF-8")


def test_skip_invalid_counts_bad_rows(tmp_path):
    p = write(tmp_path, "m.jsonl", '{"instruction":"a","output":"b"}\nnot json\n7\n{"instruction":"c","output":"d"}\n')
    skipped = []
    rows = read_examples(p, skip_invalid=True, skipped=skipped)
    assert [r["_line"] for r in rows] == [1, 4]
    assert [e.line for e in skipped] == [2, 3]


def test_chat_rows(tmp_path):
    p = write(tmp_path, "c.jsonl", json.dumps({"messages": [{"role": "user", "content": "hi"},
                                                             {"role": "assistant", "content": "yo"}]}) + "\n")
    ((line, row),) = read_any(p)
    assert line == 1 and row["messages"][1]["content"] == "yo"
    with pytest.raises(InputError, match="chat"):
        read_examples(p)


def test_writer_repairs_torn_line_and_appends(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"a": 1}\n{"a": 2}\n{"a": 3', encoding="utf-8")
    assert read_jsonl_lenient(p) == [{"a": 1}, {"a": 2}]
    assert repair_jsonl(p) == len('{"a": 3')
    with JsonlWriter(p) as w:
        w.write({"a": "é", "_private": 1})
    assert p.read_text(encoding="utf-8").splitlines() == ['{"a": 1}', '{"a": 2}', '{"a": "é"}']


def test_check_writable_never_overwrites(tmp_path):
    p = write(tmp_path, "out.jsonl", "keep\n")
    with pytest.raises(OutputError, match="already exists"):
        check_writable(p)
    assert p.read_text() == "keep\n"
    with pytest.raises(OutputError, match="is a directory"):
        check_writable(tmp_path)
    assert write_jsonl(tmp_path / "new" / "o.jsonl", [{"x": 1}]) == 1


def test_reads_gzipped_jsonl(tmp_path, shared_data):
    import gzip
    p = tmp_path / "a.jsonl.gz"
    p.write_bytes(gzip.compress(b'{"instruction":"a b","output":"c"}\n'))
    assert read_examples(p)[0]["output"] == "c"
    with pytest.raises(InputError, match="not a valid gzip"):
        read_examples(write(tmp_path, "b.jsonl.gz", b"plain"))
    assert len(read_examples(shared_data / "t0_prompts.jsonl.gz")) == 55185
