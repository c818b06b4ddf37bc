"""The README's configuration table is the generated one: docs and code cannot drift."""
from pathlib import Path

from extender.core.settings import markdown_table

README = Path(__file__).parents[2] / "README.md"


def test_readme_configuration_table_is_generated_from_the_options() -> None:
    assert markdown_table() in README.read_text(), "run scripts/update-readme"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (README.parent / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci == "./scripts/test"
    assert "./scripts/test" in README.read_text()
