"""Official SMACv2 (StarCraft II through pysc2) stepped on the host.

``envs.smacv2.HostEnv`` is what the registry gives for ``smacv2_*`` names
(``envs.smacv2_scenarios`` holds SMACv2's env_args for the fifteen
scenarios); the run loop trains it through ``host_loop.HostProgram``:
``num_workers`` processes (``workers.WorkerPool``) each own one SMACv2 env;
the host batches their observations into one jitted acting call and feeds
finished episodes to the same device replay and jitted learner as the JAX
path. ``smax_adapter`` puts SMAX behind SMACv2's env API for tests without
StarCraft II. Importing this package imports neither JAX nor smacv2.
"""
