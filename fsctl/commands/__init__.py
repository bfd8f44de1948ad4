"""Click commands, one module per noun; each parses, calls a service, prints."""
