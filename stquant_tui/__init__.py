"""stquant-tui: a full-screen wizard that writes (and runs) stquant configs. Never imports TensorFlow."""
