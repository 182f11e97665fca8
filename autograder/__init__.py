"""Instructor tooling for the cnnlab course: student edition, nbgrader build, sandboxed grading.

Run ``python -m autograder --help``; the walk-through is in the README,
section "Grading (for instructors)".
"""
