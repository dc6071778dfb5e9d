"""meigm_jax/running"""
