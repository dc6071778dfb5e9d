"""meigm_jax: ME-IGM (maximum-entropy QMIX with an order-preserving transformation) in JAX."""
