"""The tracker stage: per stream, one owner turns detections into tracks, teams, the ball's
path and possession (``pitchside tracker``), and the same tracker runs offline on
MOTChallenge files (``pitchside track``, ``pitchside track-eval``)."""
