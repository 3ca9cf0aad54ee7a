"""docs/architecture.md names every module of the package, so that a newcomer finds each one."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_is_named_in_the_architecture_doc():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    files = [f for folder in ("harness", "backends", "reports") for f in (ROOT / folder).rglob("*")
             if f.suffix in (".py", ".c") and f.name != "__init__.py" and "__pycache__" not in f.parts
             and not (folder == "harness" and f.relative_to(ROOT / folder).parts[0] in ("backends", "reports"))]
    assert len(files) > 80
    def names(f: Path) -> list[str]:  # `probe.py`, `linear/probe.py`, ..., `harness/problems/linear/probe.py`
        parts = f.relative_to(ROOT).parts
        return ["`" + "/".join(parts[i:]) + "`" for i in range(len(parts))]

    named = [f for f in files if any(n in doc for n in names(f))]
    missing = sorted(str(f.relative_to(ROOT)) for f in set(files) - set(named))
    assert not missing, f"docs/architecture.md does not name: {missing}"
