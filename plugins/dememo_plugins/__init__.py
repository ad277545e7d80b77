"""First-party dememo methods. Each module holds one method and registers it through the ``dememo``
entry-point group in the root ``pyproject.toml``, exactly as a third-party plugin would."""
