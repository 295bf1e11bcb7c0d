"""Stage runners: each runs one real tool and returns a StageResult; parsing is a separate pure function."""
