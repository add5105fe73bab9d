"""Several annotators on one cohort in the app (issue 19): File → Copy for annotator…, File →
Merge project…, Analyze → Annotator agreement…, the conflicts and pathologist queues, roles,
and each annotator's label in the cell details. The decisions are the core's
(:mod:`cellviewer.core.merge`); this package only asks, shows, and runs them off the UI
thread."""
