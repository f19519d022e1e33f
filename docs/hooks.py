"""MkDocs hook: the parts of the documentation that the code already says are generated from it.

A page asks for a generated block with an HTML comment on a line of its own, ``<!-- generated: NAME -->``
(see ``BLOCKS``), and for one value inline with ``{{ dotted.path }}``, e.g.
``{{ verify.media.select.SelectParams.cut_ratio }}`` (``{{ path | percent }}`` shows 0.02 as "2 %", ``{{ path | count }}`` 10000 as "10,000").
An unknown block or path fails the build, so a renamed setting cannot leave a stale page behind.

Nothing here reaches the network; everything is read from the installed ``verify`` package and this
repository's README.md.
"""

from __future__ import annotations

import ast
import dataclasses
import html
import importlib
import inspect
import io
import pkgutil
import re
import sys
import tokenize
from pathlib import Path
from typing import Any, Callable

import click

ROOT = Path(__file__).resolve().parent.parent


def _cell(text: str) -> str:
    """Text for one Markdown table cell (a cell made by ``_code`` is HTML already)."""
    if str(text).startswith("<code>"):
        return str(text)
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(text: str) -> str:
    """Text as inline code inside a table cell (a Markdown code span would show the escaped "\\|")."""
    return "<code>" + html.escape(" ".join(text.split())).replace("|", "&#124;") + "</code>"


# --- the command line -------------------------------------------------------------------------------------------

def commands(group: click.Command | None = None, path: tuple[str, ...] = ("verify",)) -> list[tuple[str, click.Command]]:
    """Every command of verify's CLI, depth first, as (``"verify server start"``, command); groups included."""
    if group is None:
        from verify.cli import main as group
    found = [(" ".join(path), group)]
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            found += commands(group.commands[name], path + (name,))
    return found


def anchor(command_path: str) -> str:
    """The id of a command's heading in the reference (``verify server start`` → ``verify-server-start``)."""
    return command_path.replace(" ", "-")


def _help_markdown(text: str) -> str:
    """A command's help text as Markdown: prose as paragraphs, ``Example:`` lines and ``\\b`` blocks as shell."""
    out: list[str] = []
    examples: list[str] = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = para.splitlines()
        if lines and lines[0].strip() == "\b":
            out.append("```text\n" + "\n".join(lines[1:]) + "\n```")
        elif lines and all(line.strip().startswith("Example:") for line in lines):
            examples += [line.strip()[len("Example:"):].strip() for line in lines]
        else:
            out.append(" ".join(line.strip() for line in lines).replace("<", "&lt;"))
    if examples:
        out.append("```sh\n" + "\n".join(examples) + "\n```")
    return "\n\n".join(out)


def cli_reference() -> str:
    """The CLI reference: per command its usage, help, examples and every option, as ``--help`` shows them."""
    from verify.cli import main

    parts = []
    contexts: dict[str, click.Context] = {}
    for path, cmd in commands(main):
        parent = contexts.get(path.rsplit(" ", 1)[0]) if " " in path else None
        ctx = contexts[path] = click.Context(cmd, info_name=path.rsplit(" ", 1)[-1], parent=parent,
                                             **(cmd.context_settings or {}))
        level = "#" * min(2 + path.count(" "), 4)
        parts.append(f"{level} `{path}` {{#{anchor(path)}}}")
        usage = " ".join(cmd.collect_usage_pieces(ctx))
        parts.append(f"```text\n{path} {usage}\n```")
        if cmd.help:
            parts.append(_help_markdown(cmd.help))
        if isinstance(cmd, click.Group):
            parts.append("Commands: " + ", ".join(f"[`{n}`](#{anchor(path + ' ' + n)})" for n in sorted(cmd.commands)))
        rows = []
        for param in cmd.get_params(ctx):
            if isinstance(param, click.Argument):
                rows.append([_code(param.make_metavar(ctx)), "argument (see above)"])
                continue
            record = param.get_help_record(ctx)
            if record:
                rows.append([_code(record[0]), record[1]])
        if rows:
            parts.append(_table(["option", "what"], rows))
    return "\n\n".join(parts)


def exit_codes() -> str:
    """The exit codes: 0, click's usage errors, and each ``VerifyError`` kind's code with its docstring."""
    import verify.cli  # noqa: F401  (imports every module, so every error kind is defined)
    from verify.errors import VerifyError

    kinds: dict[int, list[type]] = {}
    todo = [VerifyError]
    while todo:
        kind = todo.pop()
        kinds.setdefault(kind.exit_code, []).append(kind)
        todo += kind.__subclasses__()
    rows = [["0", "done", ""]]
    if 2 not in kinds:
        rows.append(["2", "wrong command-line usage", ""])
    for code in sorted(kinds):
        for kind in sorted(kinds[code], key=lambda k: k.__name__):
            doc = (kind.__doc__ or "").strip().split("\n\n")[0].replace("``", "`")
            if code == 2:
                doc = "wrong command-line usage, or " + doc[0].lower() + doc[1:]
            rows.append([str(code), doc, f"`{kind.__module__}.{kind.__name__}`"])
    return _table(["code", "meaning", "raised as"], rows)


# --- merge rules and the report's words ---------------------------------------------------------------------------

def merge_rules() -> str:
    """``verify.verdicts.merge.RULES``, numbered as every report's Method section prints them."""
    from verify.verdicts.merge import RULES

    return "\n".join(f"{i}. {rule}" for i, rule in enumerate(RULES, 1))


def vocabulary() -> str:
    """``verify.report.build.VOCABULARY``: the words the report counts in."""
    from verify.report.build import VOCABULARY

    return _table(["word", "means"], [[f"*{word}*", meaning] for word, meaning in VOCABULARY.items()])


def verdict_values() -> str:
    """The values of ``verify.verdicts.values``: a frame's vote and a roll-up's verdict, with the code's comments."""
    from verify.verdicts.values import Verdict, Vote

    rows = []
    for kind, cls in (("vote (a frame, on a claim)", Vote), ("verdict (a claim or a video)", Verdict)):
        comments = _field_comments(cls)
        rows += [[kind, f"`{member.value}`", comments.get(name, "")] for name, member in cls.__members__.items()]
    return _table(["kind", "value", "what"], rows)


# --- tuning defaults ----------------------------------------------------------------------------------------------

def _field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` written after each field of a dataclass, by field name."""
    source = inspect.getsource(cls)
    comments: dict[str, str] = {}
    current = None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 4 and current is None:
            current = tok.string
        elif tok.type == tokenize.COMMENT and current:
            comments[current] = tok.string.lstrip("# ").strip()
        elif tok.type in (tokenize.NEWLINE, tokenize.NL):
            current = None
    return comments


def params_table(cls: type, leave_out: set[str] = frozenset()) -> str:
    """A dataclass's fields with their defaults and the comment beside each in the code."""
    comments = _field_comments(cls)
    rows = [[f"`{f.name}`", f"`{f.default!r}`", comments.get(f.name, "")]
            for f in dataclasses.fields(cls) if f.name not in leave_out]
    return _table(["parameter", "default", "what"], rows)


def frame_params() -> str:
    from verify.media.frames import FrameParams

    return params_table(FrameParams)


def select_params() -> str:
    """The selector's own tuning: the fields of ``SelectParams`` that ``FrameParams`` does not set."""
    from verify.media.frames import FrameParams
    from verify.media.select import SelectParams

    return params_table(SelectParams, {f.name for f in dataclasses.fields(FrameParams)})


def module_constants(module_name: str, names: list[str]) -> str:
    """Module-level constants with the comment beside each in the code."""
    module = importlib.import_module(module_name)
    comments: dict[str, str] = {}
    current = None  # the name the line being read starts with
    for tok in tokenize.generate_tokens(io.StringIO(inspect.getsource(module)).readline):
        if tok.type == tokenize.NAME and tok.start[1] == 0:
            current = tok.string
        elif tok.type == tokenize.COMMENT and tok.start[1] > 0 and current:
            comments.setdefault(current, tok.string.lstrip("# ").strip())
    return _table(["constant", "value", "what"],
                  [[f"`{n}`", f"`{getattr(module, n)!r}`", comments.get(n, "")] for n in names])


# --- the code's layout --------------------------------------------------------------------------------------------

def _third_party(path: Path) -> list[str]:
    """The top-level packages a module imports that are neither the standard library nor verify."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in ("verify", "__future__"):
                found.add(top)
    return sorted(found)


def modules() -> str:
    """Every module of the verify package: the first line of its docstring and the libraries it imports."""
    import verify

    rows = []
    for info in sorted(pkgutil.walk_packages(verify.__path__, "verify."), key=lambda m: m.name):
        if info.ispkg or info.name.endswith("__main__"):
            continue
        path = Path(importlib.util.find_spec(info.name).origin)
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        first = doc.split("\n\n")[0].replace("``", "`")
        libs = ", ".join(_third_party(path))
        rows.append([f"`{info.name.removeprefix('verify.').replace('.', '/')}`", first, libs])
    return _table(["module", "what it is", "libraries it imports"], rows)


def records() -> str:
    """The typed records of ``verify.records`` that flow between the stages."""
    import verify.records as rec

    rows = [[f"`{name}`", (cls.__doc__ or "").strip().split("\n")[0].replace("``", "`"),
             ", ".join(f.name for f in dataclasses.fields(cls))]
            for name, cls in vars(rec).items()
            if dataclasses.is_dataclass(cls) and cls.__module__ == rec.__name__]
    return _table(["record", "what", "fields"], rows)


# --- the README's own list of what is missing ---------------------------------------------------------------------

def not_built_yet() -> str:
    """The README's "Not built yet" section, so the list is kept in one place and shown in both."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"^## Not built yet\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not found:
        raise ValueError("README.md has no '## Not built yet' section")
    return re.sub(r"\]\(docs/([^)]*)\)", r"](\1)", found.group(1).strip())


BLOCKS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "exit-codes": exit_codes,
    "merge-rules": merge_rules,
    "vocabulary": vocabulary,
    "verdict-values": verdict_values,
    "frame-params": frame_params,
    "select-params": select_params,
    "match-constants": lambda: module_constants("verify.media.match", ["STRONG", "LINK", "CANDIDATE", "MIN_QUALITY",
                                                                       "SCALES", "SPEEDS"]),
    "modules": modules,
    "records": records,
    "not-built-yet": not_built_yet,
}
_BLOCK = re.compile(r"^<!-- generated: ([a-z-]+) -->$", re.M)
_VALUE = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*(?:\|\s*(\w+)\s*)?\}\}")


def value(path: str) -> Any:
    """The object at a dotted path: the longest importable module, then attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


def _show(obj: Any, how: str | None) -> str:
    if how == "percent":
        return f"{obj * 100:g} %"
    if how == "count":
        return f"{obj:,}"
    if how is not None:
        raise ValueError(f"unknown format {how!r}")
    if isinstance(obj, (tuple, list)):
        return ", ".join(_show(o, None) for o in obj)
    if isinstance(obj, float):
        return f"{obj:g}"
    return str(obj)


def render(markdown: str) -> str:
    """A page's Markdown with its generated blocks and values filled in."""
    def block(m: re.Match) -> str:
        if m.group(1) not in BLOCKS:
            raise KeyError(f"unknown generated block {m.group(1)!r}; known: {', '.join(BLOCKS)}")
        return BLOCKS[m.group(1)]()

    markdown = _BLOCK.sub(block, markdown)
    return _VALUE.sub(lambda m: _show(value(m.group(1)), m.group(2)), markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:  # MkDocs hook
    return render(markdown)
