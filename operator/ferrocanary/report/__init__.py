"""Verdict reports: Markdown and plots from a canary's blocks and the judge's looks at them."""
