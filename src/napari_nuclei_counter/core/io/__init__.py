"""Files in: decoders, the channel and z choice, discovery and names, OME-Zarr plates, sources."""
