"""Real split-federated LoRA fine-tuning of timm Vision Transformers.

The package import is light on purpose (no torch): import the submodules explicitly,
e.g. ``from wsim.training.trainer import SplitTrainer``. ``config`` and ``flops`` are
torch-free so that the surrogate engine can use the model description and FLOP formulas.

Submodules: ``config`` (model description, presets), ``flops`` (analytic FLOPs),
``split`` (timm ViT split at the cut layer + peft LoRA), ``trainer`` (the split step,
SFL-V1/V2), ``fedavg`` (weighted averaging), ``data`` / ``partition`` (datasets and
device partitions), ``memory`` (device training memory), ``pretrain`` and ``standalone``
(the ``wsim pretrain`` and ``wsim train`` commands).
"""
