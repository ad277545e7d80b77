"""What a run is read as: leaderboard tables (Markdown, CSV, HTML), reports with figures, submission
bundles, their verification and the public board. Imports ``engine`` (to re-run cells), ``results``,
``planning`` and the plugin API, never ``cli``."""
