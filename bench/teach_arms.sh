#!/bin/bash
# Issue 24's arms on the development sets (docs/benchmarks.md, "Generated rows that teach" and after):
# each trains the embedded base with the demo's settings and scores it on the Self-Instruct paper's 175 seed
# tasks and its 252 user-oriented tasks (first instance each, built from ../shared/data; measurement only).
#   bench/teach_arms.sh DEV_DIR WORK_DIR   (from the repository root; DEV_DIR gets paper_seeds.jsonl and user252.jsonl)
# Then: python bench/compare_arms.py WORK_DIR seeds sg1 sg1s ...   (each arm against the first)
# About 16 minutes an arm on an idle 2-core CPU; run nothing else beside it.
set -e
export HF_HUB_OFFLINE=1
DEV=$1; W=$2
mkdir -p $DEV $W
for pair in paper_seeds:self_instruct_seed_tasks user252:user_oriented_instructions; do  # first instance each
  [ -f $DEV/${pair%%:*}.jsonl ] || python3 -c "
import json
for line in open('../shared/data/${pair#*:}.jsonl'):
    t = json.loads(line); i = t['instances'][0]
    print(json.dumps({'instruction': t['instruction'], 'input': i['input'], 'output': i['output']}))" > $DEV/${pair%%:*}.jsonl
done
arm() {  # arm NAME DATA: train, then eval on both development sets (greedy, 128 new tokens)
  [ -d $W/$1/model ] || selfinstruct train --data "$2" --model embedded --out $W/$1/model --max-steps 36 \
    --batch-size 8 --lr 5e-5 --max-length 256 --val-fraction 0.1 --eval-steps 0.5 --logging-steps 5
  for d in paper_seeds user252; do
    [ -d $W/$1/eval_$d ] || selfinstruct eval --model $W/$1/model --data $DEV/$d.jsonl --out $W/$1/eval_$d \
      --max-new-tokens 128 --batch-size 50
  done
}
only() {  # only SEED(true|false) IN OUT: the seed rows of a filtered file, or the generated ones
  python3 -c "import json,sys; [print(l, end='') for l in open('$2') if bool(json.loads(l).get('seed')) == $1]" > "$3"
}
# G1: the generated rows; seeds: the packaged seed tasks alone
[ -d $W/gen ] || selfinstruct generate --teacher embedded --rounds 2 --prompts-per-round 16 --max-tokens 256 --out $W/gen
selfinstruct filter $W/gen/data.jsonl --out $W/sg1.jsonl --include-seeds packaged --decontaminate packaged --no-progress
only True $W/sg1.jsonl $W/seeds.jsonl; only False $W/sg1.jsonl $W/g1.jsonl
arm seeds $W/seeds.jsonl
arm sg1 $W/sg1.jsonl                       # target 1, the teacher's answers
arm g1 $W/g1.jsonl                         # target 2, the teacher's answers
# the student as the next teacher: S (the seeds arm) answers G1 anew
[ -f $W/g1s.jsonl ] || selfinstruct answer $W/g1.jsonl --model $W/seeds/model --out $W/g1s.jsonl --batch-size 50
selfinstruct filter $W/g1s.jsonl --out $W/sg1s.jsonl --include-seeds packaged --decontaminate packaged --no-progress
arm sg1s $W/sg1s.jsonl
# selection with S as the pre-experienced scorer, then both
[ -f $W/g1sel.jsonl ] || selfinstruct select $W/g1.jsonl --model $W/seeds/model --keep-fraction 0.5 --out $W/g1sel.jsonl
selfinstruct filter $W/g1sel.jsonl --out $W/sg1sel.jsonl --include-seeds packaged --decontaminate packaged --no-progress
arm sg1sel $W/sg1sel.jsonl
[ -f $W/g1selans.jsonl ] || selfinstruct answer $W/g1sel.jsonl --model $W/seeds/model --out $W/g1selans.jsonl --batch-size 50
selfinstruct filter $W/g1selans.jsonl --out $W/sg1selans.jsonl --include-seeds packaged --decontaminate packaged --no-progress
arm sg1selans $W/sg1selans.jsonl
