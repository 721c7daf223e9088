"""Real workload: split-federated LoRA fine-tuning driven by the event loop (DESIGN §4, §8).

The torch work happens at the moment the engine's events happen in simulated time:

* ``client_forward`` — the device's next batch through ``blocks[:cut]`` with its own adapters,
  then the scenario's compressor at the round's token budget (``decision.token_option`` →
  ``profile.token_counts``); the upload is the actual compressed payload (``payload_bits``);
* ``server_step`` — called when the upload ARRIVES (the engine calls it in simulated arrival
  order, so the shared SFL-V2 server model sees activations in that order): server forward +
  backward + optimizer step; the download is the actual gradient size;
* ``client_backward`` — the device backward + optimizer step;
* ``end_round`` — FedAvg of the completed devices' adapters (weighted by the samples they
  trained this round; stragglers and dropouts excluded), broadcast, test accuracy.

Test accuracy (``evaluate``) is that of the split model AS DEPLOYED: each test batch
(``data.batch_size`` samples) goes through the global device stage, the scenario's compressor in
evaluation mode (``ctx.training`` False: SplitCom then sends everything) at the token budget the
devices used in the round just finished, and the global server stage — the same path the server
was trained on. ``evaluate_full`` is the uncompressed global model on the full token sequence
(equal for ``none``); a server trained on k selected tokens and tested on all 64 is measuring a
model nobody deploys (for ST-SFLora with [CLS] scoring that alone cost 8 points, README).

FLOPs come from ``wsim.training.flops`` for the actual shapes (batch, tokens the server
received). Every batch holds exactly ``data.batch_size`` samples (a batch may span two passes
over the device's shard), so per-batch costs equal ``batch_size ×`` the per-sample profile and
the surrogate replays them. Wall-clock time never enters the simulated clock; it is only
accumulated in ``torch_time_s`` (for ``bench/overhead.py``).

Per method (``[method]``): the token methods (stsflora, tsflora, random_tokens) get the round's
token budget ``k`` (``profile.token_counts[decision.token_option]``, from ``method.token_counts``)
and the cut-block probe computes the patch score their ``score`` names; SFLAM also quantizes the
device's frozen backbone weights once at build (int8 when ``method.quant_bits`` ≥ 8, else int4;
``weight_quant`` holds the memory report); SplitCom gets the batch's dataset indices as
``sample_ids`` and the threshold controller ``method.controller`` names (``fixed``: τ =
``method.tau``; ``bang_bang``: τ ∈ {τ, 2τ}, 2τ while more than ``SPLITCOM_TARGET_UPLOAD`` of a
batch is uploaded, wsim's choice; ``ddpg``: ``DDPGController`` over [0, 2τ], seeded from the
scenario seed), fed after every server step with ``observe(loss)``. With ``method.u_shaped`` the
head and labels stay on the device: the extra pair per batch (pooled features ``[batch, d]``
down, their gradient up, fp32) is added to the batch's activation upload and gradient download
(wsim has one upload and one download event per batch, so the pair rides on them; the training
arithmetic is unchanged, the head's parameters are still one shared copy). The download is the
compressor's gradient payload. ``device_memory_bytes`` is the device stage's parameters and
buffers as stored.

ST-SFLora ``paper`` recipe (``method.recipe = "paper"``, PAPERS.md [T][S]): the device stage
is FROZEN — the model gets LoRA on the server blocks only (``build_split_vit(device_lora=False)``),
the trainer is ``FrozenDeviceTrainer`` (device forward under no_grad), and the workload reports
``device_trains = False``: ``server_step``'s download is 0 bits, ``adapter_up_bits`` /
``adapter_down_bits`` are 0, and ``client_backward`` raises (an engine that honours
``device_trains`` schedules no download, client_bwd, adapter_up or adapter_down events). The
candidate K are ``method.token_counts``, or every integer in ``[method.min_tokens, num_patches]``
when that is empty; the compressor is ``STSFLoraPaper`` ([CLS] score, K + 2 tokens).
SFT ``paper`` recipe: the device stage continues into the attention half of ``blocks[cut]``
(its adapters are device adapters), the compressor is ``SFTPaper`` on that block's frozen fc1
(rank ``method.rank``), the server stage starts at ``blocks[cut + 1]``. FLOPs follow that split
(``training.flops`` with ``sft_rank = method.rank``): the device counts the cut block's attention
half and ``S_r V_rᵀ · norm2(h)``, the server ``U_r`` (+ bias) and ``fc2`` before ``blocks[cut+1:]``
(the factored FFN runs inside the device's torch call, but its FLOPs are the server's).
``device_memory_bytes`` includes the cut block's attention half and ``S_r V_rᵀ``.

Cut activities: if the deadline or the battery cuts a device mid-iteration, its pending device
graph is dropped at ``end_round`` and its adapters are overwritten by the broadcast. A server
step whose simulated service is cut has already updated the server model (it ran on arrival).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from wsim.compression import (
    BangBangController,
    CompressContext,
    DDPGController,
    SFTPaper,
    ValidationBangBang,
    WeightQuantReport,
    compressor_params,
    make_compressor,
    quantize_module_weights,
    ushape_bits,
)
from wsim.rng import make_stream, seed_sequence, torch_seed
from wsim.training.config import SplitViTConfig
from wsim.training.data import ImageSet, digits_splits, iterate_batches, load_dataset, model_input
from wsim.training.fedavg import broadcast
from wsim.training.flops import client_flops, server_flops
from wsim.training.frozen import FrozenDeviceTrainer
from wsim.training.partition import BatchStream, dirichlet_partition, iid_partition
from wsim.training.placement import prepare_device
from wsim.training.seeding import training_streams
from wsim.training.split import build_split_vit
from wsim.training.trainer import ClientOutput, OptimConfig, SplitTrainer
from wsim.workload.measure import measure_model_profile
from wsim.workload.profile import WorkloadProfile, model_config, profile_key
from wsim.workload.protocol import ClientStep, RoundMetrics, ServerStep

if TYPE_CHECKING:
    from wsim.config import MethodConfig, Scenario
    from wsim.round_api import RoundDecision

DIGITS_SPLIT_SEED = 0
"""Seed of the digits pretrain/train/test split: the one the shipped backbone was pretrained
with (``wsim/data/vit_tiny_digits.json``), so test images never overlap pretraining images."""

EVAL_BATCH = 256
"""Samples per evaluation batch."""

TOKEN_METHODS = ("stsflora", "random_tokens", "tsflora")

FROZEN_DEVICE = (("stsflora", "paper"),)
"""(method, recipe) pairs whose device stage is frozen (forward only, PAPERS.md)."""


def is_frozen_device(method: MethodConfig) -> bool:
    """Whether ``method``'s recipe freezes the device stage (ST-SFLora paper)."""
    return (method.name, method.recipe) in FROZEN_DEVICE


def is_sft_paper(method: MethodConfig) -> bool:
    """Whether ``method`` is SFT's paper recipe (factored cut-block FFN, attention-half split)."""
    return method.name == "sft" and method.recipe == "paper"


def sft_paper_compressor(method: MethodConfig, model: Any) -> SFTPaper:
    """SFT's paper compressor on the model's cut block, rank ``method.rank``.

    Raises:
        ValueError: naming ``method.rank`` when it is 0 or above the fc1's full rank.
    """
    block = model.vit.blocks[model.config.cut_layer]
    full = min(block.mlp.fc1.weight.shape)
    if not 1 <= method.rank <= full:
        raise ValueError(f"method.rank: must be in [1, {full}] for sft (paper), got {method.rank}")
    return SFTPaper.from_block(block, method.rank, quant_bits=method.quant_bits)


def candidate_token_counts(method: MethodConfig, num_patches: int) -> list[int]:
    """The kept-token candidates of a run: ``method.token_counts``; if empty, every integer K
    in ``[min_tokens, num_patches]`` for the ST-SFLora paper recipe, else all patches.

    Raises:
        ValueError: naming ``method.min_tokens`` / ``method.token_counts`` when out of range.
    """
    if method.token_counts:
        if max(method.token_counts) > num_patches:
            raise ValueError(
                f"method.token_counts: at most {num_patches} patches, got {method.token_counts}"
            )
        return sorted(method.token_counts)
    if is_frozen_device(method):
        if method.min_tokens > num_patches:
            raise ValueError(
                f"method.min_tokens: must be <= {num_patches} patches, got {method.min_tokens}"
            )
        return list(range(method.min_tokens, num_patches + 1))
    return [num_patches]


SPLITCOM_TARGET_UPLOAD = 0.1
"""Upload share of a batch above which SplitCom's bang-bang controller switches τ to 2τ."""


def _stream_int(seed: int, name: str) -> int:
    """A 63-bit integer seed for stream ``name`` of scenario seed ``seed``."""
    return int(seed_sequence(seed, name).generate_state(1, np.uint64)[0] >> np.uint64(1))


def build_compressor(
    method: MethodConfig, seed: int = 0, extra_params: dict[str, Any] | None = None
) -> Any:
    """The scenario's compressor; SplitCom with the threshold controller ``method.controller``.

    Args:
        method: The scenario's ``[method]``.
        seed: The scenario seed (SplitCom's DDPG controller draws from stream ``splitcom.ddpg``).
        extra_params: compressor parameters the scenario format has no field for (e.g.
            ``{"score": "cls"}`` for a token method); they override the derived ones.

    Raises:
        ValueError: naming ``method.tau`` when an adaptive controller gets τ = 0, or (from
            ``make_compressor``) an unknown or bad extra parameter.
    """
    if is_sft_paper(method):
        raise ValueError("sft (paper) factors the model's cut block: use sft_paper_compressor")
    params = compressor_params(method) | dict(extra_params or {})
    if method.recipe == "paper" and method.name != "splitcom":
        return make_compressor(method.name, recipe="paper", **params)
    if method.name != "splitcom":
        return make_compressor(method.name, **params)
    params["u_shaped"] = method.u_shaped
    if method.recipe == "paper":  # SplitCom paper: projection seed, validation bang-bang
        params["seed"] = _stream_int(seed, "splitcom.projection") % 2**31
    if method.controller == "fixed":
        return make_compressor("splitcom", recipe=method.recipe, **params)
    if method.tau <= 0:
        raise ValueError(f"method.tau must be > 0 for controller {method.controller!r}")
    if method.controller == "bang_bang" and method.recipe == "paper":
        controller: Any = ValidationBangBang(tau_low=method.tau, tau_high=2 * method.tau)
    elif method.controller == "bang_bang":
        controller = BangBangController(
            tau_low=method.tau, tau_high=2 * method.tau, target_upload_ratio=SPLITCOM_TARGET_UPLOAD
        )
    else:
        controller = DDPGController(
            tau_min=0.0, tau_max=2 * method.tau, seed=_stream_int(seed, "splitcom.ddpg")
        )
    params = {k: v for k, v in params.items() if k != "tau"}
    return make_compressor("splitcom", recipe=method.recipe, controller=controller, **params)


def sflam_weight_bits(method: MethodConfig) -> int:
    """SFLAM's device-weight bits: int8 for ≥ 8-bit activations, else int4."""
    return 8 if method.quant_bits >= 8 else 4


def _module_bytes(module: torch.nn.Module) -> int:
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def device_modules(model: Any) -> tuple[torch.nn.ModuleList, int]:
    """The device's modules (``patch_embed``, ``norm_pre``, ``blocks[:cut]``; with SFT paper's
    attention-half split also ``norm1``, ``attn``, ``ls1``, ``norm2`` of ``blocks[cut]``) and the
    bytes of its loose parameters ([CLS] token, position embedding)."""
    vit, cut = model.device_stage.vit, model.device_stage.cut_layer
    modules = torch.nn.ModuleList([vit.patch_embed, vit.norm_pre, *vit.blocks[:cut]])
    if model.device_stage.attention_half:  # SFT paper: the cut block's attention half + norm2
        b = vit.blocks[cut]
        modules.extend([b.norm1, b.attn, b.ls1, b.norm2])
    loose = [t for t in (vit.cls_token, vit.pos_embed) if t is not None]
    return modules, sum(t.numel() * t.element_size() for t in loose)


def load_splits(scenario: Scenario) -> tuple[ImageSet, ImageSet]:
    """Federated-train and test sets of ``[data]`` (digits: the fixed split, see above)."""
    data = scenario.data
    if data.name == "digits":
        splits = digits_splits(training_streams(DIGITS_SPLIT_SEED).split)
        return splits.train, splits.test
    train = load_dataset(data.name, data.root, True, data.download)
    return train, load_dataset(data.name, data.root, False, data.download)


@dataclass
class _Pending:
    """A device's batch between ``client_forward`` and ``client_backward``."""

    out: ClientOutput
    labels: torch.Tensor
    grad: torch.Tensor | None = None
    sample_ids: torch.Tensor | None = None


class RealWorkload:
    """The Workload protocol backed by a :class:`SplitTrainer` (see the module docstring).

    Attributes:
        trainer: The split trainer (tests may wrap its methods).
        config: The split ViT description.
        torch_time_s: Wall seconds spent inside torch calls, by phase.
        weight_quant: SFLAM's device-weight quantization report (None for other methods).
        device_memory_bytes: Device-stage parameters and buffers as stored (LoRA included).
        device_trains: False for a frozen device stage (ST-SFLora paper recipe): no gradient
            download, no client backward, no device adapters (module docstring).
    """

    def __init__(
        self,
        scenario: Scenario,
        data_rng: np.random.Generator | None = None,
        compressor_params: dict[str, Any] | None = None,
    ) -> None:
        """Build model, data, partition, compressor and the measured profile.

        Args:
            scenario: A validated scenario with ``sim.workload = "real"`` semantics.
            data_rng: The scenario's ``data`` stream (partition); default a fresh one.
            compressor_params: extra compressor parameters (``build_compressor``), e.g. the
                [CLS]-scored ST-SFLora row of ``bench/compression.py``.
        """
        seed, num = scenario.seed, scenario.devices.num_devices
        self.config: SplitViTConfig = model_config(scenario)
        self.batch_size = scenario.data.batch_size
        self.train, self.test = load_splits(scenario)
        if self.train.pixels.shape[1] != self.config.in_chans:
            raise ValueError(
                f"model.preset: {self.config.name} does not fit data {scenario.data.name}"
            )
        rng = data_rng if data_rng is not None else make_stream(seed, "data")
        labels = self.train.labels.numpy()
        pool, self.validation_idx = np.arange(len(labels)), None
        if scenario.method.name == "splitcom" and scenario.method.recipe == "paper":
            # SplitCom's controller reads a validation loss: a held-out share of the training
            # data (never the test set), drawn from its own stream, kept out of every shard
            perm = make_stream(seed, "workload.validation").permutation(len(labels))
            num_val = max(self.batch_size, len(labels) // 10)
            self.validation_idx, pool = np.sort(perm[:num_val]), np.sort(perm[num_val:])
        if scenario.data.partition == "iid":
            parts = iid_partition(len(pool), num, rng)
        else:
            parts = dirichlet_partition(labels[pool], num, scenario.data.dirichlet_alpha, rng)
        parts = [pool[p] for p in parts]
        children = seed_sequence(seed, "data.batches").spawn(num)
        self.streams = [
            BatchStream(p, self.batch_size, np.random.default_rng(c), full_batches=True)
            for p, c in zip(parts, children, strict=True)
        ]
        self.num_samples = [len(p) for p in parts]
        self.device_trains = not is_frozen_device(scenario.method)
        self.torch_device = prepare_device(scenario.train.device)  # train.device; deterministic
        model = build_split_vit(
            self.config,
            torch.Generator().manual_seed(torch_seed(seed)),
            device_lora=self.device_trains,
            attention_half=is_sft_paper(scenario.method),
        )
        model.vit.to(self.torch_device)  # before the trainer, which copies the adapters
        self.weight_quant: WeightQuantReport | None = None
        on_device, loose_bytes = device_modules(model)
        if scenario.method.name == "sflam":  # frozen device backbone, once, before training
            self.weight_quant = quantize_module_weights(
                on_device, sflam_weight_bits(scenario.method)
            )
            self.device_memory_bytes = self.weight_quant.module_bytes_after + loose_bytes
        else:
            self.device_memory_bytes = _module_bytes(on_device) + loose_bytes
        trainer_cls = SplitTrainer if self.device_trains else FrozenDeviceTrainer
        self.trainer = trainer_cls(
            model,
            num,
            sfl_variant=scenario.train.sfl_variant,
            optim=OptimConfig(lr=scenario.train.lr),
        )
        self.method = scenario.method.name
        counts = candidate_token_counts(scenario.method, self.config.num_patches)
        extra = dict(compressor_params or {})
        if not self.device_trains and not scenario.method.token_counts:
            extra.setdefault("token_counts", tuple(counts))
        self._sft_rank = 0  # SFT paper: the FLOPs of the attention-half split (flops.py)
        if is_sft_paper(scenario.method):
            self.compressor: Any = sft_paper_compressor(scenario.method, model)
            self._sft_rank = self.compressor.rank
            down = self.compressor.down
            self.device_memory_bytes += down.numel() * down.element_size()  # S_r V_rᵀ
        else:
            self.compressor = build_compressor(scenario.method, seed, extra)
        model.probe.score = getattr(self.compressor, "score", "cls")
        self._generator = torch.Generator().manual_seed(torch_seed(seed) ^ 0x5A5A)
        self._eval_seed = _stream_int(seed, "workload.eval")
        self.torch_time_s: dict[str, float] = {}
        probe = make_stream(seed, "workload.probe").permutation(len(self.train))[: self.batch_size]
        self._profile = self._timed(
            "profile", measure_model_profile, self.trainer, self.compressor,
            self._on_device(model_input(self.train, probe, self.config.img_size)),
            torch.as_tensor(probe),
            counts, self._profile_key(scenario), self._generator, self.device_trains,
        )  # fmt: skip
        self._option = np.full(num, -1, dtype=int)
        self._eval_k = max(self._profile.token_counts)
        self._pending: dict[int, _Pending] = {}
        self._samples: dict[int, int] = {}

    # ----------------------------------------------------------------------------- helpers
    def _on_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` on the workload's torch device (``train.device``; a no-op on the CPU)."""
        return tensor.to(self.torch_device)

    def _profile_key(self, scenario: Scenario) -> dict[str, Any]:
        """``profile_key`` + the recipe fields (so a wsim-recipe profile never stands in)."""
        key = profile_key(scenario)
        if scenario.method.recipe != "wsim":
            key |= {"recipe": scenario.method.recipe, "min_tokens": scenario.method.min_tokens}
        return key

    def _timed(self, phase: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.torch_time_s[phase] = self.torch_time_s.get(phase, 0.0) + time.perf_counter() - t0

    def _server_flops(self, batch: int, tokens: int) -> float:
        """Server forward + backward FLOPs of a batch of ``tokens``-long sequences."""
        return server_flops(self.config, batch, tokens, sft_rank=self._sft_rank).total_flops

    def _tokens(self, device: int) -> int:
        j = int(self._option[device])
        if j < 0:
            raise ValueError(f"device {device} is not scheduled in this round")
        return self._profile.token_counts[j]

    # ----------------------------------------------------------------------------- protocol
    def profile(self) -> WorkloadProfile:
        """The profile measured on this run's model and compressor at construction."""
        return self._profile

    def begin_round(self, round: int, decision: RoundDecision) -> None:
        """Remember each device's token option; reset the round's sample counts.

        The round's evaluation budget becomes the k scheduled most often (ties: the larger).
        """
        self._option = np.asarray(decision.token_option, dtype=int).copy()
        self._samples = {}
        scheduled = self._option[self._option >= 0]
        if scheduled.size:
            counts = np.bincount(scheduled, minlength=len(self._profile.token_counts))
            best = len(counts) - 1 - int(np.argmax(counts[::-1]))
            self._eval_k = self._profile.token_counts[best]

    def client_forward(self, device: int, round: int, it: int) -> ClientStep:
        """Device forward + compression of the device's next batch (torch runs now)."""
        k = self._tokens(device)
        idx = self.streams[device].next()
        images = self._on_device(model_input(self.train, idx, self.config.img_size))
        ctx = CompressContext(
            sample_ids=torch.as_tensor(idx), keep_tokens=k, generator=self._generator
        )
        out = self._timed(
            "client_forward", self.trainer.client_forward, device, images, self.compressor, ctx
        )
        ids = torch.as_tensor(idx)
        labels = self._on_device(self.train.labels[ids])
        self._pending[device] = _Pending(out, labels, sample_ids=ids)
        flops = client_flops(self.config, len(idx), sft_rank=self._sft_rank).forward_flops
        _, extra_up = ushape_bits(out.compressed)
        return ClientStep(flops=flops, upload_bits=float(out.payload_bits + extra_up), tokens=k)

    def server_cost(self, device: int, round: int, it: int) -> ServerStep:
        """What the server step on the arrived upload will cost (no torch work): FLOPs of the
        shape it receives and the gradient download's size; ``server_step`` returns the same."""
        pending = self._pending[device]
        out = pending.out
        tokens = int(out.server_input.shape[1])
        flops = self._server_flops(len(pending.labels), tokens)
        extra_down, _ = ushape_bits(out.compressed)
        return ServerStep(flops=flops, download_bits=float(out.grad_payload_bits + extra_down))

    def server_step(self, device: int, round: int, it: int) -> ServerStep:
        """Server forward + backward on the arrived upload, once the engine's FIFO queue has
        granted it a slot and the step completes within the round (simulated order)."""
        pending = self._pending[device]
        out = pending.out
        srv = self._timed(
            "server_step", self.trainer.server_step, device, out.server_input, pending.labels,
            grad_payload_bits=out.grad_payload_bits,
        )  # fmt: skip
        if not math.isfinite(srv.loss):
            from wsim.sim.safety import SimulationError

            raise SimulationError(
                f"round {round}: the training step of device {device} (local iteration {it}) "
                f"produced a non-finite loss ({srv.loss}); the run is stopped (try a smaller "
                "train.lr)"
            )
        pending.grad = srv.grad
        if not self.device_trains:  # frozen: nothing comes back; the batch is done
            self._pending.pop(device)
            batch = len(pending.labels)
            self._samples[device] = self._samples.get(device, 0) + batch
            flops = self._server_flops(batch, srv.num_tokens)
            return ServerStep(flops=flops, download_bits=0.0)
        if hasattr(self.compressor, "observe"):  # SplitCom's threshold controller
            self.compressor.observe(srv.loss)
        flops = self._server_flops(len(pending.labels), srv.num_tokens)
        extra_down, _ = ushape_bits(out.compressed)
        down_bits = srv.grad_payload_bits
        if hasattr(self.compressor, "compress_gradient"):  # SplitCom paper: gradient cache
            pending.grad, down_bits = self.compressor.compress_gradient(
                srv.grad, pending.sample_ids
            )
        return ServerStep(flops=flops, download_bits=float(down_bits + extra_down))

    def client_backward(self, device: int, round: int, it: int) -> float:
        """Device backward + optimizer step; returns its FLOPs.

        Raises:
            RuntimeError: the device stage is frozen (``device_trains`` False): there is none.
        """
        if not self.device_trains:
            raise RuntimeError(
                f"device {device}: frozen device stage (device_trains = False) has no client "
                "backward; the engine must not schedule download / client_bwd events for it"
            )
        pending = self._pending.pop(device)
        if pending.grad is None:
            raise RuntimeError(f"device {device}: client_backward before server_step")
        self._timed("client_backward", self.trainer.client_backward, device, pending.grad)
        batch = len(pending.labels)
        self._samples[device] = self._samples.get(device, 0) + batch
        return client_flops(self.config, batch, sft_rank=self._sft_rank).backward_flops

    def adapter_up_bits(self, device: int) -> float:
        """The device's LoRA adapter tensors, bits."""
        return float(self.trainer.adapter_payload_bits())

    def adapter_down_bits(self) -> float:
        """The aggregated device adapter, bits (same tensors as the upload)."""
        return float(self.trainer.adapter_payload_bits())

    def end_round(
        self, round: int, completed_devices: list[int], evaluate: bool = True
    ) -> RoundMetrics:
        """FedAvg the completed devices' adapters, broadcast, and evaluate if asked."""
        for device in list(self._pending):  # cut mid-iteration: drop its device graph
            self._drop_pending(device)
        if completed_devices:
            counts = {d: self._samples[d] for d in completed_devices}
            self._timed("aggregate", self.trainer.aggregate, counts)
        else:  # nobody finished: every device restarts from the global adapters
            model = self.trainer.model
            broadcast(
                model.global_params(model.device_param_names),
                [d.params for d in self.trainer.devices],
            )
        if self.validation_idx is not None:  # SplitCom paper: the bang-bang signal
            _, val_loss = self._timed("validate", self._deployed, self.train, self.validation_idx)
            self.compressor.observe_validation(val_loss)
        if not evaluate:
            return RoundMetrics(accuracy=math.nan, loss=math.nan)
        acc, loss = self._timed("evaluate", self.evaluate)
        return RoundMetrics(accuracy=acc, loss=loss)

    def evaluate(self) -> tuple[float, float]:
        """Test accuracy and loss of the deployed split model (see :meth:`_deployed`)."""
        return self._deployed(self.test, np.arange(len(self.test)))

    @torch.no_grad()
    def _deployed(self, data: ImageSet, indices: np.ndarray) -> tuple[float, float]:
        """Accuracy in [0, 1] and mean cross-entropy of the global split model as deployed, on
        ``data[indices]`` (the test set, or SplitCom's held-out validation share).

        Batches of ``data.batch_size`` test samples through the device stage, the compressor in
        evaluation mode at the last round's token budget (random choices from a generator
        re-seeded per call, so evaluating never shifts the training draws) and the server stage.
        """
        model = self.trainer.model
        was_training = model.vit.training
        model.vit.eval()
        generator = torch.Generator().manual_seed(self._eval_seed)
        correct, loss_sum, count = 0, 0.0, 0
        try:
            for start in range(0, len(indices), self.batch_size):
                idx = torch.as_tensor(indices[start : start + self.batch_size])
                images = self._on_device(model_input(data, idx, self.config.img_size))
                labels = self._on_device(data.labels[idx])
                model.probe.arm()
                activation = model.device_stage(images)
                ctx = CompressContext(
                    sample_ids=idx, keep_tokens=self._eval_k, generator=generator, training=False
                )
                out = self.compressor(activation, model.probe.scores(), ctx)
                logits = model.server_stage(out.server_input)
                correct += int((logits.argmax(dim=1) == labels).sum())
                loss_sum += float(
                    torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
                )
                count += len(labels)
        finally:
            model.vit.train(was_training)
        return correct / count, loss_sum / count

    def evaluate_full(self) -> tuple[float, float]:
        """Accuracy and loss of the uncompressed global model on the full token sequence."""
        batches = iterate_batches(self.test, EVAL_BATCH, self.config.img_size)
        return self.trainer.evaluate((self._on_device(x), self._on_device(y)) for x, y in batches)

    def _drop_pending(self, device: int) -> None:
        self._pending.pop(device, None)
        # SplitTrainer has no public "cancel"; its pending graph would block aggregate().
        self.trainer._pending.pop(device, None)  # noqa: SLF001


def build_real_workload(
    scenario: Scenario, data_rng: np.random.Generator | None = None
) -> RealWorkload:
    """The real workload of ``scenario`` (``ValueError``/``FileNotFoundError`` name the field)."""
    return RealWorkload(scenario, data_rng)
