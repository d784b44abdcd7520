"""text/template's lexer: a template's text as a list of tokens with their positions."""
from __future__ import annotations

from pyminidocker.cli.gotemplate.values import TemplateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    pass

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
        trim_next = False
        if j < 0:
            break
        start = j
        i = j + 2
        if left_trim:
            i += 2
        # a comment is the whole action: {{/* ... */}}, trim markers allowed around it
        if text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                raise err("unclosed comment", start)
            i = close + 2
            if text.startswith(" -}}", i) or text.startswith("\t-}}", i) \
                    or text.startswith("\n-}}", i):
                trim_next = True
                i += 4
            elif text.startswith("}}", i):
                i += 2
            else:
                raise err("comment ends before closing delimiter", start)
            continue
        toks.append(_Tok("left", "{{", start, text.count("\n", 0, start) + 1))
        space = False
        while True:
            if i >= n:
                raise err("unclosed action", start)
            c = text[i]
            line = text.count("\n", 0, i) + 1
            if c in _SPACE:
                k = i
                while k < n and text[k] in _SPACE:
                    k += 1
                if text.startswith("-}}", k):
                    trim_next = True
                    toks.append(_Tok("right", "}}", k, line))
                    i = k + 3
                    break
                i = k
                space = True
                continue
            if text.startswith("}}", i):
                toks.append(_Tok("right", "}}", i, line))
                i += 2
                break
            tok_start = i
            if c == '"':
                k = i + 1
                while k < n and text[k] != '"':
                    if text[k] == "\\":
                        k += 1
                    if k < n and text[k] == "\n":
                        raise err("unterminated quoted string", i)
                    k += 1
                if k >= n:
                    raise err("unterminated quoted string", i)
                toks.append(_Tok("string", text[i:k + 1], tok_start, line, space))
                i = k + 1
            elif c == "`":
                k = text.find("`", i + 1)
                if k < 0:
                    raise err("unterminated raw quoted string", i)
                toks.append(_Tok("rawstring", text[i + 1:k], tok_start, line, space))
                i = k + 1
            elif c == "'":
                k = i + 1
                while k < n and text[k] != "'":
                    if text[k] == "\\":
                        k += 1
                    k += 1
                if k >= n:
                    raise err("unterminated character constant", i)
                toks.append(_Tok("char", text[i:k + 1], tok_start, line, space))
                i = k + 1
            elif c == "$":
                k = i + 1
                while k < n and _is_alnum(text[k]):
                    k += 1
                toks.append(_Tok("var", text[i:k], tok_start, line, space))
                i = k
            elif c == "." and i + 1 < n and text[i + 1].isdigit() and not (
                    toks and not space and toks[-1].kind in ("field", "var", "rparen", "ident")):
                k = _scan_number(text, i)
                toks.append(_Tok("number", text[i:k], tok_start, line, space))
                i = k
            elif c == ".":
                k = i + 1
                while k < n and _is_alnum(text[k]):
                    k += 1
                kind = "field" if k > i + 1 else "dot"
                toks.append(_Tok(kind, text[i:k], tok_start, line, space))
                i = k
            elif c.isdigit() or (c in "+-" and i + 1 < n and (text[i + 1].isdigit() or (
                    text[i + 1] == "." and i + 2 < n and text[i + 2].isdigit()))):
                k = _scan_number(text, i)
                if k < n and _is_alnum(text[k]):
                    raise err(f'bad number syntax: "{text[i:k + 1]}"', i)
                toks.append(_Tok("number", text[i:k], tok_start, line, space))
                i = k
            elif c == "_" or c.isalpha():
                k = i
                while k < n and _is_alnum(text[k]):
                    k += 1
                word = text[i:k]
                toks.append(_Tok("kw" if word in _KEYWORDS else "ident", word, tok_start, line,
                                 space))
                i = k
            elif c == "|":
                toks.append(_Tok("pipe", c, tok_start, line, space))
                i += 1
            elif c == "(":
                toks.append(_Tok("lparen", c, tok_start, line, space))
                i += 1
            elif c == ")":
                toks.append(_Tok("rparen", c, tok_start, line, space))
                i += 1
            elif c == ",":
                toks.append(_Tok("comma", c, tok_start, line, space))
                i += 1
            elif text.startswith(":=", i):
                toks.append(_Tok("declare", ":=", tok_start, line, space))
                i += 2
            elif c == "=":
                toks.append(_Tok("assign", "=", tok_start, line, space))
                i += 1
            elif c == "}":
                raise err('unexpected "}" in operand', i)
            else:
                raise err(f"bad character U+{ord(c):04X} '{c}'", i)
            space = False
    toks.append(_Tok("eof", "", n, text.count("\n") + 1))
    return toks


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
