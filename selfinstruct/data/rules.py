"""Reader rules: what a person reading generated rows rejects at a glance (issue 24).

Small pure functions, each True when its rule fires; ``filters.instruction_reason`` and
``filters.instance_reason`` turn them into reasons, so that ``generate``'s screen, its instance
cleaning and ``filter`` all apply them. Each rule's false rejects on human-written rows are
measured by ``bench/rules_bench.py`` (docs/benchmarks.md, "reader rules").

- ``scaffolding``: the instruction carries the prompt's own frame ("... Write the 12th task.",
  "Task 12:", "Example 1", "Input:", "Come up with a series of tasks").
- ``program_task`` widens the paper's "Write a program" rule to "Write a Java program ..."
  (a language or an adjective between "a" and "program").
- ``no_code``: a task that asks for code (a program, function, script, query, regex) answered
  with no code at all ("Write a Java program that ..." -> "$105.82").
- ``not_a_task``: an instruction that asks nothing: no question mark, no clause that opens with
  a verb of command, no request word ("The sky is blue.").
- ``unrelated_output``: an answer that talks about itself under a task that invites no voice
  ("Write a Java program to ask the user ..." -> "I have spent 10 years in a row.").
- ``output_echoes_instruction``: a short instruction answered only with its own words ("The owner
  was cleaning ... Write the 12th task." -> "The owner was a danger to her children and animals.").
"""
from __future__ import annotations

import re

_SCAFFOLDING = re.compile(
    r"\b(?:write|generate|create|give|make|here is|here are)\s+(?:the\s+|a\s+|an\s+)?"
    r"(?:\d+(?:st|nd|rd|th)|next)\s+(?:task|instruction)s?\s*(?:[.:!]|$)"
    r"|(?:^|\n|[.!?]\s+)(?:task|instruction|example)\s*#?\s*\d+\s*(?:[:)]|\.(?!\d))"
    r"|\bcome up with a (?:series|list) of (?:tasks|instructions)\b"
    r"|\b(?:input|output)\s*:|(?:^|\n|[.!?]\s+)(?:instruction|task)\s*:"
    r"|\n\s*\d+\s*[.)]\s+(?:instruction|task)\b", re.IGNORECASE)


def scaffolding(instruction: str) -> bool:
    """Does the instruction carry the generation prompt's own frame? ("Write the 12th task.", a
    sentence that opens with "Task 12:", "Example 1." or "Instruction:", "Input:" or "Output:" anywhere,
    "Come up with a series of tasks", a numbered "10. Instruction" line)."""
    return bool(_SCAFFOLDING.search(instruction))


_PROGRAM = re.compile(r"\s*write\s+an?\s+(?:[\w+#-]+\s+){0,3}?program\b", re.IGNORECASE)


def program_task(instruction: str) -> bool:
    """The paper's "Write a program" rule, with up to three words between "a" and "program"
    ("Write a Java program", "Write a simple C++ program")."""
    return bool(_PROGRAM.match(instruction))


# a verb that opens a sentence or clause, up to three words, then a kind of code ("In Rust, write a function")
_ASKS_CODE = re.compile(
    r"(?:^|[.!?:;,\n]|\bplease\b|\band\b|\bthen\b)\s*"
    r"(?:write|create|implement|generate|develop|design|construct|compose|code|make|give)\s+"
    r"(?:an?\s+|the\s+|some\s+)?(?:[\w+#-]+\s+){0,3}?"
    r"(?:(?:program|function|script|snippet|subroutine|regex|regular expression|query|class|method)s?\b"
    r"(?!\s+names?\b)|code\s+(?:to|that|which|for|in)\b)", re.IGNORECASE)
# something no prose answer has: brackets, an operator, a statement end, an indented line, a keyword call
_CODE = re.compile(r"[(){}\[\];=<>\\^|]|\n[ \t]+\S|\b(?:def|return|print|import|function|SELECT)\b")


def asks_for_code(instruction: str) -> bool:
    """Does the instruction ask for code (a program, function, script, query, regex)?"""
    return bool(_ASKS_CODE.search(instruction))


def no_code(instruction: str, output: str) -> bool:
    """A task that asks for code whose answer has none of code's marks."""
    return asks_for_code(instruction) and not _CODE.search(output)


# verbs that open an order ("Write ...", "In Rust, write ..."), and words by which a sentence asks
_COMMANDS = frozenset("""
adapt add adjust advise alphabetize alter analyse analyze annotate answer apply approximate arrange ask
assemble assess assign assume brainstorm break bring build calculate capitalize categorise categorize change
check choose cite classify clean combine come compare compile complete compose compute condense conjugate
connect consider construct continue convert correct count craft create critique cross curate cut decide decode
deduce define delete derive describe design detect determine develop devise diagnose discover discuss
distinguish divide do draft edit elaborate eliminate encode enter enumerate estimate evaluate examine expand
explain explore express extract fill find finish fix flag format formulate frame generate get give group guess
help highlight identify illustrate imagine implement improve include indicate infer insert interpret invent
justify label let link list locate look make map mark match measure mention merge modify multiply name note
obtain order organise organize outline output paraphrase parse perform pick plan point predict prepare present
pretend produce propose prove provide pull put rank rate re-word re-write react read rearrange recommend
recount reduce refactor reformat relate remove rename render reorder rephrase replace reply report represent
research resolve respond restate retell retrieve return reverse review revise reword rewrite round say
schedule score scramble select separate share show simplify sketch solve sort specify spell split state
suggest summarise summarize supply suppose swap take teach tell think transcribe transform translate try turn
underline use verify vote write
""".split())
_ASKS = re.compile(
    r"\?|\b(?:please|you|your|yourself|let's|help me|i (?:want|need|would like|wish)|i'd like|can i|how do i|"
    r"how can i|tell me|show me|give me|should|must|needs? to|have to|has to)\b|:\s*$"
    r"|(?:^|[.!:;\n]\s*)(?:what|how|why|who|whom|whose|which|where|is|are|does|do|can|could|would|should)\b",
    re.IGNORECASE)
_CLAUSE = re.compile(r"(?:^|[.!:;,\n]|\band\b|\bthen\b)\s*[\"'(]*([a-z][\w'-]*)(?:\s+([a-z][\w'-]*))?",
                     re.IGNORECASE)   # a clause's first word, and its second (after an adverb: "Automatically correct")
# words that open a statement, never an order: pronouns, determiners, prepositions, conjunctions
_OPENERS = frozenset("""
a about according after although an another as at because before both during each every few for from he her
his i i'm i've i'd if in it it's its many most my no none on once one our several she since so some that the
their there these they this those though through under unlike until when whenever while with within without
yesterday today we we're
""".split())
_POSSESSIVE = re.compile(r"^[A-Z][a-z]+'s$")
# a subject of up to three words, then a finite "to be" or "to have": "Life is a short life, ..."
_SUBJECT_VERB = re.compile(r"\s*(?:[\w'-]+\s+){1,3}(?:is|are|was|were|has|have|had)\b", re.IGNORECASE)
_CLOSED = re.compile(r"[.!][\"'\u201d)]*\s*$")   # an unfinished sentence is a completion prompt
STATEMENT_MAX_WORDS = 40   # longer texts without a request are T0-style passages whose task is implied


def _command(word: str) -> bool:
    """Is ``word`` a verb of command, or its -ing form ("Converting 85 F to Celsius.")?"""
    w = word.lower()
    return w in _COMMANDS or (w.endswith("ing") and (w[:-3] in _COMMANDS or w[:-3] + "e" in _COMMANDS))


def not_a_task(instruction: str) -> bool:
    """An instruction that asks nothing: a finished statement of at most ``STATEMENT_MAX_WORDS``
    words that opens as a statement does (a pronoun, article, preposition, "Name's", or a subject of up
    to three words then is/are/was/has), with no
    question mark or question word at a sentence's start, no request word ("please", "you", "I want",
    "should"), no closing colon, and no sentence or clause that opens with a verb of command
    ("In Rust, write ...", "Given a list, sort ...")."""
    text = instruction.replace("\u2019", "'")
    words = text.split()
    first = words[0].strip("\"'(") if words else ""
    if not (first.lower() in _OPENERS or _POSSESSIVE.match(first) or _SUBJECT_VERB.match(text)):
        return False
    if len(words) > STATEMENT_MAX_WORDS or not _CLOSED.search(text) or _ASKS.search(text):
        return False
    return not any(_command(m[1]) or (m[1].lower().endswith("ly") and m[2] and _command(m[2]))
                   for m in _CLAUSE.finditer(text))


_STOP = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each etc few for from further get got had has have having
he her here hers herself him himself his how i if in into is it its itself just like make many may me might
more most much must my myself no nor not now of off on once one only or other our ours out over own same shall
she should so some such than that the their them then there these they this those through to too under until
up use used using very was way we were what when where which while who whom why will with would you your
""".split())
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_SELF_TALK = re.compile(r"\s*[\"']?(?:i|i'm|i've|i'd|i'll|my|we|we're|our|you're|you are)\b", re.IGNORECASE)


def content_words(text: str) -> set[str]:
    """Lowercased words of three letters or more, not stop words, cut to their first five letters
    (a crude stem: "programs", "programming" -> "progr")."""
    return {w[:5] for w in _WORD.findall(text.lower().replace("\u2019", "'"))
            if len(w) >= 3 and w not in _STOP and "'" not in w}


# a task that invites an answer in someone's voice: the writer's own words, or a text that may say "I"
_VOICE = re.compile(
    r"\b(?:i|i'm|i've|me|my|mine|we|us|our|you|your|yourself|example|sentence|phrase|question|joke|riddle|"
    r"story|review|poem|tweet|post|dialogue|conversation|letter|e-?mail|message|reply|speech|quote|slogan|"
    r"metaphor|simile|response|diary|monologue|lyrics|toast)s?\b", re.IGNORECASE)


def unrelated_output(instruction: str, input: str, output: str) -> bool:
    """An answer that talks about itself ("I ...", "My ...", "We ...", "You're ...") under a task that
    has no input and does not invite a voice: no "I", "my" or "you" in the instruction, and no
    sentence, story, review, letter, joke ... to write ("Write a Java program to ask the user ..." ->
    "I have spent 10 years in a row."). Sharing no content word (:func:`content_words`) is not required:
    measured, it spared no human-written row and let such answers through."""
    if input.strip():   # a translation or a rewrite speaks in its input's voice ("nous" -> "We ...")
        return False
    return bool(_SELF_TALK.match(output)) and not _VOICE.search(instruction.replace("\u2019", "'"))


ECHO_MAX_INSTRUCTION_WORDS = 60   # longer instructions carry their input (T0 passages), whose spans answer them


# a colon, quotes, a line break: it carries text; " or ": it names the choices its answer picks from
_EMBEDDED_INPUT = re.compile(r"[:\"\u201c\n]|(?<!\w)'|'(?!\w)|\sor\s", re.IGNORECASE)


def output_echoes_instruction(instruction: str, input: str, output: str) -> bool:
    """An answer of four words or more made only of its instruction's words, when the instruction is
    short (at most ``ECHO_MAX_INSTRUCTION_WORDS`` words), has no input and carries no text of its own
    (no colon, quote or line break) nor choices (" or "): the answer adds nothing ("The owner was ...
    a danger to her children and animals. Write the 12th task." -> "The owner was a danger to her
    children and animals.")."""
    if input.strip() or len(instruction.split()) > ECHO_MAX_INSTRUCTION_WORDS or _EMBEDDED_INPUT.search(instruction):
        return False
    words = _WORD.findall(output.lower().replace("\u2019", "'"))
    return len(words) >= 4 and set(words) <= set(_WORD.findall(instruction.lower().replace("\u2019", "'")))


# words by which an instruction points at an input it does not itself contain ("Summarize the following.")
_POINTER = re.compile(
    r"\b(the following|the given|the provided|the above"
    r"|(?:given|listed|shown|provided|text|sentence|passage|paragraph|code) below"
    r"|th(?:is|ese) (?:text|sentences?|passages?|paragraphs?|articles?|poems?|story|essay|emails?|code|snippet|"
    r"documents?|reviews?|tweets?|dialogue|conversation|excerpt|statements?|words?|list|data|table)"
    r"|the (?:passage|paragraph|article|excerpt|snippet|input)(?! (?:of|about|on|for|that|which|to)\b))\b",
    re.IGNORECASE)
# the instruction may carry its input after all: text after a sentence break, a colon or a line break
_EMBEDDED = re.compile(r"[.?!:;]\s+\S|[:\n]\s*\S")
_QUOTED = re.compile(r'"[^"]+"|\u201c[^\u201d]+\u201d|(?<!\w)\'[^\']+\'(?!\w)|\u2018[^\u2019]+\u2019')


def points_at_input(instruction: str) -> bool:
    """Whether ``instruction`` refers to an input ("the following", "this sentence", "the text below",
    ...) that it cannot carry itself: it is one sentence (no text after a sentence break, colon or line
    break) and quotes nothing. "Summarize the following:" points at an input; "Sort the following: 3, 1"
    and "Is this review positive? Great film." carry theirs."""
    inst = instruction.strip()
    return bool(_POINTER.search(inst)) and not _EMBEDDED.search(inst) and not _QUOTED.search(inst)
