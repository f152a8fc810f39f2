"""Task families: each loads its data and model, predicts, scores, and compares predictions."""
