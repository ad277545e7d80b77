"""Quality-assurance tools that test dememo itself, kept out of the installed package: fault scenarios
(``faults``: kills, concurrency, corruption, full disks, isolation, hostile bundles), misbehaving plugins
(``misbehaving``) and input fuzzers (``fuzz``, needs hypothesis). ``tests/`` runs them small and
``benchmarks/bench_reliability.py`` runs them large; a plugin author needs ``dememo.testing`` instead."""
