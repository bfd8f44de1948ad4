"""The call logic: pure routing decisions, plans and the facts they read (no socket, query or clock)."""
