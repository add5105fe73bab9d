"""The slide viewer: tiles, markers, the gallery, classes, cell details, images."""
