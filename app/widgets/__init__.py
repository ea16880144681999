"""Small custom components (vanilla JS, no external resources)."""

from app.widgets.gallery import ThumbGallery
from app.widgets.keys import KeyListener, kbd
from app.widgets.memory import BrowserMemory
from app.widgets.stage import CutoutStage
from app.widgets.table import data_table

__all__ = ["BrowserMemory", "CutoutStage", "KeyListener", "ThumbGallery", "data_table", "kbd"]
