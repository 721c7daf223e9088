"""wsim: a wireless discrete-event simulator coupled to real split-federated LoRA fine-tuning.

The package is light at import: submodules (engine, training, optimizer) are imported explicitly.
"""

__version__ = "0.1.0"
