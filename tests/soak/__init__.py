"""The randomized soak (issue 11): real processes, real engine, seeded chaos, invariants
checked at settled checkpoints. Run by ``make test`` (marker ``soak``) and standalone:
``python -m tests.soak.driver --help``."""
