"""One line of help per config field, read from the comments beside the field in its source.

A recipe's `Config` documents its fields the way a keras-io example would, with comments:

    rotation: float = 0.02  # fraction of a full turn: +-7 degrees

    # Global average pooling: 98.8% on the MNIST test split, where `flatten` overfit.
    head: str = "avg"

The comment on the field's own line is its help; without one, the first sentence of the comment
block right above it (section headers, `# --- ...`, excepted). Where a subclass redefines a field,
its comment follows the base class's: `RecipeConfig` says what `batch_size` is, a recipe why its
default is 64. `--help` shows these, so the comments stay the one place a field is explained.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize


def field_help(cls: type) -> dict[str, str]:
    """`{field name: one line of help}` for the dataclass `cls`, from its source's comments.

    Fields without a comment (or classes whose source cannot be read) are left out.
    """
    parts: dict[str, list[str]] = {f.name: [] for f in dataclasses.fields(cls)}
    for klass in reversed(cls.__mro__):  # base classes first
        if dataclasses.is_dataclass(klass):
            for name, text in _comments(klass).items():
                if name in parts and text not in parts[name]:
                    parts[name].append(text)
    return {name: "; ".join(texts) for name, texts in parts.items() if texts}


def _comments(klass: type) -> dict[str, str]:
    """The help comments of the fields `klass` itself declares."""
    try:
        source = textwrap.dedent(inspect.getsource(klass))
    except (OSError, TypeError):
        return {}
    comments: dict[int, str] = {}  # line number -> comment text
    code_lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
        elif token.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            code_lines.add(token.start[0])
    body = ast.parse(source).body[0]
    out = {}
    for node in getattr(body, "body", []):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            text = comments.get(node.end_lineno) or _block_above(node.lineno, comments, code_lines)
            if text:
                out[node.target.id] = text
    return out


def _block_above(line: int, comments: dict[int, str], code_lines: set[int]) -> str:
    """The first sentence of the comment-only lines right above `line` ('' when none)."""
    block: list[str] = []
    line -= 1
    while line in comments and line not in code_lines:
        block.insert(0, comments[line])
        line -= 1
    if not block or block[0].startswith("---"):
        return ""
    text = " ".join(block)
    end = text.find(". ")
    return (text if end < 0 else text[:end]).rstrip(".")
