"""Instructor tooling for the cnnlab course: student edition, nbgrader build, sandboxed grading.

Run ``python -m autograder --help``; the walk-through is in README_instructors.md.
"""
