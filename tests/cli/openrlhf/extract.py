"""Reads OpenRLHF's example launch scripts (never copied into this repository) and prints, per
command, the OpenRLHF entry point and its flags as JSON lines: {"script", "entry", "args": [...]}.
Comments and shell lines around the command are dropped; `$VAR` values are kept as written."""
import json
import re
import shlex
import sys
from pathlib import Path


def commands(text):
    # Join continuation lines, drop comments, then find each openrlhf.cli.X and its arguments up
    # to the end of that logical command.
    lines = []
    for raw in text.splitlines():
        s = raw.split(" #")[0] if not raw.lstrip().startswith("#") else ""
        lines.append(s)
    joined = "\n".join(lines).replace("\\\n", " ")
    for m in re.finditer(r"openrlhf\.cli\.([a-z_]+)([^\n]*)", joined):
        rest = m.group(2)
        rest = rest.split("EOF")[0]
        if rest.count('"') % 2:  # the command sits inside a quoted string: it ends at the quote
            rest = rest[:rest.rindex('"')]
        try:
            args = shlex.split(rest, posix=True)
        except ValueError:
            args = rest.split()
        args = [a for a in args if a not in ("&&", "|", ";")]
        yield m.group(1), args


def main():
    for path in sys.argv[1:]:
        p = Path(path)
        for entry, args in commands(p.read_text(encoding="utf-8")):
            print(json.dumps({"script": p.parent.name + "/" + p.name if p.parent.name == "dotted" else p.name,
                              "entry": entry, "args": args}))


if __name__ == "__main__":
    main()
