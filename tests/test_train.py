"""`selfinstruct train` end to end on a tiny random Llama (CPU, a few seconds per run)."""
import json
import logging

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from selfinstruct.cli import main
from selfinstruct.training.examples import token_batches
from selfinstruct.training.train import TrainOptions, train, training_arguments
from tiny import make_tiny_model_dir, metrics, model_and_data

WORDS = ["apple", "river", "stone", "cloud", "green", "seven", "light", "table", "music", "north"]
ROWS = [{"instruction": f"Repeat the word {w} {n} times.", "input": "", "output": " ".join([w] * n)}
        for w in WORDS for n in (2, 3)]  # 20 rows: 16 train, 4 validation
ARGS = ["--max-steps", "12", "--batch-size", "4", "--lr", "3e-2", "--warmup-ratio", "0.1",
        "--eval-steps", "4", "--logging-steps", "1", "--val-fraction", "0.2", "--seed", "1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return model_and_data(tmp_path_factory.mktemp("train"), ROWS)


class Records(logging.Handler):
    """transformers' log lines (its logger does not propagate, so caplog misses them)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())

    def __enter__(self):
        logging.getLogger("transformers").addHandler(self)
        return self

    def __exit__(self, *exc):
        logging.getLogger("transformers").removeHandler(self)


@pytest.fixture(scope="module")
def run(setup):
    root, base, data = setup
    out = root / "run"
    with Records() as logs:
        res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                        *ARGS])
    assert res.exit_code == 0, res.output
    return out, res.output, logs.lines


def test_output_folder_layout(run):
    out, output, _ = run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                 "metrics.jsonl", "loss.png", "val.jsonl", "train_args.json"):
        assert (out / name).is_file(), name
    assert not (out / "training_args.bin").exists()  # no pickle beside the model
    ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert "checkpoint-12" in ckpts and len(ckpts) <= 2  # best + last only
    val = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    assert len(val) == 4 and all(set(r) == {"instruction", "input", "output"} for r in val)
    assert "trained 12 steps" in output
    summary = metrics(out, "summary")[-1]
    assert (summary["train_examples"], summary["val_examples"], summary["dropped_truncated_train"]) == (16, 4, 0)
    assert json.loads((out / "train_args.json").read_text())["max_steps"] == 12


def test_loss_falls_and_validation_is_logged(run):
    out, _, _ = run
    losses = [r["loss"] for r in metrics(out, "train")]
    assert [r["step"] for r in metrics(out, "train")] == list(range(1, 13))
    assert losses[-1] < 0.6 * losses[0]  # random init: about ln(vocab) = 6.4
    evals = metrics(out, "eval")
    assert [r["step"] for r in evals] == [4, 8, 12] and evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert all(r["tokens_per_s"] and r["tokens_per_s"] > 0 for r in metrics(out, "train"))


def test_every_parameter_changes(setup, run):
    _, base, _ = setup
    out, _, _ = run
    before, after = load_file(base / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys() and len(before) > 10
    unchanged = [k for k in before if torch.equal(before[k].to(after[k].dtype), after[k])]  # saved in bf16 or fp32
    assert unchanged == []


def test_saved_model_reloads_and_generates(run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, train_logs = run
    # the tied lm_head is stored once (under the embeddings): neither the best-model reload at the end
    # of training nor a later from_pretrained may call it missing
    assert not [line for line in train_logs if "missing" in line.lower()], train_logs
    with Records() as logs:
        model = AutoModelForCausalLM.from_pretrained(out)
    assert not [line for line in logs.lines if "missing" in line.lower() or "lm_head" in line], logs.lines
    tok = AutoTokenizer.from_pretrained(out)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()  # tied, as trained
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    ids = tok("### Instruction:\nRepeat the word apple 2 times.", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert gen.shape[1] > ids["input_ids"].shape[1]
    assert model.generation_config.eos_token_id == tok.eos_token_id == 1


class Crash(Exception):
    pass


def test_resume_continues_the_same_run(setup, run):
    from transformers import TrainerCallback

    class CrashAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if state.global_step == 6:
                raise Crash()

    root, base, data = setup
    out = root / "resumed"
    cli = ["train", "--data", str(data), "--model", str(base), "--out", str(out), *ARGS]
    opts = TrainOptions(**main.commands["train"].make_context("train", cli[1:]).params)  # the CLI's own parsing
    with pytest.raises(Crash):
        train(opts, callbacks=[CrashAt()])
    assert (out / "checkpoints" / "checkpoint-4").is_dir() and not (out / "model.safetensors").exists()
    assert max(r["step"] for r in metrics(out, "train")) == 5

    res = CliRunner().invoke(main, cli)  # without --resume: refuses the non-empty folder
    assert res.exit_code == 2 and "not empty" in res.output
    res = CliRunner().invoke(main, [*cli, "--resume", "--lr", "5e-2"])
    assert res.exit_code == 2 and "different lr" in res.output
    with Records() as logs:
        res = CliRunner().invoke(main, [*cli, "--resume"])
    assert res.exit_code == 0, res.output
    assert not [line for line in logs.lines if "missing" in line.lower()], logs.lines
    assert "resuming from" in res.output and "checkpoint-4" in res.output
    state = json.loads((out / "checkpoints" / "checkpoint-12" / "trainer_state.json").read_text())
    assert state["global_step"] == 12
    resumed, straight = metrics(out, "train"), metrics(run[0], "train")
    assert [r["step"] for r in resumed] == list(range(1, 13))  # the journal continues, no duplicates
    # same data order and LR schedule as the uninterrupted run
    assert [r["lr"] for r in resumed] == pytest.approx([r["lr"] for r in straight], rel=1e-6)
    assert [r["loss"] for r in resumed] == pytest.approx([r["loss"] for r in straight], rel=1e-4)


def test_bad_data_fails_before_any_model_loads(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ROWS[0]) + "\n" + json.dumps(ROWS[1]) + "\n" + '{"instruction": "x"}\n')
    res = CliRunner().invoke(main, ["train", "--data", str(bad), "--model", str(tmp_path / "no-such-model"),
                                    "--out", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1] == f"error: {bad}:3: missing field 'output'"
    assert not (tmp_path / "out").exists()
    broken = tmp_path / "broken.json"
    broken.write_text('[\n{"instruction": "a", "output": "b"},\n{"instruction": oops},\n{"instruction": "c"}\n]\n')
    res = CliRunner().invoke(main, ["train", "--data", str(broken), "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and f"{broken}:3: invalid JSON" in res.output


def test_chat_template_refused_when_the_model_has_none(setup, tmp_path):
    _, _, data = setup
    base = make_tiny_model_dir(tmp_path / "nochat", chat_template=False)
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base),
                                    "--out", str(tmp_path / "out"), "--template", "chat"])
    assert res.exit_code == 2 and "no chat template" in res.output
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_no_packing_pads_length_grouped_batches(setup, tmp_path):
    root, base, data = setup
    out = tmp_path / "padded"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                    "--no-packing", "--max-steps", "2", "--batch-size", "4", "--val-fraction", "0",
                                    "--logging-steps", "1"])
    assert res.exit_code == 0, res.output
    assert [r["step"] for r in metrics(out, "train")] == [1, 2]
    summary = metrics(out, "summary")[-1]
    assert summary["val_examples"] == 0 and summary["best_eval_loss"] is None
    assert (out / "model.safetensors").is_file() and (out / "val.jsonl").read_text() == ""


def test_max_batch_tokens_batches_by_tokens(setup, tmp_path):
    root, base, data = setup
    out = tmp_path / "tokens"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                    "--max-batch-tokens", "120", "--epochs", "1", "--val-fraction", "0.2",
                                    "--logging-steps", "1", "--seed", "1", "--eval-steps", "100"])
    assert res.exit_code == 0, res.output
    assert "batches: up to 120 tokens" in res.output and "loss: chunked LM head" in res.output
    summary = metrics(out, "summary")[-1]
    # one optimizer step per token-budget batch: 16 examples of ~30 tokens, at most 120 tokens a batch
    from transformers import AutoTokenizer

    from selfinstruct.data.sources import load_rows
    from selfinstruct.training.examples import encode_rows, split_rows

    tok = AutoTokenizer.from_pretrained(base)
    train_rows, _ = split_rows(load_rows(data), 0.2, 1)
    lengths = [len(e["input_ids"]) for e in encode_rows(train_rows, tok)[0]]
    batches = token_batches(lengths, 120, seed=1)
    assert summary["step"] == len(batches) and 4 <= len(batches) < 16
    assert all(sum(lengths[i] for i in b) <= 120 for b in batches)
    assert json.loads((out / "train_args.json").read_text())["max_batch_tokens"] == 120
    tokens = [r["tokens"] for r in metrics(out, "train")]
    assert tokens[-1] == sum(lengths)  # every example seen once


def test_report_to_tensorboard(setup, tmp_path):
    pytest.importorskip("tensorboard")
    root, base, data = setup
    out = tmp_path / "tb"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                    "--max-steps", "2", "--batch-size", "4", "--val-fraction", "0",
                                    "--logging-steps", "1", "--report-to", "tensorboard"])
    assert res.exit_code == 0, res.output
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(tmp_path / "no-model"),
                                    "--out", str(tmp_path / "x"), "--report-to", "bogus"])
    assert res.exit_code == 2 and "unknown integration 'bogus'" in res.output and not (tmp_path / "x").exists()


def test_warnings_for_data_too_small_to_learn_from():
    from selfinstruct.training.train import MIN_ROWS, overfit_warning, small_data_warning

    assert small_data_warning(MIN_ROWS) is None and "only 2 training examples" in small_data_warning(2)
    memorised = [{"loss": 2.0}, {"eval_loss": 1.5}, {"loss": 0.01}, {"eval_loss": 1.9}]
    assert "memorised" in overfit_warning(memorised)
    assert overfit_warning([{"loss": 2.0}, {"eval_loss": 1.5}, {"loss": 0.5}, {"eval_loss": 1.9}]) is None
    assert overfit_warning([{"loss": 2.0}, {"eval_loss": 1.5}, {"loss": 0.01}, {"eval_loss": 1.4}]) is None
    assert overfit_warning([{"loss": 0.01}, {"eval_loss": 1.4}]) is None


@pytest.mark.parametrize("native_bf16, forced, bf16", [(True, None, True), (False, None, False),
                                                        (True, "float32", False)])
def test_cpu_settings_use_bf16_only_where_the_cpu_computes_it(monkeypatch, native_bf16, forced, bf16):
    import selfinstruct.models as models
    from selfinstruct.training.train import device_settings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: native_bf16)
    if forced:
        monkeypatch.setenv("SELFINSTRUCT_DTYPE", forced)
    else:
        monkeypatch.delenv("SELFINSTRUCT_DTYPE", raising=False)
    dev = device_settings()
    assert dev["bf16"] is bf16 and dev["optim"] == "adamw_torch_fused" and not dev["cuda"]
    args = training_arguments(TrainOptions(data="d", out="o"), dev, has_val=True)  # accepted on CPU
    assert args.bf16 is bf16 and args.use_cpu


def test_a_disk_too_small_for_a_checkpoint_is_refused_before_the_model_loads(setup, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from transformers import AutoModelForCausalLM

    from selfinstruct.training.sft import disk_needed, parameter_count

    root, base, data = setup
    n = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(base).parameters())
    assert parameter_count(base) == n and parameter_count(tmp_path / "no-model") is None
    least, full = disk_needed(n)
    usage = namedtuple("usage", "total used free")
    out = tmp_path / "run"
    cli = ["train", "--data", str(data), "--model", str(base), "--out", str(out), *ARGS]

    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 * full, 0, least - 1))
    def loads(*a, **k):
        raise RuntimeError("model loaded")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", loads)
    res = CliRunner().invoke(main, cli)
    assert res.exit_code == 2 and res.output.startswith(f"error: {out}: ") and "free on its disk" in res.output
    assert len(res.output.strip().splitlines()) == 1 and not out.exists()

    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 * full, 0, full - 1))
    res = CliRunner().invoke(main, cli)  # enough for one checkpoint: a warning, then the run (the model loads)
    assert "can hold up to" in res.output and "model loaded" in str(res.exception)


def test_saved_tokenizer_carries_the_alpaca_prompt_it_was_trained_with(run):
    """apply_chat_template (and vLLM's chat endpoint) on the tuned model's own tokenizer gives the
    training prompt: the same text (BOS included, as the tokenizer adds it) and the same token ids."""
    from transformers import AutoTokenizer

    from selfinstruct.data.formatting import alpaca_prompt
    from selfinstruct.training.examples import encode_example

    out, _, _ = run
    tok = AutoTokenizer.from_pretrained(out)
    for instruction, inp in [("Repeat the word apple 2 times.", ""), ("Translate it.", "Hello, how are you?")]:
        user = {"role": "user", "content": instruction, **({"input": inp} if inp else {})}
        prompt = alpaca_prompt(instruction, inp)
        text = tok.apply_chat_template([user], tokenize=False, add_generation_prompt=True)
        assert text == tok.bos_token + prompt
        trained = encode_example(prompt, "apple apple", tok, 1024)["input_ids"]
        ids = tok.apply_chat_template([user, {"role": "assistant", "content": "apple apple"}], tokenize=True,
                                      return_dict=True)["input_ids"]
        assert ids == trained and tok.decode(ids) == text + "apple apple" + tok.eos_token
    assert tok.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi."}],
                                   tokenize=False) == tok.bos_token + alpaca_prompt("Hi.")


def _tiny_run(setup, tmp_path, monkeypatch, *extra):
    import selfinstruct.models as models

    _, base, data = setup
    monkeypatch.setattr(models, "cpu_has_bf16", lambda: True)  # train in bf16 autocast on any CPU
    monkeypatch.delenv("SELFINSTRUCT_DTYPE", raising=False)
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(base), "--out", str(out),
                                    "--max-steps", "4", "--batch-size", "4", "--eval-steps", "1",
                                    "--logging-steps", "1", *extra])
    assert res.exit_code == 0, res.output
    return out


@pytest.mark.parametrize("extra, dtype", [((), torch.bfloat16), (("--save-dtype", "float32"), torch.float32)])
def test_final_model_saved_in_bf16_where_trained_in_bf16(setup, tmp_path, monkeypatch, extra, dtype):
    from transformers import AutoModelForCausalLM

    _, base, _ = setup
    out = _tiny_run(setup, tmp_path, monkeypatch, "--val-fraction", "0", *extra)
    weights = load_file(out / "model.safetensors")
    assert {v.dtype for v in weights.values()} == {dtype}
    ratio = (out / "model.safetensors").stat().st_size / (base / "model.safetensors").stat().st_size
    assert ratio == pytest.approx(0.5 if dtype == torch.bfloat16 else 1.0, rel=0.05)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == dtype and model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert model.generate(torch.tensor([[2, 5, 6]]), max_new_tokens=3, do_sample=False).shape[1] > 3


@pytest.mark.parametrize("limit, kept", [("1", 1), ("0", 4)])
def test_save_total_limit_bounds_the_checkpoints(setup, tmp_path, monkeypatch, limit, kept):
    out = _tiny_run(setup, tmp_path, monkeypatch, "--val-fraction", "0", "--save-total-limit", limit)
    assert len(list((out / "checkpoints").iterdir())) == kept
    assert json.loads((out / "train_args.json").read_text())["save_total_limit"] == int(limit)



@pytest.fixture(scope="module")
def lora_run(setup):
    """--lora 8 on the tiny model with its embeddings scaled up (at init their logits are too small for
    adapters on the linear layers to move the loss much; the embeddings stay frozen under LoRA)."""
    pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, base, data = setup
    big = root / "lora-base"
    model = AutoModelForCausalLM.from_pretrained(base)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(25)
    model.save_pretrained(big)
    AutoTokenizer.from_pretrained(base).save_pretrained(big)
    out = root / "lora"
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(big), "--out", str(out), *ARGS,
                                    "--lora", "8", "--lr", "5e-2", "--save-dtype", "float32"])
    assert res.exit_code == 0, res.output
    return big, out, res.output


def test_lora_trains_adapters_on_the_same_examples_and_lowers_the_loss(lora_run, run):
    big, out, output = lora_run
    assert "LoRA: " in output and "trainable parameters" in output
    assert metrics(out, "data") == metrics(run[0], "data")   # the same examples, tokens and masked tokens
    evals = metrics(out, "eval")
    assert evals[-1]["eval_loss"] < 0.9 * evals[0]["eval_loss"]
    ckpt = next((out / "checkpoints").iterdir())               # checkpoints hold the adapter, not the model
    assert (ckpt / "adapter_model.safetensors").is_file() and not (ckpt / "model.safetensors").exists()
    assert json.loads((out / "train_args.json").read_text())["lora"] == 8


def test_lora_saves_a_merged_model_that_reloads_in_transformers(lora_run, setup):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from selfinstruct.training.examples import encode_rows

    big, out, _ = lora_run
    before, merged = load_file(big / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == merged.keys() and not [k for k in merged if "lora" in k]
    assert torch.equal(before["model.embed_tokens.weight"], merged["model.embed_tokens.weight"])  # frozen
    changed = [k for k in before if not torch.equal(before[k], merged[k])]
    assert changed and all(k.endswith("proj.weight") for k in changed)      # only the adapted linear layers
    with Records() as logs:
        model = AutoModelForCausalLM.from_pretrained(out)
    assert not [line for line in logs.lines if "missing" in line.lower() or "unexpected" in line.lower()]
    assert (out / "adapter" / "adapter_config.json").is_file()
    # the trained adapter changes the loss: the merged model's on a training row is below the base's
    ex = encode_rows(ROWS, AutoTokenizer.from_pretrained(out))[0][0]
    batch = {"input_ids": torch.tensor([ex["input_ids"]]), "labels": torch.tensor([ex["labels"]])}
    with torch.no_grad():
        losses = [AutoModelForCausalLM.from_pretrained(big)(**batch).loss.item(), model(**batch).loss.item()]
    assert losses[1] < 0.9 * losses[0], losses
    assert model.generate(torch.tensor([[2, 5, 6]]), max_new_tokens=3, do_sample=False).shape[1] > 3


def test_lora_without_peft_is_one_line_before_any_model_loads(setup, tmp_path, monkeypatch):
    import importlib.util

    _, base, data = setup
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "peft" else real(name, *a))
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(tmp_path / "no-model"),
                                    "--out", str(tmp_path / "o"), "--lora", "8"])
    assert res.exit_code == 2 and "pip install 'selfinstruct[lora]'" in res.output and not (tmp_path / "o").exists()


@pytest.mark.parametrize("eval_steps,save_steps,ok", [("10", "15", False), ("0.1", "5", False), ("0.1", "0.25", False),
                                                      ("10", "20", True), ("0.1", "0.3", True)])
def test_save_steps_that_miss_the_evaluations_are_one_line_before_any_model_loads(eval_steps, save_steps, ok,
                                                                                   setup, tmp_path):
    """The best checkpoint needs every save on an evaluation; transformers says so in a traceback after loading."""
    from selfinstruct.training.train import steps_error

    assert (steps_error(float(eval_steps), float(save_steps), 0.1) is None) == ok
    assert steps_error(float(eval_steps), float(save_steps), 0.0) is None  # no validation: no best checkpoint
    if ok:
        return
    _, _, data = setup
    res = CliRunner().invoke(main, ["train", "--data", str(data), "--model", str(tmp_path / "no-model"),
                                    "--out", str(tmp_path / "o"), "--eval-steps", eval_steps,
                                    "--save-steps", save_steps, "--val-fraction", "0.1"])
    assert res.exit_code == 2 and "Traceback" not in res.output, res.output
    assert res.output.strip() == f"error: --save-steps: {save_steps} is not a multiple of --eval-steps {eval_steps} " \
        "(both step counts or both fractions): the best checkpoint needs every save on an evaluation"
    assert not (tmp_path / "o").exists()
