"""Test fixtures that ship with the package: random-weight models of real architectures and
locally trained tokenizers (`tiny`), the demo models and study behind `demo-base` /
`demo-chat` (`demo`), and tables simulated with known truth for the estimators (`calibration`,
what bench/calibration.py replicates and tests/test_bench_records.py fingerprints)."""
