"""Running cells: the runner and its stages, the content-addressed stage cache, the guards around plugin
calls, process-wide state, the executors (local, isolated workers, Ray) and the tuner. Imports ``results``
(cell records), ``planning`` and the plugin API, never ``board`` or ``cli``."""
