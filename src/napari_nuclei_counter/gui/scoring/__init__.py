"""The *Are my counts right?* panel: scoring, suggestions and estimates."""
