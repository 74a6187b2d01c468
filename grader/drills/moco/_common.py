"""What the drill-05 check modules share: the drill's name."""

DRILL = "05_moco"
