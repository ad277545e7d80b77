"""What to run: a suite file, the plugins' parameters and tuned values, and the planner that expands them
into cells and stage specs. Imports only the plugin API (``dememo``'s top-level modules)."""
