"""The all-pairs program (Algorithm 1 on a trained run): shapes, blocks, scores, reports.

`score_pairs` is the one all-pairs function (decode and score every pair's path in bounded memory);
`lerpnet.allpairs.program.interpolate_and_evaluate` is the program around it.
"""

from lerpnet.allpairs.api import PairScores, score_pairs

__all__ = ["PairScores", "score_pairs"]
