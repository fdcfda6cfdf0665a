"""hvaelab: Hierarchical VAEs Know What They Don't Know (Havtorn et al., ICML 2021), runnable.

Paper: https://arxiv.org/abs/2102.08248
"""

__version__ = "0.2.0"
