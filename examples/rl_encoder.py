"""An actor-critic agent whose image encoder is a nasc supernet, searched by IS-DARTS while the
agent learns (in the spirit of RL-DARTS, Miao et al. 2021, which puts a DARTS supernet in place of
an RL agent's encoder).

The agent is advantage actor-critic (A2C: n-step returns, a value baseline, an entropy bonus) on
MiniGrid's `MiniGrid-Empty-5x5-v0`, seeing only pixels: the agent's 7x7-tile partial view
rendered as a 28x28 RGB image (`RGBImgPartialObsWrapper(tile_size=4)`). The encoder is the
NB201-style space below, compiled to a supernet (a plain `nn.Module`); the policy and value heads
read its features. The agent's own optimizer trains the encoder's weights with the policy loss,
and a `Shrinker` makes IS-DARTS' shrink steps on the schedule of the paper (`shrink_epochs`),
measuring each candidate's information on the agent's latest observations. At the end the found
encoder is exported: `arch.nas` (a fixed space), `encoder.pt` (the standalone encoder with the
supernet's weights) and `result.json`.

    pip install -e '.[rl]'
    python examples/rl_encoder.py                 # 200 updates, a few CPU minutes
    python examples/rl_encoder.py --updates 40 --shrink-every 5 --out runs/rl-quick
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from nasc.compiler import CompileOptions, catalog, compile_space, export_network, fixed_source
from nasc.dsl import parse_space
from nasc.dsl.genotype import genotype_strings
from nasc.runtime.strategies.isdarts import Shrinker, shrink_epochs

ENCODER = """
ops enc = {none, skip_connect, nor_conv_1x1, nor_conv_3x3, avg_pool_3x3}

cell enc_cell(x) {
    n1 = x:enc
    n2 = x:enc + n1:enc
    n3 = x:enc + n1:enc + n2:enc
    keep 1 per edge
    out n3
}

network encoder(C = 8, features = 32, size = 28) {
    input(3, size)
    stem conv3x3_bn(C)
    enc_cell @ C
    resblock(2C, stride = 2)
    enc_cell @ 2C
    head bn_relu_pool_linear(features)
}
"""
ACTIONS = 3  # MiniGrid's turn left, turn right, move forward: all Empty-5x5 needs


def make_envs(name: str, count: int, seed: int):
    import gymnasium as gym
    import minigrid  # noqa: F401 - registers the MiniGrid environments
    from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

    envs = [
        ImgObsWrapper(RGBImgPartialObsWrapper(gym.make(name), tile_size=4)) for _ in range(count)
    ]
    observations = [env.reset(seed=seed + index)[0] for index, env in enumerate(envs)]
    return envs, observations


def pixels(observations) -> torch.Tensor:
    """(B, H, W, 3) uint8 frames as a (B, 3, H, W) float batch in [0, 1]."""
    batch = torch.as_tensor(np_stack(observations))
    return batch.permute(0, 3, 1, 2).float().div_(255.0)


def np_stack(observations):
    import numpy as np

    return np.stack(observations)


class Agent(nn.Module):
    """Policy and value heads over the supernet's features."""

    def __init__(self, encoder: nn.Module, features: int):
        super().__init__()
        self.encoder = encoder
        self.policy = nn.Linear(features, ACTIONS)
        self.value = nn.Linear(features, 1)

    def forward(self, images: torch.Tensor):
        features = torch.relu(self.encoder(images))
        return self.policy(features), self.value(features).squeeze(-1)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="MiniGrid-Empty-5x5-v0")
    parser.add_argument("--updates", type=int, default=200, help="A2C updates")
    parser.add_argument("--envs", type=int, default=4, help="environments stepped together")
    parser.add_argument("--rollout", type=int, default=16, help="steps per environment per update")
    parser.add_argument("--shrink-steps", type=int, default=4)
    parser.add_argument("--shrink-every", type=int, default=20, help="updates between shrinks")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/rl-encoder", help="where the found encoder goes")
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    space = parse_space(ENCODER, "rl_encoder.nas", catalog=catalog())
    # Batch statistics in every mode, as the IS-DARTS reference searches: acting, learning and
    # measuring all see the agent's current frames.
    options = CompileOptions(track_running_stats=False)
    encoder = compile_space(space, options=options, seed=args.seed)
    agent = Agent(encoder, features=32)
    shrinker = Shrinker(encoder, steps=args.shrink_steps)
    schedule = shrink_epochs(args.updates, args.shrink_steps, args.shrink_every)
    if schedule[0] < 1:
        parser.error(f"{args.shrink_steps} shrinks every {args.shrink_every} need more updates")
    weights = [*encoder.weights(), *agent.policy.parameters(), *agent.value.parameters()]
    optimizer = torch.optim.Adam(weights, lr=args.lr)

    envs, observations = make_envs(args.env, args.envs, args.seed)
    returns, episode_return = [], [0.0] * len(envs)
    started = time.perf_counter()
    for update in range(1, args.updates + 1):
        frames, actions, rewards, dones = [], [], [], []
        for _ in range(args.rollout):
            images = pixels(observations)
            with torch.no_grad():
                logits, _ = agent(images)
            action = torch.distributions.Categorical(logits=logits).sample()
            step_rewards, step_dones = [], []
            for index, env in enumerate(envs):
                obs, reward, terminated, truncated, _ = env.step(int(action[index]))
                episode_return[index] += float(reward)
                if terminated or truncated:
                    returns.append(episode_return[index])
                    episode_return[index] = 0.0
                    obs, _ = env.reset()
                observations[index] = obs
                step_rewards.append(float(reward))
                step_dones.append(float(terminated))  # a time-out is not a terminal state
            frames.append(images)
            actions.append(action)
            rewards.append(torch.tensor(step_rewards))
            dones.append(torch.tensor(step_dones))

        # n-step returns bootstrapped from the value of the frame after the rollout
        batch = torch.cat(frames)
        logits, values = agent(torch.cat([batch, pixels(observations)]))
        values, bootstrap = values[: len(batch)], values[len(batch) :].detach()
        logits = logits[: len(batch)]
        target, targets = bootstrap, []
        for reward, done in zip(reversed(rewards), reversed(dones)):
            target = reward + 0.99 * target * (1.0 - done)
            targets.append(target)
        targets = torch.cat(targets[::-1])
        advantage = targets - values
        dist = torch.distributions.Categorical(logits=logits)
        loss = (
            -(dist.log_prob(torch.cat(actions)) * advantage.detach()).mean()
            + 0.5 * advantage.pow(2).mean()
            - 0.01 * dist.entropy().mean()
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(weights, 0.5)
        optimizer.step()

        if update in schedule:  # IS-DARTS: measure on the latest frames, shrink each subset
            record = shrinker.step([batch])
            print(
                f"update {update}: shrink step {record['step']}/{record['steps']} discards "
                f"{', '.join(record['discarded'])}; {record['live']} candidates live",
                flush=True,
            )
        if update % 25 == 0 or update == args.updates:
            recent = returns[-20:]
            mean = sum(recent) / len(recent) if recent else 0.0
            print(
                f"update {update}: loss {loss.item():.3f}, mean return (last 20 episodes) "
                f"{mean:.3f}, {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    for env in envs:
        env.close()

    genotype = shrinker.genotype()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "arch.nas").write_text(fixed_source(space, genotype, header="found by rl_encoder.py"))
    standalone = export_network(space, genotype, supernet=encoder)
    torch.save(standalone.state_dict(), out / "encoder.pt")
    recent = returns[-20:]
    result = {
        "genotype": genotype.to_json(),
        **genotype_strings(space, genotype),
        "episodes": len(returns),
        "mean_return_last_20": sum(recent) / len(recent) if recent else None,
        "encoder_parameters": standalone.num_parameters(),
        "supernet_parameters": encoder.num_parameters(),
        "seconds": time.perf_counter() - started,
    }
    (out / "result.json").write_text(json.dumps(result, indent=2))
    print(f"found encoder {result.get('nb201', genotype.to_json())}; wrote {out}/arch.nas")
    return result


if __name__ == "__main__":
    main()
