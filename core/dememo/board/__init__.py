"""What a run is read as: leaderboard tables (Markdown, CSV, HTML), reports with figures, submission
bundles, their verification and the public board. Imports ``run`` (to re-run cells), ``results``,
``plan`` and the plugin API, never ``cli``."""
