"""The offline end-to-end demo ``hggt demo``: data, pipeline (over the public tools), report; training YAMLs."""
