"""Does a stub's visible text give a botch's fix away? The rule, written once.

A stub must state each graded function's contract (what it returns, for which inputs) and must
not announce the mistakes the grader diagnoses: those belong in folded hints, so the learner
makes the mistake, or avoids it, on their own, and the diagnosis can fire. The rule below turns
that into something a test can check, for one visible sentence and one botch:

- The botch's *distinctive words* are the content words of the diagnosis and hint the grader
  gives it, less words of fewer than four letters, less the words common to the drill (found
  in the texts of three botches or of a fifth of them: "loss", "batch"...), and less the words
  of the contract itself: the docstrings of the graded functions, their warning sentences
  excepted (a contract must be free to say "(N, D)", "partner", "temperature"). Words are
  compared by a crude stem (lower case, first six letters), so "exponentiates" meets
  "exponentiate"; the warning words themselves never count as shared.
- A sentence *warns* when it says what not to do: "do not", "don't", "never", "avoid",
  "careful", "must not", "make sure", "beware", "silently", "mistake", "pitfall". Plain
  English words that diagnoses use in passing ("result", "value", "wrong"...) never count.
- The botch's *telling names* are the identifiers its code uses that the reference solution
  does not (`item` and `min` for a clamp through `.item()`, `exp` for a softmax by hand,
  `data` for aliasing a teacher's `.data`); a sentence says one when it writes it as code, in
  backticks.
- The sentence gives the botch away when it warns and shares a distinctive word or a telling
  name with it, or when it shares three or more of its distinctive words, whatever its mood: a
  recipe spelled out step by step gives the fix away as surely as a warning.

Visible text is every markdown cell of the stub with the `<details>` blocks (the folded hints,
the folded answers) removed, and the comments and strings of every code cell: a docstring or a
comment can warn too.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections import Counter

WARNING = re.compile(r"\b(do not|don't|never|avoid|careful|must not|make sure|beware|"
                     r"silently|mistake|pitfall)\b", re.IGNORECASE)
WARNING_STEMS = {"never", "avoid", "carefu", "silent", "mistak", "pitfal", "beware", "make", "sure"}
STOPWORDS = set("""
about above after again against also among another because been before being below between
both cannot could does doing down during each either every from further have having here into
itself just more most much must only other over same should since some such than that their
them then there these they this those through under until very were what when where which while
whose will with within without would your yours yourself gives given give takes take makes make
uses used using like still even once each""".split())


def stem(word: str) -> str:
    return word.lower()[:6]


# Plain English that diagnoses use in passing and stubs in other senses: never distinctive.
GENERIC = {stem(w) for w in """
result inside value compare label labels initial weights keeps apart class classes learns learn
long built steps larger single example wrong uniform identity first last number numbers right
classifier classification read reads happen happens shown show shows
point points part parts case cases kind name names work works line lines shape shapes""".split()}


def content_stems(text: str) -> set[str]:
    words = re.findall(r"[A-Za-z][A-Za-z_]+", text)
    return {stem(w) for w in words if len(w) >= 4 and w.lower() not in STOPWORDS}


def _prose_of_code(source: str) -> str:
    """The comments and strings (docstrings) of a code cell: the prose a learner reads there."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out.append(tok.string.lstrip("#").strip())
            elif tok.type == tokenize.STRING:
                out.append(tok.string.strip("\"'rbuf"))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source
    return "\n\n".join(out)


def visible_text(nb) -> str:
    """The stub as a learner sees it before opening anything: `<details>` blocks removed, and
    of code cells their comments and strings."""
    parts = []
    for cell in nb.cells:
        text = cell.source
        if cell.cell_type == "markdown":
            text = re.sub(r"<details>.*?</details>", " ", text, flags=re.DOTALL | re.IGNORECASE)
        else:
            text = _prose_of_code(text)
        parts.append(text)
    return "\n\n".join(parts)


def sentences(text: str) -> list[str]:
    """Sentences (or list items, or code lines) of visible text, whitespace collapsed."""
    pieces = re.split(r"(?<=[.!?;:])\s+|\n\s*[-*]\s+|\n\s*\n|\n(?=\s*#)|\n(?=\s*\|)", text)
    return [" ".join(p.split()) for p in pieces if len(p.split()) >= 3]


def contract_stems(nb) -> set[str]:
    """The words of the graded functions' docstrings (cells tagged `graded`), warnings left out."""
    found = set()
    for cell in nb.cells:
        if cell.cell_type != "code" or "graded" not in cell.metadata.get("tags", []):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                doc = ast.get_docstring(node) or ""
                for sentence in sentences(doc):
                    if not WARNING.search(sentence):
                        found |= content_stems(sentence)
    return found


def distinctive(mistakes: dict[str, str], contract: set[str] = frozenset()) -> dict[str, set[str]]:
    """botch -> its distinctive stems; `mistakes` maps botch -> its diagnosis and hint text."""
    stems = {b: content_stems(t) - WARNING_STEMS - GENERIC for b, t in mistakes.items()}
    counts = Counter(s for group in stems.values() for s in group)
    common = {s for s, n in counts.items() if n >= min(3, max(2, len(mistakes) / 5))}
    return {b: group - common - set(contract) for b, group in stems.items()}


def identifiers(source: str) -> set[str]:
    """Every name and attribute a piece of code uses (empty when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    return names | {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}


def telling_names(botch_source: str, reference_source: str) -> set[str]:
    return identifiers(botch_source) - identifiers(reference_source)


def giveaways(nb, mistakes: dict[str, str],
              names: dict[str, set[str]] | None = None) -> list[tuple[str, str, list[str]]]:
    """(sentence, botch, what it shares) for each visible sentence that gives a botch away.
    `names` maps a botch to its telling names (telling_names)."""
    found = []
    words = distinctive(mistakes, contract_stems(nb))
    for sentence in sentences(visible_text(nb)):
        have = content_stems(sentence)
        warns = bool(WARNING.search(sentence))
        said = {name for span in re.findall(r"`([^`]+)`", sentence)
                for name in re.findall(r"[A-Za-z_]\w*", span) if len(name) >= 3}
        for botch, group in words.items():
            shared = sorted(have & group)
            told = sorted(said & (names or {}).get(botch, set())) if warns else []
            if (warns and shared) or told or len(shared) >= 3:
                found.append((sentence, botch, shared + [f"`{n}`" for n in told]))
    return found
