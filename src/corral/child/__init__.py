"""Child processes: one model, or one download job, per process."""
