"""crack-car: the on-car application. Never imports torch; runs on Python 3.9+."""
