"""Host-side and in-guest faults: the catalogue, how profiles declare them, their timeline, injection."""
