"""compare_arms.py WORK A B [C ...]: each arm's ROUGE-L against A's, paired, on each development set and on both
together, from the eval folders bench/teach_arms.sh writes (WORK/ARM/eval_paper_seeds, WORK/ARM/eval_user252)."""
import json
import sys
from pathlib import Path

from selfinstruct.evaluation.stats import headline, paired_comparison

SETS = ("paper_seeds", "user252")


def scores(work: Path, arm: str, dev: str) -> list[float]:
    rows = [json.loads(line) for line in open(work / arm / f"eval_{dev}" / "results.jsonl", encoding="utf-8")]
    return [r["rouge_l"] for r in sorted(rows, key=lambda r: r["row"])]


def main(argv: list[str]) -> None:
    work, first, others = Path(argv[0]), argv[1], argv[2:]
    for arm in others:
        both_a, both_b = [], []
        for dev in SETS:
            a, b = scores(work, first, dev), scores(work, arm, dev)
            both_a += a
            both_b += b
            print(f"{dev:12s} {headline(first, arm, paired_comparison(a, b))}")
        print(f"{'both':12s} {headline(first, arm, paired_comparison(both_a, both_b))}")


if __name__ == "__main__":
    main(sys.argv[1:])
