"""Generation: grow tasks from seed tasks with a teacher (the Self-Instruct bootstrap loop).

Entry points: ``bootstrap.run`` (the loop behind `selfinstruct generate`), ``budget.dry_run_lines``
(`--dry-run`), ``answer.answer_file`` (`selfinstruct answer`: a trained model, the student, writes rows'
outputs anew), ``report.write_report`` (`selfinstruct report`: a run or any data file).

``prompts`` builds the teacher's prompts from package templates, ``parsing`` reads its answers,
``screen`` drops bad or near-duplicate candidates, ``instances`` asks for each kept task's examples,
``journal`` owns the run folder's files (so a run resumes after a crash), ``resume`` gives a resumed run
the options it was started with, and ``budget`` counts tokens and cost. It reads and writes through ``data``
and talks to a teacher through ``teachers``.
"""
