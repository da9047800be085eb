"""`selfinstruct export`: every format round-trips through `train`'s reader and loads in `datasets`;
prompt-completion and messages train in TRL's SFTTrainer (tests marked slow)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from selfinstruct.cli import main
from selfinstruct.data.sources import load_rows
from selfinstruct.training.examples import encode_rows, split_rows
from selfinstruct.data.export import FORMATS, export
from selfinstruct.data.formatting import format_example
from selfinstruct.generation.answer import encode_batch
from tiny import make_tiny_model_dir, make_tokenizer

ROWS = [
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well.\n2. Sleep."},
    {"instruction": "Translate the sentence into Spanish.", "input": "Hello, how are you?",
     "output": "Hola, ¿cómo estás?"},
    {"instruction": "Write a function that adds two numbers.", "input": "",
     "output": "\ndef add(a, b):\n    return a + b"},
    {"instruction": "Classify the sentiment.\n\nBe brief.", "input": "I loved it!", "output": " positive"},
    {"instruction": "把这句话翻译成英文。", "input": "你好", "output": "Hello"},
]
CHAT_FORMATS = {"messages", "sharegpt"}  # their rows carry the chat shape: train them with --template chat


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


def pairs(path, template, tok):
    return [format_example(r, template, tok) for r in load_rows(path, template)]


def examples(path, template, tok):
    return encode_rows(load_rows(path, template), tok, template, max_length=256)[0]


def out_path(tmp_path, fmt):
    return tmp_path / (f"out-{fmt}" if fmt == "hf" else f"out-{fmt}.jsonl")


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_gives_the_same_training_examples(tmp_path, tok, fmt):
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    out = out_path(tmp_path, fmt)
    res = export(src, fmt, out)
    assert res["rows"] == len(ROWS)
    template = "chat" if fmt in CHAT_FORMATS else "alpaca"
    assert pairs(out, template, tok) == pairs(src, template, tok)
    assert examples(out, template, tok) == examples(src, template, tok)
    train, val = split_rows(load_rows(out, template), 0.4)  # train's validation split takes every shape
    assert len(train) + len(val) == len(ROWS) and val and train
    if fmt == "prompt-completion":  # the prompt is train's Alpaca prompt, the completion the output
        assert pairs(out, "alpaca", tok)[1][0].endswith("### Input:\nHello, how are you?\n\n### Response:\n")
    if fmt not in ("prompt-completion",):  # the chat shape also round-trips alpaca rows' chat examples
        assert pairs(out, "chat", tok) == pairs(src, "chat", tok)


def test_prompt_completion_with_the_chat_template(tmp_path, tok):
    model = make_tiny_model_dir(tmp_path / "tiny")
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    out = tmp_path / "pc.jsonl"
    export(src, "prompt-completion", out, template="chat", model=str(model))
    row = json.loads(out.read_text().splitlines()[0])
    assert row["prompt"].startswith("<bos><|user|>\n") and row["prompt"].endswith("<|assistant|>\n")
    want = examples(src, "chat", tok)
    assert examples(out, "chat", tok) == want
    # read back with the default template (a prompt-completion row needs none): still one BOS, in train and eval
    assert examples(out, "alpaca", tok) == want
    prompts = [p for p, _ in pairs(out, "alpaca", tok)]
    assert encode_batch(tok, prompts, "alpaca") == encode_batch(tok, prompts, "chat")
    assert all(e["input_ids"].count(tok.bos_token_id) == 1 for e in want)


def test_run_folder_and_task_files_export(tmp_path, tok):
    from fake_teacher import run

    run(tmp_path / "run", seed=1, rounds=2, delay=0)
    tasks = tmp_path / "run" / "tasks.jsonl"
    for source in (tmp_path / "run", tasks):
        out = tmp_path / f"{source.name}.messages.jsonl"
        export(source, "messages", out)
        assert pairs(out, "chat", tok) == pairs(tmp_path / "run", "chat", tok)
    # generate's own data.messages.jsonl is the messages export
    assert (tmp_path / "run" / "data.messages.jsonl").read_text() == (tmp_path / "run.messages.jsonl").read_text()


def test_each_format_loads_in_datasets(tmp_path):
    import datasets

    src = write_rows(tmp_path / "src.jsonl", ROWS)
    cache = str(tmp_path / "cache")
    columns = {"alpaca": ["instruction", "input", "output"], "prompt-completion": ["prompt", "completion"],
               "messages": ["messages"], "sharegpt": ["conversations"], "hf": ["instruction", "input", "output"]}
    for fmt in FORMATS:
        out = out_path(tmp_path, fmt)
        export(src, fmt, out)
        if fmt == "hf":
            ds = datasets.load_dataset(str(out), split="train", cache_dir=cache)
        else:
            ds = datasets.load_dataset("json", data_files=str(out), split="train", cache_dir=cache)
        assert ds.column_names == columns[fmt] and len(ds) == len(ROWS), fmt
        first = ds[1]
        if fmt in ("alpaca", "hf"):
            assert first == ROWS[1]
        elif fmt == "messages":
            assert first["messages"] == [{"role": "user", "content": "Translate the sentence into Spanish.\n\n"
                                                                     "Hello, how are you?"},
                                         {"role": "assistant", "content": "Hola, ¿cómo estás?"}]
        elif fmt == "sharegpt":
            assert [m["from"] for m in first["conversations"]] == ["human", "gpt"]


def test_hf_card_describes_a_generate_run(tmp_path):
    import datasets
    import yaml

    from fake_teacher import run

    run(tmp_path / "run", seed=2, rounds=2, delay=0)
    stats = json.loads((tmp_path / "run" / "stats.json").read_text())
    export(tmp_path / "run", "hf", tmp_path / "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    head = yaml.safe_load(card.split("---\n")[1])
    n = stats["total"]["instances"]
    assert [{k: s[k] for k in ("name", "num_examples")} for s in head["dataset_info"]["splits"]] == \
        [{"name": "train", "num_examples": n}]
    assert [f["name"] for f in head["dataset_info"]["features"]] == ["instruction", "input", "output"]
    assert head["configs"][0]["data_files"][0]["path"] == "data/train-*.parquet"
    assert "- teacher: `fake`" in card and "ROUGE-L F1 at most 0.7" in card and "at most 3 per task" in card
    assert f"| all | {stats['total']['candidates']} | {stats['total']['kept']} | {n} |" in card
    assert "175 seed tasks" in card
    ds = datasets.load_dataset(str(tmp_path / "hf"), split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == n


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path):
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    runner = CliRunner()
    existing = tmp_path / "taken.jsonl"
    existing.write_text("keep me\n")
    (tmp_path / "taken-hf").mkdir()
    cases = [
        (["export", str(src), "--format", "jsonl", "--out", str(tmp_path / "x.jsonl")], "not an export format"),
        (["export", str(src), "--format", "alpaca", "--out", str(existing)], "already exists"),
        (["export", str(src), "--format", "hf", "--out", str(tmp_path / "taken-hf")], "already exists"),
    ]
    chat = write_rows(tmp_path / "chat.jsonl", [{"messages": [{"role": "user", "content": "hi"},
                                                              {"role": "assistant", "content": "yo"}]}])
    cases.append((["export", str(chat), "--format", "alpaca", "--out", str(tmp_path / "y.jsonl")],
                  f"{chat}:1: a messages row cannot become a alpaca row"))
    for args, message in cases:
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        err = res.stderr if hasattr(res, "stderr") else res.output
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert existing.read_text() == "keep me\n" and not list((tmp_path / "taken-hf").iterdir())
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "y.jsonl").exists()
    ok = runner.invoke(main, ["export", str(src), "--format", "sharegpt", "--out", str(tmp_path / "s.jsonl")])
    assert ok.exit_code == 0 and "5 sharegpt rows" in ok.output


# --------------------------------------------------------------------------- TRL


def trl_train(tmp_path, model_dir, dataset, **cfg):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    args = SFTConfig(output_dir=str(tmp_path / "trl"), max_steps=3, per_device_train_batch_size=2,
                     learning_rate=1e-3, report_to="none", save_strategy="no", logging_steps=1,
                     use_cpu=True, dataloader_num_workers=0, **cfg)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok)
    out = trainer.train()
    return trainer, out


def export_and_trl_train(tmp_path, fmt: str):
    """Export ROWS as ``fmt``, load it with `datasets`, train 3 TRL steps; (source file, model dir, trainer)."""
    import math

    import datasets

    model_dir = make_tiny_model_dir(tmp_path / "tiny")
    src = write_rows(tmp_path / "src.jsonl", ROWS)
    export(src, fmt, tmp_path / f"{fmt}.jsonl")
    ds = datasets.load_dataset("json", data_files=str(tmp_path / f"{fmt}.jsonl"), split="train",
                               cache_dir=str(tmp_path / "cache"))
    trainer, out = trl_train(tmp_path, model_dir, ds)
    assert out.global_step == 3 and math.isfinite(out.training_loss)
    return src, model_dir, trainer


@pytest.mark.slow
def test_trl_trains_on_prompt_completion_with_our_labels(tmp_path):
    src, model_dir, trainer = export_and_trl_train(tmp_path, "prompt-completion")
    # TRL's tokens and completion-only mask are exactly ours: the same examples, the same loss targets
    from transformers import AutoTokenizer

    ours = examples(src, "alpaca", AutoTokenizer.from_pretrained(model_dir))
    theirs = trainer.train_dataset
    for mine, row in zip(ours, theirs):
        assert row["input_ids"] == mine["input_ids"] and row["labels"] == mine["labels"]


@pytest.mark.slow
def test_trl_trains_on_messages(tmp_path):
    _, _, trainer = export_and_trl_train(tmp_path, "messages")
    first = trainer.processing_class.decode(trainer.train_dataset[1]["input_ids"])
    assert "<|user|>\nTranslate the sentence into Spanish.\n\nHello, how are you?" in first
    assert "<|assistant|>\nHola, ¿cómo estás?<eos>" in first
