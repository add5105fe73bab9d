"""The Regions tool: drawing regions on the slide view, the Regions panel, and the review of a
detector's proposals (accept in a region or the selection)."""
