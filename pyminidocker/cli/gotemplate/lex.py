"""text/template's lexer: a template's text as a list of tokens with their positions."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.values import TemplateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# ---- lexer ----------------------------------------------------------------------------------

_SPACE = " \t\r\n"
_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break",
             "continue", "nil", "true", "false"}


class _Tok:
    __slots__ = ("kind", "line", "pos", "space", "val")

    def __init__(self, kind: str, val: str, pos: int, line: int, space: bool = False):
        self.kind = kind    # text, left, right, comment, field, dot, var, ident, kw, string,
        self.val = val      # rawstring, char, number, pipe, lparen, rparen, declare, assign,
        self.pos = pos      # comma, eof
        self.line = line
        self.space = space  # whitespace came before it (operands are separated by spaces)


def _is_alnum(c: str) -> bool:
    return c == "_" or c.isalnum()


def _lex(text: str, name: str) -> list[_Tok]:
    """The tokens of text: text chunks, and each action's {{ ... }} and what is between."""
    toks: list[_Tok] = []
    i, n = 0, len(text)
    trim_next = False

    def err(msg: str, at: int) -> TemplateError:
        return TemplateError(f"template: {name}:{text.count(chr(10), 0, at) + 1}: {msg}")

    while i < n:
        j = text.find("{{", i)
        end = n if j < 0 else j
        chunk = text[i:end]
        # "{{- " trims the text before; the space is part of the marker ("{{-3}}" is a number)
        left_trim = 0 <= j < n - 3 and text[j + 2] == "-" and text[j + 3] in _SPACE
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if left_trim:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            toks.append(_Tok("text", chunk, i, text.count("\n", 0, i) + 1))
        if j < 0:
            break
        i = j + (4 if left_trim else 2)
        if text.startswith("/*", i):
            i, trim_next = _comment(text, i, j, err)
        else:
            toks.append(_Tok("left", "{{", j, text.count("\n", 0, j) + 1))
            i, trim_next = _action(text, i, j, toks, err)
    toks.append(_Tok("eof", "", n, text.count("\n") + 1))
    return toks


def _comment(text: str, i: int, start: int, err: Callable[[str, int], TemplateError]
             ) -> tuple[int, bool]:
    """A comment is the whole action: {{/* ... */}}, trim markers allowed around it. Where
    the text goes on, and whether it trims the text after."""
    close = text.find("*/", i + 2)
    if close < 0:
        raise err("unclosed comment", start)
    i = close + 2
    if text[i:i + 1] in (" ", "\t", "\n") and text.startswith("-}}", i + 1):
        return i + 4, True
    if text.startswith("}}", i):
        return i + 2, False
    raise err("comment ends before closing delimiter", start)


def _action(text: str, i: int, start: int, toks: list[_Tok],
            err: Callable[[str, int], TemplateError]) -> tuple[int, bool]:
    """The tokens of one action up to its }} (appended to toks). Where the text goes on, and
    whether the action ends with -}} (trim the text after)."""
    n = len(text)
    space = False
    while True:
        if i >= n:
            raise err("unclosed action", start)
        line = text.count("\n", 0, i) + 1
        if text[i] in _SPACE:
            k = i
            while k < n and text[k] in _SPACE:
                k += 1
            if text.startswith("-}}", k):
                toks.append(_Tok("right", "}}", k, line))
                return k + 3, True
            i, space = k, True
            continue
        if text.startswith("}}", i):
            toks.append(_Tok("right", "}}", i, line))
            return i + 2, False
        kind, k = _operand(text, i, toks[-1] if toks and not space else None, err)
        val = text[i + 1:k - 1] if kind == "rawstring" else text[i:k]
        if kind == "ident" and val in _KEYWORDS:
            kind = "kw"
        toks.append(_Tok(kind, val, i, line, space))
        i, space = k, False


_SINGLE = {"|": "pipe", "(": "lparen", ")": "rparen", ",": "comma", "=": "assign"}


def _operand(text: str, i: int, glued: _Tok | None, err: Callable[[str, int], TemplateError]
             ) -> tuple[str, int]:
    """The kind of the token at i and where it ends; glued: the token just before it with no
    space between (".5" after a field is a field access, not a number)."""
    n = len(text)
    c = text[i]
    if c == '"':
        return "string", _quoted(text, i, '"', "unterminated quoted string", err)
    if c == "'":
        return "char", _quoted(text, i, "'", "unterminated character constant", err)
    if c == "`":
        k = text.find("`", i + 1)
        if k < 0:
            raise err("unterminated raw quoted string", i)
        return "rawstring", k + 1
    if c == "$":
        return "var", _word_end(text, i + 1)
    if c == "." and i + 1 < n and text[i + 1].isdigit() and not (
            glued and glued.kind in ("field", "var", "rparen", "ident")):
        return "number", _scan_number(text, i)
    if c == ".":
        k = _word_end(text, i + 1)
        return ("field" if k > i + 1 else "dot"), k
    if c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or (
            text[i + 1] == "." and i + 2 < n and text[i + 2].isdigit()))):
        k = _scan_number(text, i)
        if k < n and _is_alnum(text[k]):
            raise err(f'bad number syntax: "{text[i:k + 1]}"', i)
        return "number", k
    if c == "_" or c.isalpha():
        return "ident", _word_end(text, i)
    if text.startswith(":=", i):
        return "declare", i + 2
    if c in _SINGLE:
        return _SINGLE[c], i + 1
    if c == "}":
        raise err('unexpected "}" in operand', i)
    raise err(f"bad character U+{ord(c):04X} '{c}'", i)


def _quoted(text: str, i: int, quote: str, unterminated: str,
            err: Callable[[str, int], TemplateError]) -> int:
    """The end of the quoted string or character constant at i (backslash escapes; a double
    quoted string may not span lines)."""
    n = len(text)
    k = i + 1
    while k < n and text[k] != quote:
        if text[k] == "\\":
            k += 1
        if quote == '"' and k < n and text[k] == "\n":
            raise err(unterminated, i)
        k += 1
    if k >= n:
        raise err(unterminated, i)
    return k + 1


def _word_end(text: str, k: int) -> int:
    while k < len(text) and _is_alnum(text[k]):
        k += 1
    return k


def _scan_number(text: str, i: int) -> int:
    k = i + 1 if text[i] in "+-" else i
    exponent = "pP" if text[k:k + 2].lower() == "0x" else "eE"
    while k < len(text):
        c = text[k]
        if c.isalnum() or c in "._" or (c in "+-" and text[k - 1] in exponent):
            k += 1
        else:
            break
    return k
