"""Runtimes: they loop, call the pipeline functions and move records along; no logic here."""
