"""The ``nuclei-counter`` command line."""
