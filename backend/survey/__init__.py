"""The survey store: images.zarr + catalog.parquet + survey.json per survey folder."""

from backend.survey.meta import SurveyError, SurveyMeta, validate_survey_name
from backend.survey.store import Survey, list_surveys, survey_path
from backend.survey.writer import SurveyWriter

__all__ = [
    "Survey",
    "SurveyError",
    "SurveyMeta",
    "SurveyWriter",
    "list_surveys",
    "survey_path",
    "validate_survey_name",
]
