"""The project session: the open project, its lock, who edits, the demo."""
