"""SQL text without its values: a fingerprint and a redacted statement, pure string work.

The agent's capture fingerprints every statement inside the service, so this module imports only the
standard library; the analysis side may use it too.

Fingerprints (in the spirit of pg_stat_statements): comments dropped, whitespace collapsed,
unquoted words lower-cased; string, number, dollar-quoted and hex/blob literals and parameter
placeholders of every style (``?``, ``$1``, ``%s``, ``%(name)s``, ``:name``) become ``?``; a list
made only of constants (``IN (?, ?, ?)``, ``VALUES (?, ?), (?, ?)``, with ``::type`` casts) collapses to
``(...)``, so IN-lists of any length share a fingerprint. The redacted statement is the same text in
its original case: no parameter value or literal ever reaches it.
"""

from __future__ import annotations

import hashlib
import re

# Strings: only PostgreSQL's E'...' strings take backslash escapes; in standard SQL (SQLite,
# PostgreSQL's default) a backslash is an ordinary character, so '\' is a complete string.
_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?(?:\*/|\Z))
  | (?P<dollar>\$\$.*?(?:\$\$|\Z)|\$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)\$.*?(?:\$(?P=tag)\$|\Z))
  | (?P<string>[Ee]'(?:[^'\\]|''|\\.)*(?:'|\Z)|(?:[XxBbNn]|[Uu]&)?'(?:[^']|'')*(?:'|\Z))
  | (?P<qident>"(?:[^"]|"")*(?:"|\Z)|`[^`]*(?:`|\Z)|\[[A-Za-z_][^\]]*\])
  | (?P<param>\?\d*|\$\d+|%\([^)]*\)s|%s|(?<![:\w]):[A-Za-z_][A-Za-z_0-9]*|@[A-Za-z_][A-Za-z_0-9]*)
  | (?P<number>0[xX][0-9A-Fa-f]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_\u0080-\uffff][A-Za-z_0-9$\u0080-\uffff]*)
  | (?P<op>::|<>|!=|<=|>=|\|\||->>|->|[^\s])
    """,
    re.VERBOSE | re.DOTALL,
)
N_PLUS_ONE_THRESHOLD = 5  # one statement this many times in one request (or capture) is an N+1

_CONST = "?"
_LIST = "(...)"
# after these tokens a + or - is a sign, not a binary operator
_SIGN_CONTEXT = {"(", ",", "=", "<", ">", "<=", ">=", "<>", "!=", "+", "-", "*", "/", "%", "||", None}
_KEYWORD_BEFORE_SIGN = {"select", "where", "and", "or", "not", "in", "values", "set", "limit", "offset", "then",
                        "else", "when", "return", "is", "between", "like", "by", "on", "case", "array"}


def _tokens(sql: str) -> list[str]:
    """Significant tokens of ``sql`` with constants already replaced by ``?`` (original case)."""
    out: list[str] = []
    for m in _TOKEN.finditer(sql):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        if kind in ("dollar", "string", "param", "number"):
            # a sign in front of a number belongs to the literal: "x = -5" is "x = ?"
            if kind == "number" and out and out[-1] in ("-", "+"):
                before = out[-2] if len(out) > 1 else None
                if before in _SIGN_CONTEXT or (before or "").lower() in _KEYWORD_BEFORE_SIGN:
                    out.pop()
            out.append(_CONST)
            continue
        if kind == "tag":  # pragma: no cover - a sub-group, never the last group
            continue
        out.append(m.group())
    return _collapse_lists(out)


def _is_word(tok: str) -> bool:
    return bool(tok) and (tok[0].isalpha() or tok[0] == "_" or tok[0] in '"`[')


_TYPE_WORDS = {"precision", "varying", "with", "without", "time", "zone"}


def _drop_casts(toks: list[str]) -> list[str]:
    """``? :: type`` -> ``?``: a cast on a constant is part of how it was bound (asyncpg renders
    ``$1::INTEGER``), not of the statement's shape."""
    out: list[str] = []
    i, n = 0, len(toks)
    while i < n:
        tok = toks[i]
        if tok == "::" and out and out[-1] == _CONST and i + 1 < n and _is_word(toks[i + 1]):
            i += 2
            while i < n and toks[i].lower() in _TYPE_WORDS:
                i += 1
            if i + 2 < n and toks[i] == "(" and toks[i + 1] == _CONST and toks[i + 2] == ")":
                i += 3
            while i + 1 < n and toks[i] == "[" and toks[i + 1] == "]":
                i += 2
            continue
        out.append(tok)
        i += 1
    return out


def _collapse_lists(toks: list[str]) -> list[str]:
    """``( ? , ? , (...) )`` -> ``(...)``; then ``(...) , (...)`` runs (multi-row VALUES) -> one ``(...)``."""
    out: list[str] = []
    for tok in _drop_casts(toks):
        out.append(tok)
        if tok != ")":
            continue
        i = len(out) - 2
        want_element = True
        while i >= 0 and out[i] != "(":
            if want_element and out[i] in (_CONST, _LIST) or not want_element and out[i] == ",":
                want_element = not want_element
                i -= 1
                continue
            break
        if i >= 0 and out[i] == "(" and not want_element:
            del out[i:]
            out.append(_LIST)
    res: list[str] = []
    for tok in out:
        if tok == _LIST and len(res) >= 2 and res[-1] == "," and res[-2] == _LIST:
            res.pop()
            continue
        res.append(tok)
    return res


def _render(toks: list[str]) -> str:
    parts: list[str] = []
    prev = ""
    for tok in toks:
        if parts and not (tok in (",", ")", ";", "::", ".") or prev in ("(", "::", ".")
                          or (tok == "(" and _is_word(prev) and prev.lower() not in _KEYWORD_BEFORE_SIGN
                              and prev.lower() not in ("from", "join", "into", "as", "exists", "using"))):
            parts.append(" ")
        parts.append(tok)
        prev = tok
    return "".join(parts)


def _canonical(toks: list[str]) -> list[str]:
    return [t if t[:1] in ('"', "`", "[") else t.lower() for t in toks]


def redact(sql: str) -> str:
    """The statement with every literal and parameter replaced by ``?`` (IN-lists by ``(...)``)."""
    return _render(_tokens(sql))


def fingerprint(sql: str) -> str:
    """A 16-hex-digit id shared by statements that differ only in constants, placeholders, case, spacing."""
    return fingerprint_and_text(sql)[0]


def fingerprint_and_text(sql: str) -> tuple[str, str]:
    """``(fingerprint, redacted text)`` of ``sql`` in one pass."""
    toks = _tokens(sql)
    canon = " ".join(_canonical(toks))
    fp = hashlib.blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
    return fp, _render(toks)
