"""Property tests: the records reader never crashes with anything but InputError, and round-trips."""
import json

from hypothesis import HealthCheck, given, settings, strategies as st

from selfinstruct.data.records import InputError, read_examples
from selfinstruct.data.writers import read_jsonl_lenient, write_jsonl

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3), max_leaves=8)
rows = st.fixed_dictionaries({"instruction": text, "output": text}, optional={"input": json_values})


@SETTINGS
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_rows_or_one_line_error(tmp_path, data):
    p = tmp_path / "x.jsonl"
    p.write_bytes(data)
    try:
        got = read_examples(p)
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(str(p))
    else:
        assert all(isinstance(r["instruction"], str) and r["instruction"].strip() for r in got)


@SETTINGS
@given(values=st.lists(json_values | rows, min_size=1, max_size=6), as_array=st.booleans())
def test_arbitrary_json_rows(tmp_path, values, as_array):
    p = tmp_path / ("x.json" if as_array else "x.jsonl")
    p.write_text(json.dumps(values) if as_array else "\n".join(json.dumps(v) for v in values), encoding="utf-8")
    try:
        got = read_examples(p)
    except InputError as e:
        assert "\n" not in str(e)
        assert e.line is None or 1 <= e.line <= max(1, p.read_text().count("\n") + 1)
    else:
        assert len(got) == len(values)


@SETTINGS
@given(good=st.lists(st.fixed_dictionaries({"instruction": text.filter(str.strip), "input": text, "output": text}),
                     min_size=1, max_size=5))
def test_write_then_read_round_trips(tmp_path, good):
    p = tmp_path / "rt.jsonl"
    p.unlink(missing_ok=True)
    write_jsonl(p, good)
    assert [{k: r[k] for k in ("instruction", "input", "output")} for r in read_examples(p)] == good
    assert read_jsonl_lenient(p) == good
