"""Everything between a labelled patch set and the tensors a model trains on."""
