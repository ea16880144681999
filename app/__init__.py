"""LatentSky web app (Panel). Imports the backend, never torch."""
