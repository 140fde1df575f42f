"""Tables out: result types and columns, the writers, integrity, escaping, the results store, wells."""
