"""ftgen: fine-tuning vs in-context generalization, and augmented fine-tuning.
"""

__version__ = "0.1.0"
