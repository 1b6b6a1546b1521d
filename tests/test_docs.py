"""Every Python example in README.md and docs/**/*.md runs, as a reader would paste it.

The fenced ``python`` blocks (and ``pycon`` / ``>>>`` blocks) of one Markdown
file run in order in one shared namespace, as pasted into one session, in a
fresh temporary working directory with matplotlib's Agg backend.  Code is
compiled against the Markdown file's own line numbers, so a traceback points
at the line of the example that broke.  The namespace's ``__name__`` is not
``"__main__"``: a block that starts a server under ``if __name__ == "__main__":``
defines it without serving.

A block that cannot run in a test (it downloads data, say) carries an HTML
comment on the line before its fence, ``<!-- doctest: skip (reason) -->``; it
is still compiled, and the reason is required.  Bash, text and other blocks
are not run.
"""

from __future__ import annotations

import doctest
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON_LANGUAGES = {"python", "py", "python3"}
CONSOLE_LANGUAGES = {"pycon", "pydoctest"}
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\s]*)[^`]*$")
MARKER = re.compile(r"^\s*<!--\s*doctest:(?P<body>.*?)-->\s*$")
SKIP = re.compile(r"^\s*skip\b\s*(?P<reason>.*?)\s*$")
NAMESPACE_NAME = "docs_example"  # not "__main__": examples guarded by it define without serving


@dataclass
class Block:
    """One fenced code block of a Markdown file."""

    path: Path
    line: int  # 1-based line of the first code line (after the opening fence)
    language: str
    code: str
    skip: str | None  # the reason given by a skip marker, "" when it gives none

    @property
    def console(self) -> bool:
        return self.language in CONSOLE_LANGUAGES or (
            self.language in PYTHON_LANGUAGES | {""} and self.code.lstrip().startswith(">>>")
        )

    @property
    def runnable(self) -> bool:
        return self.language in PYTHON_LANGUAGES or self.console

    def where(self) -> str:
        return f"{_relative(self.path)}:{self.line}"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def parse_blocks(text: str, path: Path) -> list[Block]:
    """The fenced code blocks of Markdown ``text``, with the marker on the line before each.

    Raises ValueError on a ``doctest:`` marker that is not a skip, or on a fence
    left open, so a typo cannot silently disable an example.
    """
    lines = text.splitlines()
    blocks: list[Block] = []
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if not opening:
            n += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        language = opening["info"].lower()
        skip = None
        marker = MARKER.match(lines[n - 1]) if n else None
        if marker:
            directive = SKIP.match(marker["body"])
            if directive is None:
                raise ValueError(
                    f"{_relative(path)}:{n}: unknown doctest marker "
                    f"{lines[n - 1].strip()!r}; the one marker is "
                    "'<!-- doctest: skip (reason) -->'"
                )
            skip = directive["reason"].strip("() \t")
        body: list[str] = []
        end = n + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence[0] * len(fence)) and set(closing) == {fence[0]}:
                break
            # code inside a list item is indented like its fence
            raw = lines[end]
            body.append(raw[indent:] if raw[:indent].strip() == "" else raw.lstrip())
            end += 1
        else:
            raise ValueError(f"{_relative(path)}:{n + 1}: the {fence} fence is never closed")
        blocks.append(Block(path, n + 2, language, "\n".join(body) + "\n", skip))
        n = end + 1
    return blocks


def markdown_files() -> list[Path]:
    """README.md and every Markdown file under docs/, in a stable order."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [path for path in files if path.is_file()]


def _files_with_examples() -> list[Path]:
    return [
        path
        for path in markdown_files()
        if any(block.runnable for block in parse_blocks(path.read_text(encoding="utf-8"), path))
    ]


def _console_source(block: Block) -> str:
    """The statements of a ``>>>`` session, at the block's lines, for a syntax check."""
    lines = []
    for line in block.code.splitlines():
        stripped = line.lstrip()
        lines.append(
            stripped[4:]
            if stripped.startswith((">>> ", "... "))
            else ""
            if stripped in (">>>", "...") or not stripped.startswith((">>>", "..."))
            else stripped[3:]
        )
    return "\n".join(lines) + "\n"


def _compile(block: Block, source: str):
    # padded so that line numbers in tracebacks are the Markdown file's
    return compile("\n" * (block.line - 1) + source, str(block.path), "exec")


def run_block(block: Block, namespace: dict) -> None:
    """Run one block in ``namespace``; raise AssertionError naming the Markdown line on failure."""
    if block.console:
        parser = doctest.DocTestParser()
        test = parser.get_doctest(block.code, namespace, block.where(), str(block.path), block.line - 1)
        runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        if runner.failures:
            raise AssertionError(f"{block.where()}: the session's output differs:\n" + "".join(report))
        return
    exec(_compile(block, block.code), namespace)


def _use_agg() -> None:
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg", force=True)


def _close_figures() -> None:
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def run_markdown(path: Path) -> None:
    """Run the examples of one Markdown file in order, in one namespace, in the current folder."""
    if path.name == "dask.md":  # the page of the optional dask extra
        pytest.importorskip("dask")
    blocks = [b for b in parse_blocks(path.read_text(encoding="utf-8"), path) if b.runnable]
    namespace: dict = {"__name__": NAMESPACE_NAME}
    try:
        with warnings.catch_warnings():
            # an example that uses a deprecated fastrec API fails here, not in readers' hands
            warnings.filterwarnings("error", category=DeprecationWarning, module=NAMESPACE_NAME)
            warnings.filterwarnings("error", category=FutureWarning, module=NAMESPACE_NAME)
            for block in blocks:
                if block.skip is not None:
                    assert block.skip, (
                        f"{block.where()}: a skip marker needs a reason: "
                        "<!-- doctest: skip (why it cannot run in a test) -->"
                    )
                    _compile(block, _console_source(block) if block.console else block.code)
                    continue
                try:
                    run_block(block, namespace)
                except AssertionError:
                    raise
                except BaseException as exc:  # SystemExit too: an example must not exit
                    raise AssertionError(
                        f"the example at {block.where()} raised {type(exc).__name__}: {exc}"
                    ) from exc
    finally:
        _close_figures()


@pytest.mark.parametrize("path", _files_with_examples(), ids=_relative)
def test_markdown_examples_run(path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    _use_agg()
    run_markdown(path)


def test_readme_and_guide_examples_are_collected():
    collected = {_relative(path) for path in _files_with_examples()}
    assert {"README.md", "docs/guide.md"} <= collected
    readme = parse_blocks((ROOT / "README.md").read_text(encoding="utf-8"), ROOT / "README.md")
    runnable = [b for b in readme if b.runnable]
    # every python fence of the README is found, at the line after its fence
    fences = [
        n + 2
        for n, line in enumerate((ROOT / "README.md").read_text().splitlines())
        if line.strip() == "```python"
    ]
    assert [b.line for b in runnable] == fences


def test_parser_finds_markers_sessions_and_indented_blocks(tmp_path):
    text = "\n".join(
        [
            "# Title",  # 1
            "```python",  # 2
            "x = 1",  # 3
            "```",  # 4
            "<!-- doctest: skip (downloads MovieLens) -->",  # 5
            "```python",  # 6
            "data = fetch()",  # 7
            "```",  # 8
            "- a list item:",  # 9
            "",  # 10
            "  ```pycon",  # 11
            "  >>> x + 1",  # 12
            "  2",  # 13
            "  ```",  # 14
            "```bash",  # 15
            "echo no",  # 16
            "```",  # 17
            "<!-- doctest: skip -->",  # 18
            "````py",  # 19
            "```",  # 20
            "y = 2",  # 21
            "````",  # 22
        ]
    )
    blocks = parse_blocks(text, tmp_path / "page.md")
    assert [(b.line, b.language, b.skip, b.runnable) for b in blocks] == [
        (3, "python", None, True),
        (7, "python", "downloads MovieLens", True),
        (12, "pycon", None, True),
        (16, "bash", None, False),
        (20, "py", "", True),
    ]
    assert blocks[2].code == ">>> x + 1\n2\n" and blocks[2].console
    assert blocks[4].code == "```\ny = 2\n"
    namespace: dict = {}
    run_block(blocks[0], namespace)
    run_block(blocks[2], namespace)
    assert namespace["x"] == 1
    wrong = parse_blocks("```pycon\n>>> 1 + 1\n3\n```\n", tmp_path / "w.md")[0]
    with pytest.raises(AssertionError, match=r"w.md:2: the session's output differs"):
        run_block(wrong, {})
    with pytest.raises(ValueError, match=r"page.md:1: unknown doctest marker"):
        parse_blocks("<!-- doctest: skp (typo) -->\n```python\npass\n```\n", tmp_path / "page.md")
    with pytest.raises(ValueError, match="never closed"):
        parse_blocks("```python\npass\n", tmp_path / "page.md")


def test_failing_example_names_its_markdown_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n```python\nx = 1\ny = x / 0\n```\n")
    block = parse_blocks(page.read_text(), page)[0]
    with pytest.raises(ZeroDivisionError) as info:
        run_block(block, {})
    frame = info.traceback[-1]
    assert frame.path == page and frame.lineno + 1 == 5  # lineno is 0-based


def test_runner_shares_one_namespace_and_refuses_bad_examples(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nfrom pathlib import Path\nPath('made.txt').write_text('x')\n```\n"
        "<!-- doctest: skip (needs the network) -->\n```python\nraise RuntimeError\n```\n"
        "```python\nassert Path('made.txt').read_text() == 'x'\n"
        "if __name__ == '__main__':\n    raise SystemExit('served')\n```\n"
    )
    run_markdown(page)  # the skipped block is only compiled; the guarded one does not serve
    page.write_text("<!-- doctest: skip -->\n```python\npass\n```\n")
    with pytest.raises(AssertionError, match="page.md:3: a skip marker needs a reason"):
        run_markdown(page)
    page.write_text("<!-- doctest: skip (offline) -->\n```python\nx = (\n```\n")
    with pytest.raises(SyntaxError):
        run_markdown(page)
    page.write_text("```python\nimport sys\nsys.exit(1)\n```\n")
    with pytest.raises(AssertionError, match="page.md:2 raised SystemExit"):
        run_markdown(page)
    # an example on a deprecated fastrec API fails the test
    page.write_text(
        "```python\nfrom fastrec.datasets import Interactions\n"
        "data = Interactions.from_arrays([1], [2], [3.0])\n"
        "data.item_labels([0])\n```\n"
    )
    with pytest.raises(AssertionError, match="page.md:2 raised DeprecationWarning"):
        run_markdown(page)
