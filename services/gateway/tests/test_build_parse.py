"""Dockerfile parsing, word processing and .dockerignore matching (pure functions)."""

from __future__ import annotations

import pytest

from teu_api.dockerignore import Ignore
from teu_api.errors import InvalidArgument
from teu_gateway.build import words
from teu_gateway.build.dockerfile import parse


def test_continuations_comments_and_forms() -> None:
    df = parse(
        "# syntax=docker/dockerfile:1\n"
        "ARG V=1\n"
        "FROM busybox AS Base\n"
        "RUN echo a \\\n"
        "# a comment inside\n"
        "\n"
        "    && echo b\n"
        'CMD ["sh", "-c", "x"]\n'
        "copy --chown=1:2 a b\n"
    )
    assert [a.text for a in df.global_args] == ["V=1"]
    [stage] = df.stages
    assert (stage.base, stage.name) == ("busybox", "base")
    run, cmd, copy = stage.instructions
    assert run.text == "echo a     && echo b" and run.exec is None
    assert cmd.exec == ("sh", "-c", "x")
    assert copy.keyword == "COPY" and copy.flags == {"chown": "1:2"} and copy.text == "a b"


def test_escape_directive_and_heredoc() -> None:
    df = parse("# escape=`\nFROM x\nRUN echo a `\n  b\nRUN <<-EOF cat\n\techo hi\n\tEOF\n")
    first, second = df.stages[0].instructions
    assert df.escape == "`" and first.text == "echo a   b"
    assert second.heredocs[0].name == "EOF" and second.heredocs[0].content == "echo hi\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN x\n", "no build stage"),
        ("FROM a\nNOPE x\n", "unknown instruction: NOPE"),
        ("FROM a\nCOPY --bogus=1 a b\n", "unknown flag: --bogus"),
        ("FROM a AS x\nFROM b AS x\n", "duplicate name"),
        ("# escape=!\nFROM a\n", "invalid escape token"),
        ("FROM a\nRUN <<EOF\nno end\n", "unterminated heredoc"),
        ("", "no FROM"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A", "1"),
        ("${A}b", "1b"),
        ("'$A'", "$A"),
        ('"$A $E"', "1 "),
        (r"\$A", "$A"),
        ("${E:-def}", "def"),
        ("${EMPTY:-def}", "def"),
        ("${EMPTY-def}", ""),
        ("${A:+alt}", "alt"),
        ("${E:+alt}", ""),
        ("${E:-${A}x}", "1x"),
        ("a$", "a$"),
    ],
)
def test_word_substitution(text: str, expected: str) -> None:
    assert words.word(text, {"A": "1", "EMPTY": ""}) == expected


def test_words_split_outside_quotes_only() -> None:
    assert words.words('a="b c" d=$A  e', {"A": "x y"}) == ["a=b c", "d=x y", "e"]
    with pytest.raises(InvalidArgument, match="E: must be set"):
        words.word("${E:?must be set}", {})


def test_dockerignore_rules() -> None:
    ig = Ignore("# c\n*.log\n**/tmp\n/build\n!build/keep\ndocs/*/draft?\n")
    assert ig.excludes("a.log") and not ig.excludes("sub/a.log")
    assert ig.excludes("tmp") and ig.excludes("x/y/tmp/file")
    assert ig.excludes("build/out") and not ig.excludes("build/keep")
    assert ig.excludes("docs/a/draft1") and not ig.excludes("docs/a/b/draft1")
    assert not ig.excludes("Dockerfile")
