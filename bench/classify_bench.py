"""How well does a teacher tell classification tasks apart? Scored on the seed tasks' own labels.

    python bench/classify_bench.py [--seeds FILE] [--teacher embedded] [--template NAME=FILE ...]

Every seed task (the 175 packaged ones, or ``--seeds``, each labelled
``is_classification`` by hand) goes through generate's classification prompt,
greedy, as in a run. Prints the confusion counts, accuracy and balanced accuracy
per template (the packaged ``classify.txt`` when none is given), and for the
cue-word rule that ``--classify rules`` uses (``filters.looks_like_classification``). A task the teacher wrongly calls a
classification task gets the output-first instance prompt, whose answers are
one-word labels, so false positives shorten the training outputs. The seeds are
not eval data (the packaged eval set is decontaminated against them).
"""
from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from selfinstruct import prompts as P  # noqa: E402
from selfinstruct.data.filters import looks_like_classification  # noqa: E402
from selfinstruct.generation.bootstrap import CLASSIFY_TOKENS  # noqa: E402
from selfinstruct.generation.parsing import parse_yes_no  # noqa: E402
from selfinstruct.data.seeds import load_seeds  # noqa: E402
from selfinstruct.teachers import make_teacher  # noqa: E402


def score(truth: list[bool], said: list[bool]) -> dict:
    tp = sum(t and s for t, s in zip(truth, said))
    fp = sum(s and not t for t, s in zip(truth, said))
    fn = sum(t and not s for t, s in zip(truth, said))
    tn = len(truth) - tp - fp - fn
    tpr, tnr = tp / max(1, tp + fn), tn / max(1, tn + fp)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "said_yes": round((tp + fp) / len(truth), 2),
            "accuracy": round((tp + tn) / len(truth), 3), "balanced_accuracy": round((tpr + tnr) / 2, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default=None, help="labelled seed tasks (default: the packaged 175)")
    ap.add_argument("--teacher", default="embedded")
    ap.add_argument("--template", action="append", default=[], help="NAME=FILE: a classify template to compare")
    args = ap.parse_args()
    seeds = load_seeds(args.seeds)
    truth = [bool(t["is_classification"]) for t in seeds]
    said = [looks_like_classification(t["instruction"]) for t in seeds]
    print(json.dumps({"template": "cue-word rule", "seeds": len(seeds), "classification_seeds": sum(truth),
                      **score(truth, said)}), flush=True)
    teacher = make_teacher(args.teacher, log=print)
    original = P.template
    for name, text in [("packaged", None)] + [(s.split("=", 1)[0], open(s.split("=", 1)[1]).read())
                                              for s in args.template]:
        P.template = original if text is None else (lambda n, t=text: t if n == "classify" else original(n))
        prompts = [P.classify_prompt(t["instruction"], chat=teacher.is_chat) for t in seeds]
        P.template = original
        outs = teacher.complete(prompts, max_tokens=CLASSIFY_TOKENS, temperature=0.0,
                                stop=None if teacher.is_chat else ["\n"])
        said = [parse_yes_no(o.text) for o in outs]
        print(json.dumps({"template": name, "teacher": teacher.name, "seeds": len(seeds),
                          "classification_seeds": sum(truth), **score(truth, said),
                          "load": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
