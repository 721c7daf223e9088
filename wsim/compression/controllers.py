"""Threshold controllers for SplitCom's temporal compression (arXiv 2602.10564).

The abstract states that τ is set "by bang-bang control or DDPG"; the signals, states and rewards
below are wsim's choices (re-implementation in the spirit of SplitCom; DDPG after Lillicrap et al.,
"Continuous control with deep reinforcement learning", ICLR 2016). Both expose ``tau`` and
``update(upload_ratio, loss) -> tau``, called once per step after the server's loss is known
(``SplitCom.observe``). The real workload builds the one ``method.controller`` names and seeds the
DDPG controller from the scenario seed (stream ``splitcom.ddpg``).
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["BangBangController", "DDPGController"]


@dataclass
class BangBangController:
    """Two-valued τ, switched on the achieved upload ratio of the last step.

    Monitored signal: the share of the batch that was uploaded. Above ``target_upload_ratio`` the
    link is too busy, so τ jumps to ``tau_high`` (compress more); at or below it, τ falls back to
    ``tau_low`` (compress less, fresher activations). The loss is not used. Starts at ``tau_low``.
    """

    tau_low: float
    tau_high: float
    target_upload_ratio: float
    tau: float = field(init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.tau_low < self.tau_high:
            raise ValueError(
                f"tau_low, tau_high must satisfy 0 <= tau_low < tau_high, got "
                f"{self.tau_low}, {self.tau_high}"
            )
        if not 0 < self.target_upload_ratio <= 1:
            raise ValueError(
                f"target_upload_ratio must be in (0, 1], got {self.target_upload_ratio}"
            )
        self.tau = self.tau_low

    def update(self, upload_ratio: float, loss: float) -> float:
        """Switch τ on ``upload_ratio`` (``loss`` is ignored); return it."""
        self.tau = self.tau_high if upload_ratio > self.target_upload_ratio else self.tau_low
        return self.tau


def _mlp(sizes: list[int], generator: torch.Generator, out_act: nn.Module | None) -> nn.Sequential:
    """MLP with ReLU hidden layers, initialised from ``generator`` (never the global RNG)."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:], strict=False)):
        linear = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            linear.weight.uniform_(-bound, bound, generator=generator)
            linear.bias.uniform_(-bound, bound, generator=generator)
        layers.append(linear)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    if out_act is not None:
        layers.append(out_act)
    return nn.Sequential(*layers)


class DDPGController:
    """τ chosen by a small DDPG actor–critic trained online from a replay buffer.

    State ``s = (upload ratio, loss change, normalised τ)`` of the last step; action
    ``a ∈ [-1, 1]`` (tanh actor plus Gaussian exploration noise, clipped), mapped to
    ``τ = τ_min + (a + 1)/2 · (τ_max − τ_min)``; reward ``−Δloss − upload_weight · upload ratio``.
    Each ``update`` stores the transition of the previous action, takes one critic and one actor
    step on a replay minibatch (once the buffer holds ``batch_size``), soft-updates the target
    networks, and picks the next τ. All randomness (init, noise, replay) comes from ``seed``.
    """

    def __init__(
        self,
        tau_min: float = 0.0,
        tau_max: float = 0.5,
        upload_weight: float = 1.0,
        seed: int = 0,
        hidden: int = 32,
        buffer_size: int = 512,
        batch_size: int = 16,
        gamma: float = 0.9,
        lr: float = 1e-3,
        polyak: float = 0.05,
        noise_std: float = 0.2,
    ) -> None:
        if not 0 <= tau_min < tau_max:
            raise ValueError(
                f"tau_min, tau_max must satisfy 0 <= tau_min < tau_max, got {tau_min}, {tau_max}"
            )
        if batch_size < 1 or buffer_size < batch_size:
            raise ValueError(f"batch_size must be in [1, buffer_size], got {batch_size}")
        if not 0 <= gamma < 1:
            raise ValueError(f"gamma must be in [0, 1), got {gamma}")
        self.tau_min, self.tau_max = tau_min, tau_max
        self.upload_weight, self.gamma, self.polyak = upload_weight, gamma, polyak
        self.noise_std, self.batch_size = noise_std, batch_size
        self._gen = torch.Generator().manual_seed(seed)
        self.actor = _mlp([3, hidden, hidden, 1], self._gen, nn.Tanh())
        self.critic = _mlp([4, hidden, hidden, 1], self._gen, None)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.buffer: deque[tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]] = deque(
            maxlen=buffer_size
        )
        self.tau = 0.5 * (tau_min + tau_max)
        self.num_updates = 0
        self._state: torch.Tensor | None = None
        self._action: torch.Tensor | None = None
        self._prev_loss: float | None = None

    def _to_tau(self, action: torch.Tensor) -> float:
        return self.tau_min + 0.5 * (float(action) + 1.0) * (self.tau_max - self.tau_min)

    def update(self, upload_ratio: float, loss: float) -> float:
        """Record the outcome of the last τ, learn one step, and return the next τ."""
        if not math.isfinite(loss):
            raise ValueError(f"loss must be finite, got {loss}")
        change = 0.0 if self._prev_loss is None else loss - self._prev_loss
        norm_tau = (self.tau - self.tau_min) / (self.tau_max - self.tau_min)
        state = torch.tensor([upload_ratio, change, norm_tau], dtype=torch.float32)
        if self._state is not None and self._action is not None:
            reward = -change - self.upload_weight * upload_ratio
            self.buffer.append((self._state, self._action, reward, state))
            self._learn()
        with torch.no_grad():
            action = self.actor(state) + self.noise_std * torch.randn(1, generator=self._gen)
        action = action.clamp(-1.0, 1.0)
        self._state, self._action, self._prev_loss = state, action, loss
        self.tau = self._to_tau(action)
        return self.tau

    def _learn(self) -> None:
        """One critic and one actor step on a replay minibatch; soft target update."""
        if len(self.buffer) < self.batch_size:
            return
        picks = torch.randint(len(self.buffer), (self.batch_size,), generator=self._gen)
        s, a, r, s2 = (
            list(col) for col in zip(*(self.buffer[i] for i in picks.tolist()), strict=True)
        )
        s, a, s2 = torch.stack(s), torch.stack(a), torch.stack(s2)
        r = torch.tensor(r, dtype=torch.float32).unsqueeze(1)
        with torch.no_grad():
            target = r + self.gamma * self.critic_target(
                torch.cat([s2, self.actor_target(s2)], dim=1)
            )
        critic_loss = nn.functional.mse_loss(self.critic(torch.cat([s, a], dim=1)), target)
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        actor_loss = -self.critic(torch.cat([s, self.actor(s)], dim=1)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.lerp_(p, self.polyak)
        self.num_updates += 1
