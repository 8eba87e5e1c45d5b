"""Sample-quality metrics: toy (modes, high quality, exact W1) and image (classifier features)."""
