"""Root conftest: keeps the test run to `tests/`.

The example experiments and the benchmarks are programs, not test modules; a bare
`pytest` at the top level must not import them.
"""

collect_ignore = ["example_project", "benchmarks"]
