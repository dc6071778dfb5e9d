"""Official SMACv2 (StarCraft II through pysc2) stepped on the host.

``host_loop.run(cfg, run_dir)`` trains on ``smacv2_*`` envs: ``num_workers``
processes (``workers.WorkerPool``) each own one SMACv2 env; the host batches
their observations into one jitted acting call and feeds finished episodes to
the same device replay and jitted update as the JAX path. ``scenarios`` holds
SMACv2's env_args for the fifteen scenarios; ``smax_adapter`` puts SMAX
behind SMACv2's env API for tests without StarCraft II. Importing this
package imports neither JAX nor smacv2.
"""
