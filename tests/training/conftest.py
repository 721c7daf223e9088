"""Training tests run single-threaded (the CI machine has 2 cores).

pytest runs with ``--import-mode=importlib``, which does not put test folders on
``sys.path``; this folder is added so the tests can import ``wsim_training_helpers``.
"""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
