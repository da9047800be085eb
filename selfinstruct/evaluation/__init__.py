"""Evaluation: does the tuned model answer held-out instructions better than its base?

Entry point: ``evaluate.run_eval`` (`selfinstruct eval`). ``metrics`` scores answers (ROUGE-L, exact
match, echo and runaway flags), ``stats`` gives paired bootstrap intervals, ``judge`` asks a teacher
for pairwise verdicts, and ``report`` writes the Markdown and HTML reports.
"""
