"""The gate's rules, free of I/O: the result and verdict models, the decision (`verdict.decide`), the defect
lifecycle, the waiver rules, fingerprints and the gate's errors. Nothing here reads a clock, a file or a database."""
