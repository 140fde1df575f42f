"""The dock's results after a run: the table, the ``nuclei`` points layer and saving."""
