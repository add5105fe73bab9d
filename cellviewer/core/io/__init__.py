"""Files in and out: points CSV, QuPath GeoJSON, building projects from them."""
