"""JaxMARL's SMAX (heuristic enemies) behind the ``MarlEnv`` interface."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from meigm_jax.envs.base import EnvSpec
from meigm_jax.types import Observation, StepOutcome


# SMACv2's race unit pools restricted to SMAX's six unit types: SMAX has no
# colossus, medivac or baneling (SMACv2's third type of each race, drawn with
# probability 0.1), so each race draws its two types with equal probability.
RACE_UNIT_TYPES = {
    "protoss": ("stalker", "zealot"),
    "terran": ("marine", "marauder"),
    "zerg": ("zergling", "hydralisk"),
}


class RaceUnitTypes:
    """SMACv2-style team composition from one race's pool.

    Allies are drawn from the pool; the enemy team mirrors the allies and
    draws any extra enemies (X vs X+k) from the pool too, as SMACv2 does.
    """

    def __init__(self, type_ids: tuple[int, ...], num_allies: int, num_enemies: int):
        self.type_ids = jnp.asarray(type_ids, jnp.uint8)
        self.num_allies, self.num_enemies = num_allies, num_enemies

    def generate(self, key: jax.Array) -> jax.Array:
        ally_key, extra_key = jax.random.split(key)
        allies = jax.random.choice(ally_key, self.type_ids, (self.num_allies,))
        extra = jax.random.choice(extra_key, self.type_ids,
                                  (max(self.num_enemies - self.num_allies, 0),))
        enemies = jnp.concatenate([allies[: self.num_enemies], extra])
        return jnp.concatenate([allies, enemies]).astype(jnp.uint8)


def world_state_divisors(smax) -> jax.Array:
    """Divisors that bring SMAX's world state into [0, 1], feature by feature.

    SMAX's world state holds, per unit, the health fraction, the raw position
    on the map (0 to 32), the weapon cooldown in seconds and a one-hot type,
    then every unit's team and integer type id. The mixer's hypernetworks and
    the OPT's bias read the state linearly: raw positions made the untrained
    mixer's |Q_tot| about 500 on returns of at most 2, and training spent
    hundreds of thousands of steps unlearning it. SMACv2's own state is
    normalised the same way (pymarl), so positions are divided by the map
    size, cooldowns by the longest, and type ids by the largest.
    """
    features = list(smax.own_features)
    per_unit = [1.0] * len(features)
    per_unit[features.index("position_x")] = float(smax.map_width)
    per_unit[features.index("position_y")] = float(smax.map_height)
    per_unit[features.index("weapon_cooldown")] = float(max(smax.unit_type_weapon_cooldowns))
    units = smax.num_agents  # all units, allies and enemies
    divisors = per_unit * units + [1.0] * units + [float(max(len(smax.unit_type_names) - 1, 1))] * units
    return jnp.asarray(divisors, jnp.float32)


class SmaxEnv:
    """SMAX with stacked per-agent arrays, a team reward and no auto-reset.

    A battle is won when the final step's team reward is >= 1 (SMAX pays a
    bonus of 1 for a win on top of at most 1 of damage reward), as in
    JaxMARL's ``SMAXLogWrapper``. An episode that ends on the step limit with
    both teams alive is a time-out (``truncated``).
    """

    def __init__(self, name: str, scenario: str | None = None, race: str | None = None,
                 num_allies: int = 5, num_enemies: int = 5, **env_kwargs):
        """Either a named jaxmarl ``scenario`` (e.g. ``smacv2_5_units``) or a
        ``race`` with team sizes: SMACv2 positions, units from the race's pool."""
        import jaxmarl  # late: importing jaxmarl is slow
        from jaxmarl.environments.smax import map_name_to_scenario
        from jaxmarl.environments.smax.smax_env import Scenario

        if race is None:
            chosen = map_name_to_scenario(scenario)
        else:
            chosen = Scenario(jnp.zeros((num_allies + num_enemies,), jnp.uint8), num_allies,
                              num_enemies, True, True)
        self._env = jaxmarl.make("HeuristicEnemySMAX", scenario=chosen, **env_kwargs)
        if race is not None:
            names = self._env.unit_type_names
            ids = tuple(names.index(unit) for unit in RACE_UNIT_TYPES[race])
            # The wrapped SMAX draws unit types at reset from this generator.
            self._env._env.unit_type_generator = RaceUnitTypes(ids, num_allies, num_enemies)
        agents = self._env.agents
        self._agents = agents
        probe_obs, _ = jax.eval_shape(self._env.reset, jax.random.PRNGKey(0))
        self._state_divisors = world_state_divisors(self._env._env)
        if self._state_divisors.shape != probe_obs["world_state"].shape:
            raise ValueError(f"SMAX's world state has {probe_obs['world_state'].shape[-1]} features, not the "
                             f"{self._state_divisors.shape[-1]} this adapter normalises; jaxmarl==0.2.0 is supported")
        self.spec = EnvSpec(
            name=name,
            num_agents=len(agents),
            num_actions=self._env.action_spaces[agents[0]].n,
            obs_shape=self._env.observation_spaces[agents[0]].shape,
            state_dim=probe_obs["world_state"].shape[-1],
            episode_limit=self._env.max_steps,
            has_win=True,
        )

    def _observe(self, obs: dict, state) -> Observation:
        avail = self._env.get_avail_actions(state)
        return Observation(
            obs=jnp.stack([obs[a] for a in self._agents]).astype(jnp.float32),
            state=obs["world_state"].astype(jnp.float32) / self._state_divisors,
            avail=jnp.stack([avail[a] for a in self._agents]).astype(bool),
        )

    def reset(self, key: jax.Array):
        obs, state = self._env.reset(key)
        return state, self._observe(obs, state)

    def step(self, key: jax.Array, state, actions: jax.Array):
        action_dict = {a: actions[i] for i, a in enumerate(self._agents)}
        obs, state, rewards, dones, _ = self._env.step_env(key, state, action_dict)
        reward = rewards[self._agents[0]].astype(jnp.float32)
        done = dones["__all__"]
        inner = state.state
        n_allies = self.spec.num_agents
        battle_over = ~jnp.any(inner.unit_alive[:n_allies]) | ~jnp.any(inner.unit_alive[n_allies:])
        outcome = StepOutcome(
            reward=reward,
            terminated=done & battle_over,
            truncated=done & ~battle_over,
            won=done & (reward >= 1.0),
            shaped_reward=jnp.zeros(()),
        )
        return state, self._observe(obs, state), outcome

    def render_gif(self, states: list, step_keys, actions, path) -> int:
        """A GIF of one episode through jaxmarl's SMAX visualiser.

        ``states[t]`` is the state before step t (plus the final one), which
        step t took with ``step_keys[t]`` and ``actions[t]``. The visualiser
        re-simulates SMAX's fine-grained world ticks inside each step.
        Returns the number of frames.
        """
        import matplotlib

        matplotlib.use("Agg")
        from jaxmarl.viz.visualizer import SMAXVisualizer
        from matplotlib.animation import FuncAnimation, PillowWriter

        seq = [(key, state, {a: int(act[i]) for i, a in enumerate(self._agents)})
               for key, state, act in zip(step_keys, states, actions, strict=False)]
        viz = SMAXVisualizer(self._env, seq)
        viz.expand_state_seq()
        frames = len(viz.state_seq)
        FuncAnimation(viz.fig, viz.update, frames=frames, init_func=viz.init, blit=False).save(
            str(path), writer=PillowWriter(fps=16))
        matplotlib.pyplot.close(viz.fig)
        return frames
