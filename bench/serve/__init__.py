"""The serve phase: a saved model loaded by its runtime alone in a fresh process, timed and scored there."""
