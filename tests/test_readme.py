"""The README's promises that can drift: the generated model table and the two commands."""

from pathlib import Path

import hf_vision_zoo.registry as registry

README = Path(__file__).parents[1] / "README.md"


def test_model_table_is_current():
    text = README.read_text()
    table = text.split("<!-- models:start -->\n", 1)[1].split("\n<!-- models:end -->", 1)[0]
    assert table == registry.model_table(), "run: python -c \"import hf_vision_zoo.registry as r; r.update_readme_table('README.md')\""
    assert len(table.splitlines()) == 2 + len(registry.list_models())


def test_readme_names_the_two_commands_the_makefile_has():
    text = README.read_text()
    makefile = (README.parent / "Makefile").read_text()
    for target in ("demo", "test"):
        assert f"make {target}" in text
        assert f"\n{target}:" in makefile
    assert "\nmake test\n" in (README.parent / ".ci" / "run").read_text() + "\n"
