"""Football logic on top of the tracks, causal (this frame and the past only) and cached per
track: team colours (:mod:`.teams`), the ball (:mod:`.ball`) and possession
(:mod:`.possession`)."""
