"""meigm_jax/reporting"""
