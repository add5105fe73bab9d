"""The cells of an image: the observable model, the spatial index, editing, crops."""
