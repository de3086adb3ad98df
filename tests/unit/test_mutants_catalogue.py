"""`make mutants` plants each catalogued bug by replacing one exact line: a refactor that moves or
rewrites that line would make the mutant silently fail to apply, so the catalogue is checked."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_mutant_still_finds_its_line_once_and_its_tests_exist():
    spec = importlib.util.spec_from_file_location("lxn_mutants", ROOT / "tests" / "mutants.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["lxn_mutants"] = module  # dataclasses look the module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["lxn_mutants"]
    stale = []
    for mutant in module.MUTANTS:
        found = (ROOT / mutant.path).read_text().count(mutant.old)
        if found != 1 or mutant.old == mutant.new:
            stale.append(f"{mutant.name}: its line is in {mutant.path} {found} times")
        stale += [f"{mutant.name}: no test file {t}" for t in mutant.tests if not (ROOT / t.split("::")[0]).is_file()]
        stale += [f"{mutant.name}: no test {t}" for t in mutant.tests if "::" in t and (ROOT / t.split("::")[0]).is_file()
                  and f"def {t.split('::')[1].split('[')[0]}(" not in (ROOT / t.split("::")[0]).read_text()]
    assert len(module.MUTANTS) >= 50 and stale == []
