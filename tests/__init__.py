"""recframe's test suite.

A regular package, so that ``tests`` names it in a test's subprocesses too, even where another
distribution installs a top-level ``tests`` package (smdebug-rulesconfig, a dependency of the
sagemaker SDK, does; a regular package there would win over a namespace package here).
"""
