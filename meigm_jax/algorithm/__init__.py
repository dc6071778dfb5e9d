"""meigm_jax/algorithm"""
