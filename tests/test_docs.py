"""The documentation: the site builds strictly, documents every command and option, and the README stays short.

Like sqlite-utils' tests/test_docs.py: a command or option without help, or missing from the generated
reference, fails here rather than going unnoticed.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest

from verify.cli import main

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200

try:
    import material  # noqa: F401  (the theme)
    import mkdocs  # noqa: F401
    HAVE_MKDOCS = True
except ImportError:
    HAVE_MKDOCS = False
needs_mkdocs = pytest.mark.skipif(not HAVE_MKDOCS, reason="mkdocs-material is not installed (setup.cfg's test extra "
                                                          "installs it: run scripts/setup.sh)")


def _hooks():
    spec = importlib.util.spec_from_file_location("verify_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


COMMANDS = _hooks().commands(main)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `mkdocs build --strict` writes it."""
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's banner about MkDocs 2, not a problem of ours
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.fixture(scope="module")
def cli_page(site) -> str:
    return html.unescape((site / "cli.html").read_text())


@needs_mkdocs
def test_the_site_builds_strictly_with_nothing_fetched_from_the_network(site):
    pages = list(site.glob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        text = page.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page.name
        assert "googletagmanager" not in text, page.name
        assert "<!-- generated:" not in text and "{{ verify." not in text, f"{page.name}: a block was not filled in"


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{path} has no help text"


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_option_has_help(path, cmd):
    missing = [p.name for p in cmd.params if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()]
    assert not missing, f"{path}: options without help: {missing}"


@needs_mkdocs
@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_and_option_is_in_the_built_reference(path, cmd, cli_page):
    assert f'id="{path.replace(" ", "-")}"' in cli_page, f"{path} has no section in the CLI reference"
    section = cli_page.split(f'id="{path.replace(" ", "-")}"', 1)[1]
    following = [p for p, _ in COMMANDS if p != path]
    ends = [section.find(f'id="{p.replace(" ", "-")}"') for p in following]
    section = section[:min([e for e in ends if e >= 0], default=len(section))]
    for param in cmd.params:
        if isinstance(param, click.Option) and param.hidden:
            continue
        for opt in param.opts if isinstance(param, click.Option) else [param.human_readable_name]:
            assert opt in section, f"{path}: {opt} is not in its section of the CLI reference"


def test_the_readme_stays_short_and_keeps_the_two_commands():
    text = (ROOT / "README.md").read_text()
    lines = text.count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/ (at most {README_MAX_LINES})"
    assert "bash scripts/demo.sh" in text and "bash scripts/test.sh" in text
    assert "\n## Not built yet\n" in text, "the README keeps its 'Not built yet' section"


def test_the_readme_links_to_pages_that_exist():
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\((docs/[^)#]+)", text)
    assert targets
    for target in targets:
        assert (ROOT / target).is_file(), f"README.md links to {target}, which does not exist"


def test_the_merge_rules_are_not_copied_by_hand_into_the_docs():
    from verify.verdicts.merge import RULES

    sources = {p: p.read_text() for p in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
    for rule in RULES:
        head = rule[:60]
        for path, text in sources.items():
            assert head not in " ".join(text.split()), f"{path.name} copies a merge rule; use <!-- generated: merge-rules -->"


def test_every_generated_block_renders():
    hooks = _hooks()
    for name, make in hooks.BLOCKS.items():
        assert make().strip(), name
    with pytest.raises(KeyError):
        hooks.render("<!-- generated: no-such-block -->")
    with pytest.raises((AttributeError, ImportError)):
        hooks.render("{{ verify.media.select.SelectParams.no_such_parameter }}")


def test_the_defaults_page_shows_the_code_s_values():
    from verify.media.frames import FrameParams
    from verify.media.select import SelectParams

    hooks = _hooks()
    table = hooks.frame_params()
    assert f"| `cut_threshold` | `{FrameParams.cut_threshold!r}` |" in table
    share = hooks.render("{{ verify.media.select.SelectParams.subject_share | percent }}")
    assert share == f"{SelectParams.subject_share * 100:g} %"
