"""JaxMARL's Overcooked behind the ``MarlEnv`` interface.

Observations stay uint8 (H, W, 26) grids per agent: jaxmarl's
``observation_space`` reports (W, H, 26), so the shape is read off a real
reset instead. The env has no world state; the mixer and the OPT see both
agents' observations together (``global_state``), which the replay derives
from the stored observations rather than storing twice. That state is
redundant: each cook's grid is the other's with the two cooks' layers
swapped, and most of its entries cannot change in a layout (the kitchen's
fixed layers, the cooks' layers off the floor). The env hands the networks
the entries of the first cook's grid that can (``StateBasis``), a sixth of
the width, which they read exactly as the full state.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from meigm_jax.envs.base import EnvSpec, StateBasis
from meigm_jax.types import Observation, StepOutcome

# Paper Section 6.2's five layouts; names mirror jaxmarl's overcooked_layouts.
OVERCOOKED_LAYOUTS = ("cramped_room", "asymm_advantages", "coord_ring", "forced_coord",
                      "counter_circuit")
SOUP_REWARD = 20.0  # jaxmarl's delivery reward: soups per episode = sparse return / 20

# jaxmarl's grid layers (``Overcooked.get_obs``): 0-1 the seeing cook's and
# the other cook's position, 2-5 and 6-9 their orientations; every later
# layer is the same in both cooks' grids. 10 and 12-15 (pots, onion, tomato
# and plate piles, delivery) are the layout's, 17, 19 and 24 (tomatoes) are
# always empty. The counters' layer 11 is not fixed (an item put down on a
# counter hides it) but is empty off the counters; the cooks' layers are
# empty off the floor, the pot-only layers 16 and 20 off the pots, and the
# urgency layer 25 is one number repeated over the grid.
OTHER_COOKS_LAYER = (1, 0, 6, 7, 8, 9, 2, 3, 4, 5) + tuple(range(10, 26))
FIXED_LAYERS = (10, 12, 13, 14, 15, 17, 19, 24)
COOK_LAYERS = tuple(range(10))
POT_LAYER, COUNTER_LAYER, POT_ONLY_LAYERS, URGENCY_LAYER = 10, 11, (16, 20), 25


def overcooked_state_basis(first_grids: np.ndarray) -> StateBasis:
    """The state's basis from the cooks' grids [n, H, W, C] at a reset (no item down yet).

    z holds the first cook's grid where it can vary: the second cook's layer
    c is the first cook's layer ``OTHER_COOKS_LAYER[c]``, and the layers
    above are constant where they cannot change.
    """
    n, height, width, layers = first_grids.shape
    grid = first_grids[0]
    counter = grid[..., COUNTER_LAYER] > 0
    floor = ~(grid[..., 10:16] > 0).any(-1)
    pot = grid[..., POT_LAYER] > 0
    flat_first = np.arange(height * width * layers).reshape(height, width, layers)
    first = np.full((height, width, layers), -1, np.int64)  # the first cook's grid
    pick: list[int] = []
    for h in range(height):
        for w in range(width):
            for c in range(layers):
                if c in FIXED_LAYERS or ((c in COOK_LAYERS and not floor[h, w])
                                         or (c in POT_ONLY_LAYERS and not pot[h, w])
                                         or (c == COUNTER_LAYER and not counter[h, w])):
                    continue  # constant: the layout's value, or 0
                if c == URGENCY_LAYER and (h, w) != (0, 0):
                    first[h, w, c] = first[0, 0, c]
                    continue
                first[h, w, c] = len(pick)
                pick.append(int(flat_first[h, w, c]))
    fixed = np.isin(np.arange(layers), FIXED_LAYERS)
    offset = np.where(fixed, grid, 0).astype(np.float32)
    # The second cook's layer c is the first cook's layer OTHER_COOKS_LAYER[c];
    # the fixed layers are the same in both grids.
    other = list(OTHER_COOKS_LAYER)
    source = np.stack([first] + [first[..., other]] * (n - 1))
    offsets = np.stack([offset] + [offset[..., other]] * (n - 1))
    return StateBasis(pick=tuple(pick), source=tuple(int(i) for i in source.reshape(-1)),
                      offset=tuple(float(v) for v in offsets.reshape(-1)))


def soups_per_episode(record: dict) -> dict:
    """Delivered soups per episode, greedy and training, from a record's returns."""
    return {"soups_per_episode": record["test_return"] / SOUP_REWARD,
            "train_soups_per_episode": record["train_return"] / SOUP_REWARD}


class OvercookedEnv:
    """Two cooks, six actions (all always available), 400 steps, no early end.

    The team reward is the shared delivery reward; the shaped reward is the
    sum of the two agents' shaping rewards (each is paid for its own
    onion-in-pot, dish pick-up, soup pick-up), reported separately so the
    trainer can anneal its weight.
    """

    def __init__(self, name: str, layout: str, max_steps: int = 400):
        import jaxmarl  # late: importing jaxmarl is slow
        from jaxmarl.environments.overcooked import overcooked_layouts

        if layout not in OVERCOOKED_LAYOUTS:
            raise KeyError(f"unknown Overcooked layout {layout!r}; allowed: {', '.join(OVERCOOKED_LAYOUTS)}")
        self._env = jaxmarl.make("overcooked", layout=overcooked_layouts[layout], max_steps=max_steps)
        self._agents = tuple(self._env.agents)
        first_obs, _ = jax.jit(self._env.reset)(jax.random.PRNGKey(0))
        obs_shape = tuple(first_obs[self._agents[0]].shape)
        n = len(self._agents)
        self._basis = overcooked_state_basis(np.stack([np.asarray(first_obs[a]) for a in self._agents]))
        self.spec = EnvSpec(
            name=name,
            num_agents=n,
            num_actions=self._env.action_space(self._agents[0]).n,
            obs_shape=obs_shape,
            state_dim=n * math.prod(obs_shape),
            episode_limit=max_steps,
            has_win=False,
            obs_dtype=jnp.uint8,
            state_from_obs=True,
            has_shaped_reward=True,
            fixed_length=True,
            record_extras=soups_per_episode,
            state_basis=self._basis,
        )

    def _observe(self, obs: dict) -> Observation:
        grids = [obs[a].astype(jnp.uint8) for a in self._agents]
        n, k = self.spec.num_agents, self.spec.num_actions
        # z is picked from the first cook's grid alone (every entry of z sits
        # there), not from the stacked array: stacked under vmap, the grids
        # get an agent-major layout whose transposing copy made soft acting
        # about 10% slower at 16 envs on CPU. Same values as ``global_state``.
        state = self._basis.compress(grids[0].reshape(-1)).astype(jnp.float32)
        return Observation(obs=jnp.stack(grids), state=state, avail=jnp.ones((n, k), bool))

    def reset(self, key: jax.Array):
        obs, state = self._env.reset(key)
        return state, self._observe(obs)

    def step(self, key: jax.Array, state, actions: jax.Array):
        action_dict = {a: actions[i] for i, a in enumerate(self._agents)}
        obs, state, rewards, dones, info = self._env.step_env(key, state, action_dict)
        shaped = sum(info["shaped_reward"][a] for a in self._agents)
        outcome = StepOutcome(
            reward=rewards[self._agents[0]].astype(jnp.float32),
            terminated=jnp.zeros((), bool),  # episodes only ever time out
            truncated=dones["__all__"],
            won=jnp.zeros((), bool),
            shaped_reward=jnp.asarray(shaped, jnp.float32),
        )
        return state, self._observe(obs), outcome

    def render_gif(self, states: list, step_keys, actions, path) -> int:
        """A GIF of one episode (one frame per state) through jaxmarl's Overcooked visualiser."""
        del step_keys, actions  # the states alone show the kitchen
        from jaxmarl.viz.overcooked_visualizer import OvercookedVisualizer

        OvercookedVisualizer().animate(states, self._env.agent_view_size, filename=str(path))
        return len(states)
