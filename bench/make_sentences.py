#!/usr/bin/env python3
"""Writes N varied English sentences (deterministic) to a .txt file: bench input for MiniLM."""
import random
import sys

WORDS = ("the a one every some model data sentence quick brown fox jumps over lazy dog music guitar "
         "player stage audience market price rose fell today yesterday city capital river mountain "
         "learning machine neural network training inference embedding vector search query answer "
         "question people walk run eat food bread coffee morning evening night weather rain sun "
         "beautiful quickly slowly under above between because although however therefore").split()

n = int(sys.argv[1])
rng = random.Random(1234)
with open(sys.argv[2], "w") as f:
    for i in range(n):
        k = min(120, max(3, int(rng.lognormvariate(2.6, 0.6))))
        words = [rng.choice(WORDS) for _ in range(k)]
        f.write(" ".join(words).capitalize() + rng.choice([".", "!", "?", ","]) + "\n")
