"""The tabs of the app: one Viewer per module."""
