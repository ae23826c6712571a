"""Campaign tools: patch selection, annotator packages, Label Studio exchange, label statistics plots."""
