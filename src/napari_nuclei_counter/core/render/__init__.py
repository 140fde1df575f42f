"""Pictures as plain uint8 arrays: thumbnails, gallery selection and mosaics, plate maps."""
