"""The book: run plans, content hashing, papermill execution and the Jupyter Book build."""
