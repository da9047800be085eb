"""report.md / report.html from hand-made scores: the lead lines, the collapse line, ties left out of the examples."""
from selfinstruct.evaluation.metrics import compare_models, pick_examples, summarize
from selfinstruct.evaluation.report import render_html, render_markdown


def scored_rows(answers, scores, **flags):
    return [{"answer": a, "raw": a, "rouge_l": s, "exact_match": None, "empty": not a.strip(),
             "echo": flags.get("echo", False), "runaway": False, "words": len(a.split()), "new_tokens": 3}
            for a, s in zip(answers, scores)]


def make_report(base_answers, base_scores, tuned_answers, tuned_scores, k=3):
    n = len(base_answers)
    rows = [{"instruction": f"Task {i} <script>alert({i})</script>", "input": "", "output": f"reference {i}"}
            for i in range(n)]
    names = ["embedded", "tuned"]
    scored = {"embedded": scored_rows(base_answers, base_scores), "tuned": scored_rows(tuned_answers, tuned_scores)}
    refs = [r["output"] for r in rows]
    summary = {"data": "d.jsonl", "rows": n, "limit": None, "seed": 0, "template": "alpaca", "max_new_tokens": 8,
               "temperature": 0.0, "models": names,
               "metrics": {m: {**summarize(scored[m], refs), "seconds": 1.0} for m in names},
               "comparisons": compare_models(names, scored, seed=0)}
    best, worst = pick_examples([s["rouge_l"] for s in scored["embedded"]],
                                [s["rouge_l"] for s in scored["tuned"]], k)
    return (summary, render_markdown(summary, rows, scored, best, worst),
            render_html(summary, rows, scored, best, worst))


def test_report_leads_with_the_comparison_and_names_a_collapse():
    n = 20
    base = [""] + [f"base answer {i}" for i in range(1, n)]
    tuned = ["Thank you"] * n                      # the demo's collapse: one answer for every prompt
    base_scores = [0.2] * 10 + [0.0] * 10
    tuned_scores = [0.0] * 10 + [0.0] * 8 + [0.5, 0.4]   # 10 losses, 8 ties, 2 wins
    summary, md, page = make_report(base, base_scores, tuned, tuned_scores)
    c = summary["comparisons"][0]
    assert (c["wins"], c["ties"], c["losses"]) == (2, 8, 10)
    assert (c["empty_a"], c["empty_b"], c["echo_b"], c["runaway_b"]) == (0.05, 0.0, 0.0, 0.0)
    assert c["headline"].startswith(
        "tuned is not clearly different from embedded: ROUGE-L 0.045 vs 0.100, -0.055 [95% CI ")
    assert c["headline"].endswith(", 2 wins / 8 ties / 10 losses")
    lines = md.splitlines()
    assert lines[0] == "# Eval report"
    assert lines[2] == f"**{c['headline']}**  "
    assert lines[3] == "Empty / echoing / runaway answers: embedded 5.0% / 0.0% / 0.0%; tuned 0.0% / 0.0% / 0.0%."
    assert lines[5] == ("**COLLAPSE: tuned gives the same answer to 100.0% of rows, 5.0 distinct answers per 100 "
                        "rows. Its most common answer:** ` Thank you `")
    assert summary["metrics"]["tuned"]["collapse"] and not summary["metrics"]["embedded"]["collapse"]
    assert "8 of 20 rows tie (tuned and embedded have equal ROUGE-L); the examples below show only rows that differ" in md
    assert md.count("### Row ") == 2 + 3           # the 2 gains, the 3 largest losses; no tie
    assert "ROUGE-L: embedded 0.000, tuned 0.000" not in md
    body = page.split("<body>")[1]
    lead, collapse = '<p class="lead">tuned is not clearly different', '<p class="collapse">COLLAPSE: tuned'
    assert body.index(lead) < body.index(collapse)
    assert body.index('<p class="collapse">') < body.index("<h2>")
    assert "<script>" not in page and "&lt;script&gt;alert(18)&lt;/script&gt;" in page


def test_all_ties_show_no_example_rows_and_say_so():
    n = 12
    answers = [f"a{i}" for i in range(n)]
    summary, md, page = make_report(answers, [0.0] * n, answers, [0.0] * n)
    assert summary["comparisons"][0]["headline"] == (
        "tuned is not clearly different from embedded: ROUGE-L 0.000 vs 0.000, +0.000 [95% CI +0.000, +0.000], "
        "0 wins / 12 ties / 0 losses")
    assert "12 of 12 rows tie" in md and "### Row" not in md and "Largest ROUGE-L" not in md
    assert "COLLAPSE" not in md and "COLLAPSE" not in page


def test_one_model_report_leads_with_its_score():
    rows = [{"instruction": "q", "input": "", "output": "r"}] * 3
    scored = {"m": scored_rows(["r", "x", ""], [1.0, 0.0, 0.0])}
    summary = {"data": "d", "rows": 3, "limit": None, "seed": 0, "template": "alpaca", "max_new_tokens": 8,
               "temperature": 0.0, "models": ["m"], "metrics": {"m": summarize(scored["m"])}, "comparisons": []}
    md = render_markdown(summary, rows, scored, [0], [2])
    assert md.splitlines()[2] == "**m: ROUGE-L 0.333 over 3 rows**  "
    assert md.splitlines()[3] == "Empty / echoing / runaway answers: m 33.3% / 0.0% / 0.0%."
    assert "rows tie" not in md
