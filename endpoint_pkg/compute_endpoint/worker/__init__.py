"""Worker processes: the only place user functions are deserialized and run."""
