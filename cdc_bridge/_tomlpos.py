"""Where each key of a TOML document is: key path -> line number, for error messages.

``tomllib`` does not report positions, so this is a small line scanner that understands
tables, arrays of tables, dotted and quoted keys, multi-line strings and multi-line arrays /
inline tables (whose inner keys get the line of the key that opened them).
"""

from __future__ import annotations

Path = tuple[str | int, ...]

__all__ = ["Path", "key_lines"]


def _split_key(text: str) -> list[str]:
    """``a."b.c".'d'`` -> ``["a", "b.c", "d"]`` (whitespace around dots ignored)."""
    parts: list[str] = []
    buf = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            end = text.find(ch, i + 1)
            if end < 0:
                end = len(text)
            buf += text[i + 1 : end]
            i = end + 1
            continue
        if ch == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
        i += 1
    parts.append(buf.strip())
    return parts


def _key_end(line: str) -> int:
    """Index of the ``=`` that ends the key of a key/value line, or -1."""
    i = 0
    while i < len(line):
        ch = line[i]
        if ch in "\"'":
            end = line.find(ch, i + 1)
            if end < 0:
                return -1
            i = end + 1
            continue
        if ch == "=":
            return i
        if ch == "#":
            return -1
        i += 1
    return -1


class _Scanner:
    """Tracks strings and bracket depth across the value part of lines."""

    def __init__(self) -> None:
        self.ml: str | None = None  # open multi-line string delimiter
        self.depth = 0

    def feed(self, text: str) -> None:
        i = 0
        n = len(text)
        while i < n:
            if self.ml is not None:
                end = text.find(self.ml, i)
                if end < 0:
                    return
                i = end + 3
                self.ml = None
                continue
            ch = text[i]
            if ch == "#":
                return
            if text.startswith('"""', i) or text.startswith("'''", i):
                self.ml = text[i : i + 3]
                i += 3
                continue
            if ch == '"':
                i += 1
                while i < n and text[i] != '"':
                    i += 2 if text[i] == "\\" else 1
                i += 1
                continue
            if ch == "'":
                end = text.find("'", i + 1)
                i = n if end < 0 else end + 1
                continue
            if ch in "[{":
                self.depth += 1
            elif ch in "]}":
                self.depth -= 1
            i += 1

    @property
    def inside(self) -> bool:
        return self.ml is not None or self.depth > 0


def key_lines(text: str) -> dict[Path, int]:
    """Map every table header and key path (``("sources", 1, "dsn")``) to its 1-based line."""
    lines: dict[Path, int] = {}
    aot: dict[Path, int] = {}  # resolved array-of-tables path -> last index
    current: Path = ()
    scan = _Scanner()

    def resolve(parts: list[str], array: bool) -> Path:
        path: Path = ()
        for i, part in enumerate(parts):
            path = (*path, part)
            last = i == len(parts) - 1
            if last and array:
                aot[path] = aot.get(path, -1) + 1
                path = (*path, aot[path])
            elif path in aot:
                path = (*path, aot[path])
        return path

    for lineno, raw in enumerate(text.splitlines(), 1):
        if scan.inside:
            scan.feed(raw)
            continue
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith("[["):
            end = s.find("]]")
            if end > 0:
                current = resolve(_split_key(s[2:end]), array=True)
                lines.setdefault(current, lineno)
            continue
        if s.startswith("["):
            end = s.find("]")
            if end > 0:
                current = resolve(_split_key(s[1:end]), array=False)
                lines.setdefault(current, lineno)
            continue
        eq = _key_end(s)
        if eq < 0:
            continue
        keys = _split_key(s[:eq])
        path = (*current, *keys)
        lines.setdefault(path, lineno)
        scan.feed(s[eq + 1 :])
    return lines
