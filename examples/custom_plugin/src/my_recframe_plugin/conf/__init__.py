"""Config groups this plugin adds to recframe (an importable package, so ``pkg://`` can find it)."""
