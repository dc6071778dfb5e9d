"""meigm_jax/programs"""
