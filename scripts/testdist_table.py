"""Write README.md's table of top-1 on shifted test distributions for every release in releases/.

Each row is measured by ``ltzoo.evaluation.compare`` (the same numbers as the ``ltzoo validate ... --test-dist all``
command printed beside it) and the table replaces what sits between the ``testdist`` markers.

    python scripts/testdist_table.py [--releases releases] [--readme README.md]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ltzoo.evaluation.compare import compare, comparison_table

BEGIN, END = "<!-- testdist:begin -->", "<!-- testdist:end -->"


def release_names(releases: Path) -> list[str]:
    """The ``name.tag`` of every release folder (one holding model.safetensors), sorted."""
    return sorted(path.parent.name for path in releases.glob("*/model.safetensors"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", default="releases", type=Path)
    parser.add_argument("--readme", default="README.md", type=Path)
    args = parser.parse_args(argv)
    names = release_names(args.releases)
    if not names:
        print(f"error: no release folder with model.safetensors under {args.releases}", file=sys.stderr)
        return 2
    table = comparison_table(compare(names, releases_dir=args.releases), markdown=True, commands=True)
    text = args.readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        print(f"error: {args.readme} needs one {BEGIN} ... {END} region", file=sys.stderr)
        return 2
    head, rest = text.split(BEGIN)
    args.readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")
    print(f"wrote the shifted test distribution table of {len(names)} releases to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
