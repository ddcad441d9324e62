"""Audio to notes: pitched stems (:mod:`.pitched`), drums (:mod:`.drums`), tempo and key.

Each sub-module is imported on demand; importing this package loads nothing heavy.
"""
