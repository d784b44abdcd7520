"""Go's text/template as Docker's --format uses it: what Go and Docker print, byte for byte.

Expected strings come from Go's text/template and fmt behaviour and from the examples of
Docker's documentation of --format (docs "Format command and log output", `docker inspect`,
`docker ps`/`images` Formatting sections).
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from pyminidocker.cli.gotemplate import (
    NO_VALUE,
    StringMap,
    Template,
    TemplateError,
    format_items,
    go_sprintf,
    tabwrite,
)

CTR = {
    "Id": "4fa6e0f0c6786287e131c3852c58a2e01cc697a68231826813597e4994f1d6e2",
    "Name": "/web",
    "Args": ["-g", "daemon off;"],
    "Image": "sha256:ab12",
    "LogPath": "/var/lib/docker/containers/4fa6/4fa6-json.log",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0},
    "Config": {"Image": "nginx:1.25", "Labels": StringMap({"com.example.vendor": "ACME"}),
               "Env": ["PATH=/usr/bin", "NGINX_VERSION=1.25.3"], "Cmd": None},
    "NetworkSettings": {
        "IPAddress": "172.17.0.2",
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None},
        "Networks": {"bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1",
                                "MacAddress": "02:42:ac:11:00:02"}},
    },
    "Mounts": [{"Type": "bind", "Source": "/srv/www", "Destination": "/usr/share/nginx/html"}],
}


def render(text: str, data=CTR, **kw) -> str:
    return Template(text).execute(data, **kw)


def error(text: str, data=CTR, **kw) -> str:
    with pytest.raises(TemplateError) as e:
        render(text, data, **kw)
    return str(e.value)


# ---- the examples of Docker's documentation -------------------------------------------------

@pytest.mark.parametrize("text, want", [
    ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "172.17.0.2"),
    ("{{range .NetworkSettings.Networks}}{{.MacAddress}}{{end}}", "02:42:ac:11:00:02"),
    ("{{.LogPath}}", "/var/lib/docker/containers/4fa6/4fa6-json.log"),
    ("{{.Config.Image}}", "nginx:1.25"),
    ("{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} {{end}}",
     None),
    ("{{json .Mounts}}",
     '[{"Type":"bind","Source":"/srv/www","Destination":"/usr/share/nginx/html"}]'),
    ('{{join .Args " , "}}', "-g , daemon off;"),
    ("{{lower .Name}}", "/web"),
    ("{{upper .Name}}", "/WEB"),
    ("{{title .Config.Image}}", "Nginx:1.25"),
    ('{{split .Config.Image ":"}}', "[nginx 1.25]"),
    ("{{range .Mounts}}{{println .Source}}{{end}}", "/srv/www\n"),
    ("{{json .Config.Labels}}", '{"com.example.vendor":"ACME"}'),
    ('{{index .Config.Labels "com.example.vendor"}}', "ACME"),
    ("{{.State.Pid}}", "4242"),
    ("{{.State.Running}}", "true"),
    ("{{.Config.Labels}}", "map[com.example.vendor:ACME]"),
    ("{{.Args}}", "[-g daemon off;]"),
    ("{{.Config.Cmd}}", "<nil>"),
])
def test_docker_documentation_examples(text, want):
    if want is None:   # the ports example errors on the unpublished port's nil slice in Go too
        assert "error calling index" in error(text)
        return
    assert render(text) == want


def test_ports_example_with_every_port_published():
    data = {"NetworkSettings": {"Ports": {"80/tcp": [{"HostPort": "8080"}],
                                          "443/tcp": [{"HostPort": "8443"}]}}}
    text = "{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} {{end}}"
    # a map ranges in sorted key order
    assert render(text, data) == " 443/tcp -> 8443  80/tcp -> 8080 "


# ---- text/template semantics ----------------------------------------------------------------

def test_missing_key_prints_no_value_and_errors_with_missingkey_error():
    assert render("{{.Nope}}") == "<no value>"
    assert render("{{.Nope.Deeper}}") == "<no value>"
    assert error("{{.State.Health.Status}}", missingkey="error") == (
        'template: :1:8: executing "" at <.State.Health.Status>: '
        'map has no entry for key "Health"')
    assert error("{{.Nope}}", missingkey="error") == (
        'template: :1:2: executing "" at <.Nope>: map has no entry for key "Nope"')


def test_index_of_a_missing_label_is_empty_but_missing_map_entry_is_no_value():
    assert render('{{index .Config.Labels "nope"}}') == ""
    assert render('{{index .NetworkSettings.Networks "nope"}}') == "<no value>"
    assert render('{{index .Args 1}}') == "daemon off;"
    assert render('{{index .NetworkSettings.Ports "80/tcp" 0 "HostPort"}}') == "8080"


def test_nil_and_wrong_type_fields():
    assert error("{{.Config.Cmd.X}}") == (
        'template: :1:9: executing "" at <.Config.Cmd.X>: nil pointer evaluating interface {}.X')
    assert error("{{.Name.X}}") == (
        'template: :1:7: executing "" at <.Name.X>: can\'t evaluate field X in type string')


def test_if_else_if_else_and_comparisons():
    t = ('{{if eq .State.Status "running"}}up{{else if eq .State.Status "exited"}}down'
         '{{else}}other{{end}}')
    assert render(t) == "up"
    assert render(t, {"State": {"Status": "exited"}}) == "down"
    assert render(t, {"State": {"Status": "created"}}) == "other"
    assert render('{{if eq .State.Status "a" "b" "running"}}yes{{end}}') == "yes"
    assert render("{{if ne .State.ExitCode 0}}failed{{else}}ok{{end}}") == "ok"
    assert render("{{lt 1 2}} {{le 2 2}} {{gt 1 2}} {{ge 3 2}} {{lt \"a\" \"b\"}}") == \
        "true true false true true"
    assert render("{{if and .State.Running (not .State.ExitCode)}}healthy{{end}}") == "healthy"
    assert render('{{or .Nope "default"}} {{and 1 0 2}} {{or 0 ""}}') == "default 0 "
    assert "incompatible types for comparison" in error("{{eq 1 \"1\"}}")
    assert "incompatible types for comparison" in error("{{lt 1 1.5}}")


def test_and_or_short_circuit_like_go_1_18():
    # the second argument would fail to evaluate: it is never evaluated
    assert render("{{and false (index .Args 9)}}") == "false"
    assert render("{{or true (index .Args 9)}}") == "true"


def test_range_forms():
    assert render("{{range .Args}}[{{.}}]{{end}}") == "[-g][daemon off;]"
    assert render("{{range $i, $a := .Args}}{{$i}}={{$a}} {{end}}") == "0=-g 1=daemon off; "
    assert render("{{range $a := .Args}}{{$a}};{{end}}") == "-g;daemon off;;"
    assert render("{{range .Nope}}x{{else}}none{{end}}") == "none"
    assert render("{{range .Config.Cmd}}x{{else}}none{{end}}") == "none"
    assert render("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}{{end}}") == \
        "com.example.vendor=ACME"
    assert render("{{range 3}}{{.}}{{end}}") == "012"
    assert render("{{range .Args}}{{if eq . \"-g\"}}{{continue}}{{end}}{{.}}{{end}}") == \
        "daemon off;"
    assert render("{{range .Args}}{{.}}{{break}}{{end}}") == "-g"
    # the dot inside a range is the element; $ stays the root
    assert render("{{range .Args}}{{$.Name}}{{end}}") == "/web/web"
    assert "range can't iterate over /web" in error("{{range .Name}}{{end}}")


def test_with_and_variables():
    assert render("{{with .State}}{{.Status}}/{{.Pid}}{{end}}") == "running/4242"
    assert render("{{with .Nope}}x{{else}}empty{{end}}") == "empty"
    assert render("{{with .Nope}}x{{else with .State}}{{.Pid}}{{end}}") == "4242"
    assert render("{{$n := .Name}}{{with .State}}{{$n}}:{{.Status}}{{end}}") == "/web:running"
    assert render("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}") == "2"
    assert render("{{if $s := .State.Status}}{{$s}}{{end}}") == "running"
    assert error("{{$y}}") == 'template: :1: undefined variable "$y"'
    # a variable ends with the control structure that declared it
    assert error("{{if true}}{{$z := 1}}{{end}}{{$z}}") == 'template: :1: undefined variable "$z"'


def test_pipelines_and_parentheses():
    assert render('{{.Name | upper}}') == "/WEB"
    assert render('{{.Config.Image | printf "%s!" | upper}}') == "NGINX:1.25!"
    assert render('{{(index .Mounts 0).Source}}') == "/srv/www"
    assert render('{{len (split .Config.Image ":")}}') == "2"
    assert render('{{"a" | printf "%s%s" "b"}}') == "ba"


def test_whitespace_trimming_and_comments():
    assert render("a  {{- .State.Pid -}}  b") == "a4242b"
    assert render("a {{- /* note */ -}}\n b") == "ab"
    assert render("{{/* just a comment */}}x") == "x"
    assert render("{{range .Args -}}\n  {{.}}\n{{- end}}") == "-gdaemon off;"
    # "{{-3}}" is the number -3, not a trim marker
    assert render("x {{-3}}") == "x -3"


def test_define_template_and_block():
    assert render('{{define "ip"}}{{.IPAddress}}{{end}}{{template "ip" .NetworkSettings}}') == \
        "172.17.0.2"
    assert render('{{block "b" .Name}}[{{.}}]{{end}}') == "[/web]"


def test_literals():
    assert render(r'{{"tab\there"}}|{{`raw\n`}}|{{0x1F}}|{{1e3}}|{{1_000}}|{{-2}}|{{nil | print}}') \
        == "tab\there|raw\\n|31|1000|1000|-2|<nil>"
    assert render("{{'a'}} {{1.5}} {{true}}") == "97 1.5 true"


def test_go_prints_floats_decoded_from_json_as_fmt_does():
    assert render("{{.}}", 1000000.0) == "1e+06"
    assert render("{{.}}", 123456.0) == "123456"
    assert render("{{.}}", 0.0001) == "0.0001"
    assert render("{{.}}", 0.00001) == "1e-05"
    assert render("{{.}}", 2.5) == "2.5"
    assert render("{{json .}}", {"Memory": 1000000.0}) == '{"Memory":1000000}'


def test_json_is_compact_unescaped_and_keeps_order():
    data = {"b": "<&>", "a": [1, None, True], "c": "é"}
    assert render("{{json .}}", data) == '{"b":"<&>","a":[1,null,true],"c":"é"}'
    assert render("{{json .Nope}}") == "null"


def test_methods_take_the_templates_arguments():
    class Ctx:
        _go_type = "*formatter.ContainerContext"
        ID = "4fa6e0f0c678"

        def Label(self, name):
            return {"a": "1"}.get(name, "")

        def Names(self):
            return "web"

    assert render('{{.ID}} {{.Names}} {{.Label "a"}}|{{.Label "b"}}', Ctx()) == "4fa6e0f0c678 web 1|"
    assert render('{{"a" | .Label}}', Ctx()) == "1"
    assert error("{{.Nope}}", Ctx()) == ('template: :1:2: executing "" at <.Nope>: '
                                        "can't evaluate field Nope in type *formatter.ContainerContext")
    assert error("{{.Label}}", Ctx()) == ('template: :1:2: executing "" at <.Label>: '
                                         "wrong number of args for Label: want 1 got 0")


def test_docker_pad_and_truncate():
    assert render("{{pad .Name 2 3}}|{{pad .Nope2 1 1}}", {"Name": "web", "Nope2": ""}) == \
        "  web   |"
    assert render("{{truncate .Id 12}}") == "4fa6e0f0c678"
    assert render('{{truncate "abc" 5}}') == "abc"


def test_printf_verbs_as_go():
    assert go_sprintf("%s %d %v %q", "a", 42, [1, "b"], "x\ty") == 'a 42 [1 b] "x\\ty"'
    assert go_sprintf("%5s|%-5s|%05d|%x|%X|%o|%b|%c|%U", "ab", "ab", 42, 255, 255, 8, 5, 65, 0x1F600) \
        == "   ab|ab   |00042|ff|FF|10|101|A|U+1F600"
    assert go_sprintf("%.2f %e %g %t %%", 3.14159, 1234.5678, 0.000012, True) == \
        "3.14 1.234568e+03 1.2e-05 true %"
    assert go_sprintf("%.3s|%8.3f|%+d|%#x|%T", "abcdef", 3.14159, 5, 255, [1]) == \
        "abc|   3.142|+5|0xff|[]interface {}"
    assert go_sprintf("%q", 65) == "'A'"
    # Go's in-band errors
    assert go_sprintf("%d", "x") == "%!d(string=x)"
    assert go_sprintf("%f", 3) == "%!f(int=3)"
    assert go_sprintf("%s %s", "a") == "a %!s(MISSING)"
    assert go_sprintf("%s", "a", 1) == "a%!(EXTRA int=1)"
    assert go_sprintf("abc%") == "abc%!(NOVERB)"
    assert go_sprintf("%*d|%.*f", 4, 7, 1, 2.25) == "   7|2.2"
    assert go_sprintf("%z", 1) == "%!z(int=1)"


def test_print_and_println_spacing():
    assert render('{{print "a" 1 2 "b"}}') == "a1 2b"
    assert render('{{println "a" 1}}') == "a 1\n"


def test_function_errors_name_the_call():
    assert error("{{index .Args 5}}") == (
        'template: :1:2: executing "" at <index .Args 5>: error calling index: '
        "index out of range: 5")
    assert error("{{len .State.Pid}}") == (
        'template: :1:2: executing "" at <len .State.Pid>: error calling len: len of type int')
    assert error("{{len}}") == (
        'template: :1:2: executing "" at <len>: wrong number of args for len: want 1 got 0')
    assert error('{{join .Name ","}}') == (
        'template: :1:2: executing "" at <join .Name ",">: error calling join: '
        "wrong type for value; expected []string; got string")
    assert error("x\n  {{.Nope}}", missingkey="error") == (
        'template: :2:4: executing "" at <.Nope>: map has no entry for key "Nope"')


@pytest.mark.parametrize("text, message", [
    ("{{.Foo}", 'template: :1: unexpected "}" in operand'),
    ("{{.Foo", "template: :1: unclosed action"),
    ("{{foo}}", 'template: :1: function "foo" not defined'),
    ("{{if}}x{{end}}", "template: :1: missing value for if"),
    ("{{}}", "template: :1: missing value for command"),
    ("{{end}}", "template: :1: unexpected {{end}}"),
    ("{{else}}", "template: :1: unexpected {{else}}"),
    ("{{range .X}}", "template: :1: unexpected EOF"),
    ("a\nb {{if .X}}\n", "template: :3: unexpected EOF"),
    ("{{.A | 3}}", "template: :1: non executable command in pipeline stage 2"),
    ('{{"abc}}', "template: :1: unterminated quoted string"),
    ("{{/* x }}", "template: :1: unclosed comment"),
    ("{{break}}", "template: :1: {{break}} outside {{range}}"),
    ("{{.A !}}", "template: :1: bad character U+0021 '!'"),
    ("{{true.X}}", 'template: :1: unexpected . after term "true"'),
    ("{{3.X}}", 'template: :1: bad number syntax: "3.X"'),
])
def test_parse_errors_have_gos_message(text, message):
    with pytest.raises(TemplateError) as e:
        Template(text)
    assert str(e.value) == message


def test_no_value_is_falsy_and_prints_as_go():
    assert not NO_VALUE
    assert render("{{if .Nope}}x{{else}}y{{end}}") == "y"


# ---- Docker's table directive and its tabwriter ---------------------------------------------

def test_tabwriter_aligns_blocks_like_gos_with_dockers_settings():
    # minwidth 10, padding 3: a column is its widest cell + 3, at least 10
    assert tabwrite("a\tbb\tc\nxxxxxxxxxxxx\ty\tz\n") == (
        "a              bb        c\n"
        "xxxxxxxxxxxx   y         z\n")
    # the text after the last tab is not padded; a line without tabs ends the block
    assert tabwrite("a\tb\nno tabs here\nlonger cell\tc") == (
        "a         b\nno tabs here\nlonger cell   c")
    # wide characters take two cells, as go-runewidth counts them
    assert tabwrite("名前\tx\nab\ty") == "名前      x\nab        y"


def test_table_format_prints_a_header_and_aligned_columns():
    items = [{"ID": "4fa6e0f0c678", "Names": "web", "Status": "Up 2 minutes"},
             {"ID": "b2c4", "Names": "a-much-longer-name", "Status": "Exited (0) 1 hour ago"}]
    header = {"ID": "CONTAINER ID", "Names": "NAMES", "Status": "STATUS"}
    assert format_items(r"table {{.ID}}\t{{.Names}}\t{{.Status}}", items, header) == (
        "CONTAINER ID   NAMES                STATUS\n"
        "4fa6e0f0c678   web                  Up 2 minutes\n"
        "b2c4           a-much-longer-name   Exited (0) 1 hour ago\n")
    # Docker's HeaderFunctions keep the column titles intact under lower/upper/json/truncate
    assert format_items("table {{lower .Names}}\t{{truncate .ID 4}}", items, header) == (
        "NAMES                CONTAINER ID\n"
        "web                  4fa6\n"
        "a-much-longer-name   b2c4\n")
    # "table" alone is the command's default table
    assert format_items("table", items[:1], header, default_table="{{.ID}}\t{{.Names}}") == (
        "CONTAINER ID   NAMES\n4fa6e0f0c678   web\n")
    # as the commands give it, itself a `table ...` format (its word was printed in each row)
    assert format_items("table ", items[:1], header,
                        default_table="table {{.ID}}\t{{.Names}}") == (
        "CONTAINER ID   NAMES\n4fa6e0f0c678   web\n")
    # no rows: the header alone
    assert format_items("table {{.ID}}", [], header) == "CONTAINER ID\n"


def test_plain_and_json_formats_print_one_line_per_item():
    items = [{"ID": "a", "Names": "x"}, {"ID": "b", "Names": "y"}]
    assert format_items("{{.ID}}: {{.Names}}", items) == "a: x\nb: y\n"
    assert format_items(r"{{.ID}}\t{{.Names}}", items) == "a\tx\nb\ty\n"
    assert format_items("json", items) == '{"ID":"a","Names":"x"}\n{"ID":"b","Names":"y"}\n'
    assert format_items("{{json .}}", items[:1]) == '{"ID":"a","Names":"x"}\n'


def test_the_cli_does_not_import_the_template_engine_until_a_format_needs_it():
    code = ("import sys, pyminidocker.cli.main\n"
            "print('pyminidocker.cli.gotemplate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"
