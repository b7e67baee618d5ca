"""The all-pairs program (Algorithm 1 on a trained run): shapes, blocks, scores, reports."""
