"""webframe's benchmark harness: webframe against raw Tornado, driven by wrk.

Run ``python -m bench`` from the repository root; ``python -m bench --help`` lists
the flags. The package is not installed with webframe.
"""
