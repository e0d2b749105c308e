"""Write README.md's table of top-1 on shifted test distributions for every release in releases/.

Each row is measured by ``ltzoo.evaluation.compare`` (the same numbers as the ``ltzoo validate ... --test-dist all``
command printed beside it) and the table replaces what sits between the ``testdist`` markers.

    python scripts/testdist_table.py [--releases releases] [--readme README.md] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ltzoo.evaluation.compare import compare, comparison_table
from ltzoo.evaluation.report import release_names

BEGIN, END = "<!-- testdist:begin -->", "<!-- testdist:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", default="releases", type=Path)
    parser.add_argument("--readme", default="README.md", type=Path)
    parser.add_argument("--data-dir", help="dataset root (default: LTZOO_DATA, ../shared/data, torchvision's folder)")
    args = parser.parse_args(argv)
    names = release_names(args.releases)
    if not names:
        print(f"error: no release folder with model.safetensors under {args.releases}", file=sys.stderr)
        return 2
    text = args.readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        print(f"error: {args.readme} needs one {BEGIN} ... {END} region", file=sys.stderr)
        return 2
    models = compare(names, releases_dir=args.releases, data_dir=args.data_dir)
    table = comparison_table(models, markdown=True, commands=True)
    head, rest = text.split(BEGIN)
    args.readme.write_text(f"{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}")
    print(f"wrote the shifted test distribution table of {len(names)} releases to {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
