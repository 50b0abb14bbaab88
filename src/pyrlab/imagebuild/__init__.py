"""Building the image graph: what needs building and why (planner), doing it in
dependency order (executor), moving tags only after success (tagging), a log file per
build (logs) and what the user sees meanwhile (progress)."""
