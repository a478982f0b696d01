"""EurekAgent: metric-driven discovery with a sealed grader, sandboxed approaches and budgets."""
