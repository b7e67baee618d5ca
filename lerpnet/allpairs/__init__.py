"""The all-pairs program (Algorithm 1 on a trained run): shapes, blocks, scores, reports.

`score_pairs` is the one all-pairs function (decode and score every pair's path in bounded memory);
`compile_score_pairs` compiles its programs ahead from the operands' shapes alone (while the data is
read); `lerpnet.allpairs.program.interpolate_and_evaluate` is the program around it.
"""

from lerpnet.allpairs.api import PairScores, compile_score_pairs, score_pairs

__all__ = ["PairScores", "compile_score_pairs", "score_pairs"]
