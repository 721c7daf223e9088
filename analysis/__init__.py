"""Publication figures and tables from wsim's result files (pandas + matplotlib only).

``make_figures(paths, out_dir)`` or ``wsim figures PATH ... --out DIR``; see ``analysis.figures``.
"""

from analysis.make import make_figures

__all__ = ["make_figures"]
