"""Where a run executes. `local` (the default) runs each in a fresh subprocess with a timeout."""
