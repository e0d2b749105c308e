"""The docs in docs/ are the only documentation the code cites: every `docs/<page>.md §N` reference in the code
names a page and a section that exist, and nothing cites a file outside the repository."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from ltzoo.registry import METHODS

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("ltzoo", "training", "benchmarks", "scripts", "tests", "docs", "hubconf.py", "README.md", "pyproject.toml")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".sh", ".toml", ".txt", ".cfg"}
METHOD_PAGES = ("baselines", "smcl", "lsm", "concutmix", "dscl", "la", "cmo")

HEADING = re.compile(r"^(#{1,6})\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)
REF = re.compile(r"\bdocs/(?P<page>[\w/.-]+?\.md)")
# after a page: `§3.2`, `§8–§9`, `§3.2–3.3`, `, §6.6`, `and §6.5`, `/ §5`, `steps 2, 4–6`, `item 10`, `tests 6–7`
TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<dash>[–-])\s*§?(?P<rsec>\d+(?:\.\d+)*)"
    r"|(?:(?:,|/|and)\s*)?§(?P<sec>\d+(?:\.\d+)*)"
    r"|(?P<kind>steps?|items?|tests?)\s+(?P<lo>\d+)(?:\s*[–-]\s*(?P<hi>\d+))?"
    r"|(?:,|and)\s*(?P<more>\d+)(?:\s*[–-]\s*(?P<morehi>\d+))?(?![\d.])"
    r")"
)
# names of the specs that lived outside the repository, and loose mentions of them
FORBIDDEN = re.compile(
    r"(?<![/\w.])(?<!\]\()(?:smcl|lsm|dscl|bcl_concutmix|baselines|hub|DESIGN|STYLE)\.md\b"
    r"|(?<![/\w.])(?:smcl|lsm|dscl|bcl_concutmix|baselines)(?: spec §?| §)\d"
    r"|shared/specs|\bspecs?(?:'s|')|\bthe specs\b|\bspec §?\d",
    re.IGNORECASE,
)


def scanned_files() -> list[Path]:
    """The repository's text files, but this one (its examples are made up on purpose)."""
    here, out = Path(__file__).resolve(), []
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else path.rglob("*") if path.is_dir() else []
        out += [p for p in candidates
                if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts and p.resolve() != here]
    return sorted(out)


def sections(markdown: str) -> dict[str, str]:
    """Section number -> its body (up to the next heading of the same or a higher level)."""
    heads = list(HEADING.finditer(markdown))
    out = {}
    for i, head in enumerate(heads):
        level = len(head.group(1))
        end = next((h.start() for h in heads[i + 1:] if len(h.group(1)) <= level), len(markdown))
        out[head.group(2)] = markdown[head.end():end]
    return out


def has_item(secs: dict[str, str], section: str, n: int) -> bool:
    """Step / item n of a section: a subsection `section.n` or a numbered list item `n.` in its body."""
    return f"{section}.{n}" in secs or re.search(rf"^\s*{n}\.\s", secs.get(section, ""), re.MULTILINE) is not None


def broken_references(text: str, root: Path) -> list[str]:
    """Every `docs/<page>.md §N [step k]` in `text` whose page, section or step does not exist under `root`."""
    broken = []
    for ref in REF.finditer(text):
        page = root / "docs" / ref.group("page")
        if not page.is_file():
            broken.append(f"docs/{ref.group('page')} (no such page)")
            continue
        secs, section, items, pos = sections(page.read_text(encoding="utf-8")), None, False, ref.end()
        while token := TOKEN.match(text, pos):
            pos = token.end()
            if token.group("sec") or token.group("rsec"):
                section, items = token.group("sec") or token.group("rsec"), False
                if section not in secs:
                    broken.append(f"docs/{ref.group('page')} §{section} (no such section)")
            elif section is None or (token.group("more") and not items):
                break
            else:
                lo = int(token.group("lo") or token.group("more"))
                hi = int(token.group("hi") or token.group("morehi") or lo)
                items = True
                broken += [f"docs/{ref.group('page')} §{section} item {n} (no such step or item)"
                           for n in range(lo, hi + 1) if not has_item(secs, section, n)]
    return broken


def test_every_docs_reference_in_the_code_names_an_existing_page_and_section():
    broken = [f"{path.relative_to(ROOT)}: {b}" for path in scanned_files()
              for b in broken_references(path.read_text(encoding="utf-8"), ROOT)]
    assert not broken, "\n".join(broken)


def test_nothing_cites_a_spec_outside_the_repository():
    hits = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}" for path in scanned_files()
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if FORBIDDEN.search(line)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("text", ["(smcl.md §3.2)", "baselines §6.3", "Baselines spec §2", "bcl_concutmix spec 3.5",
                                  'DESIGN.md "Data roots"', "see /work/shared/specs/lsm.md", "the spec's hand cases"])
def test_the_out_of_repo_pattern_catches_every_form_the_code_used(text):
    assert FORBIDDEN.search(text)


@pytest.mark.parametrize("text", ["docs/methods/smcl.md §3.2", "[SMCL](smcl.md)", "SMCL 256 on an augmented step",
                                  "heads_spec(64)", "He et al. 2016 §4.2"])
def test_the_out_of_repo_pattern_leaves_in_repo_references_and_prose_alone(text):
    assert not FORBIDDEN.search(text)


def test_a_missing_page_section_or_step_is_reported(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "p.md").write_text("# P\n\n## 3. Three\n\n1. one\n2. two\n\n### 3.2 Sub\n\n## 4. Four\n")
    assert broken_references("docs/p.md §3 steps 1–2, §3.2–§4", tmp_path) == []
    assert broken_references("docs/p.md §3.1", tmp_path) == ["docs/p.md §3.1 (no such section)"]
    assert broken_references("docs/p.md §3 step 3", tmp_path) == ["docs/p.md §3 item 3 (no such step or item)"]
    assert broken_references("docs/p.md §4 items 1-2", tmp_path) == [
        "docs/p.md §4 item 1 (no such step or item)", "docs/p.md §4 item 2 (no such step or item)"]
    assert broken_references("see docs/q.md", tmp_path) == ["docs/q.md (no such page)"]


def test_every_method_page_exists():
    missing = [p for p in METHOD_PAGES if not (ROOT / "docs" / "methods" / f"{p}.md").is_file()]
    assert not missing, f"method pages missing: {missing}"


def test_the_docs_index_names_every_registered_method():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    unnamed = [m for m in METHODS if f"`{m}`" not in index]
    assert not unnamed, f"methods not named in docs/README.md: {unnamed}"


MACHINE_PATH = re.compile(r"""(?:^|[\s"'(=`])/(?:work|home|root|tmp|Users|mnt|opt|srv)/""", re.MULTILINE)


def test_no_committed_record_names_a_path_of_the_machine_it_was_made_on():
    """Releases, results and docs are read on other machines: a path into this one (a data archive, a run dir) is
    noise there, and names who made it."""
    tracked = subprocess.run(["git", "ls-files", "releases", "results", "docs", "README.md"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    records = [ROOT / p for p in tracked if p.endswith((".json", ".md", ".txt", ".csv"))]
    assert records
    assert [str(p) for p in records if MACHINE_PATH.search(p.read_text())] == []
