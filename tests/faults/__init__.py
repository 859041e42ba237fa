"""Fault injection: kills, interruptions, crashes, a full disk and bad input, each
trying to lose a recorded result or pay for a recorded call twice (issue 9)."""
