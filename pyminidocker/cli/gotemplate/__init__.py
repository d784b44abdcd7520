"""Go's text/template as the Docker CLI uses it for --format, and Docker's `table` output.

No Python package on PyPI implements text/template faithfully (the few that exist wrap a Go
shared library or stop at `{{.Field}}`), so this module does, for what Docker's users write:
fields, map keys, method calls with arguments, variables, pipelines, parenthesised pipelines,
if/else if/else, range (with `$i, $v :=`, else, break, continue), with/else with, define,
template, block, comments, trim markers, Go's builtin functions (and, or, not, len, index, slice,
print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery, call) and Docker's own (json,
split, join, title, lower, upper, pad, truncate).

Data is plain Python: a dict is a Go map (or a struct decoded from JSON), a list a slice, None
is nil; any other object is a struct whose attributes are its fields and whose methods are
called with the template's arguments (Docker's formatter contexts: `{{.Label "k"}}`).
`StringMap` marks a map[string]string, whose missing entries `index` reads as "" rather than
`<no value>` (Docker's Labels). Errors are TemplateError with Go's message shape
("template: :1: function "foo" not defined", "template: :1:2: executing "" at <.Foo>: ...").

Imported lazily by the commands that take --format: never on the `run` path.
"""
from pyminidocker.cli.gotemplate.execute import Template
from pyminidocker.cli.gotemplate.sprintf import go_sprintf
from pyminidocker.cli.gotemplate.table import format_items, tabwrite
from pyminidocker.cli.gotemplate.values import NO_VALUE, TemplateError
from pyminidocker.engine import StringMap

__all__ = ["NO_VALUE", "StringMap", "Template", "TemplateError", "format_items", "go_sprintf",
           "tabwrite"]
