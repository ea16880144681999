"""The evaluation report is a product like the others: made by ensure, with a lineage record,
outdated when its inputs change; and the pipeline never imports the jobs."""

from __future__ import annotations

from pathlib import Path

from backend.pipeline.kinds import Target
from backend.pipeline.lineage import verify
from backend.pipeline.planner import plan
from backend.pipeline.runner import ensure, lineage
from backend.survey import Survey
from tests.unit.test_layering import REPO, _imported_modules
from tests.unit.test_pipeline_app_cache import add_encoder

PARAMS = {"evaluation": {"label_column": "size_class", "baselines": []}}


def test_evaluation_report_is_made_and_recorded(tiny_survey: Survey) -> None:
    encoder = add_encoder(tiny_survey, 1.0)
    target = Target("evaluation", "tiny", "task", "class")
    assert [i.key for i in plan("tiny", ["evaluation"], params=PARAMS).todo] == [
        f"embeddings/encoder-{encoder}", target.key
    ]  # fmt: skip
    ensure("tiny", ["evaluation"], "sync", params=PARAMS)
    record = lineage("tiny", "evaluation")
    assert record["params"]["label_column"] == "size_class" and verify(target)
    assert (target.directory / "report.md").is_file()
    assert not plan("tiny", ["evaluation"], params=PARAMS).todo
    new = add_encoder(tiny_survey, 2.0)  # another encoder in use: the report is outdated
    (item,) = [i for i in plan("tiny", ["evaluation"], params=PARAMS).todo if i.target == target]
    assert item.status == "outdated" and "encoder" in item.reason
    # without parameters: every report made is planned, and remade with its recorded ones
    (item,) = [i for i in plan("tiny", ["evaluation"]).todo if i.target == target]
    assert item.status == "outdated"
    ensure("tiny", ["evaluation"], "sync")
    again = lineage("tiny", "evaluation")
    assert again["inputs"]["encoder"] == new and again["params"] == record["params"]


def test_the_pipeline_never_imports_the_jobs() -> None:
    files = sorted((REPO / "backend" / "pipeline").glob("*.py"))
    offenders = {
        f"{Path(path).name}: {name}"
        for path in files
        for name in _imported_modules(path)
        if name == "backend.jobs" or name.startswith("backend.jobs.")
    }
    assert files and not offenders
