"""The source of the dock's images: an image layer, or a folder with its pattern,
its channel, z and time choice, and its preview."""
